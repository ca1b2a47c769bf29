"""``attest pull``: policy first, then a hashed, atomic download of exactly the signed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from attest.errors import UsageError
from attest.policy import Policy
from attest.pull import open_source, pull
from attest.registry_client import fetch_logged_bundles
from cli._output import print_json
from cli._trust import print_decision, trust_from_options, trust_options


def parse_ref(ref: str) -> tuple[str, str]:
    name, sep, version = ref.rpartition("@")
    if not sep or not name or not version or "/" not in name:
        raise UsageError(f"{ref!r}: expected org/model@VERSION or org/model@sha256:<hex>")
    return name, version


@click.command(name="pull")
@click.argument("ref")
@click.option("--registry", required=True, envvar="ATTEST_REGISTRY", help="Registry URL.")
@click.option(
    "--policy", "policy_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--from", "source", required=True, help="Local folder, http(s):// mirror, or hf://org/name[@rev]."
)
@click.option(
    "--to",
    "dest",
    required=True,
    type=click.Path(path_type=Path),
    help="Destination folder (must not exist).",
)
@trust_options
@click.option("--hub-endpoint", envvar="HF_ENDPOINT", help="Hugging Face Hub endpoint for hf:// sources.")
@click.option("--json", "as_json", is_flag=True)
def pull_cmd(
    ref: str,
    registry: str,
    policy_path: Path,
    source: str,
    dest: Path,
    keys: tuple[Path, ...],
    hub_endpoint: str | None,
    as_json: bool,
    **keyless: Any,
) -> None:
    """Pull REF (org/model@VERSION) from SOURCE into a new folder, after the policy allowed it."""
    name, version = parse_ref(ref)
    policy = Policy.load(policy_path)
    trust = trust_from_options(keys, **keyless)
    src = open_source(source, hub_endpoint)
    bundles = fetch_logged_bundles(registry, name)
    result = pull(name, version, bundles, policy, src, dest, trust)
    if as_json:
        print_json(
            {
                **result.decision.to_json(),
                "destination": str(result.destination),
                "files": result.files,
                "bytes": result.bytes,
            }
        )
    else:
        print_decision(result.decision)
        click.echo(
            f"pulled {name}@{version} ({result.files} files, {result.bytes} bytes) into {result.destination}"
        )
