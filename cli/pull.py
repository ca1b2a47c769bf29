"""``attest pull``: policy first, then a hashed, atomic download of exactly the signed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from attest._internal.capped import MAX_POLICY_BYTES
from attest.errors import UsageError
from attest.policy import Policy
from attest.pull import TransferLimits, open_source, pull
from attest.registry_client import fetch_logged_bundles
from cli._input import InputFile
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
@click.option("--policy", "policy_path", required=True, type=InputFile("policy", MAX_POLICY_BYTES))
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
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=TransferLimits.deadline,
    envvar="ATTEST_PULL_DEADLINE",
    show_default=True,
    help="Give up (exit 3) when the download takes longer than this many seconds.",
)
@click.option(
    "--min-rate",
    type=click.FloatRange(min=0),
    default=TransferLimits.min_rate,
    envvar="ATTEST_PULL_MIN_RATE",
    show_default=True,
    help="Give up on a source delivering fewer bytes per second than this over a rate window.",
)
@click.option(
    "--rate-window",
    type=click.FloatRange(min=0, min_open=True),
    default=TransferLimits.rate_window,
    envvar="ATTEST_PULL_RATE_WINDOW",
    show_default=True,
    help="Seconds over which --min-rate is averaged (and the longest wait for any byte).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=TransferLimits.retries,
    envvar="ATTEST_PULL_RETRIES",
    show_default=True,
    help="Retries per file on connection errors, timeouts and HTTP 5xx/429 (backoff, then resume).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision and the result as JSON.")
def pull_cmd(
    ref: str,
    registry: str,
    policy_path: Path,
    source: str,
    dest: Path,
    keys: tuple[Path, ...],
    hub_endpoint: str | None,
    deadline: float,
    min_rate: float,
    rate_window: float,
    retries: int,
    as_json: bool,
    **keyless: Any,
) -> None:
    """Pull REF (org/model@VERSION) from SOURCE into a new folder, after the policy allowed it.

    Every file is hashed while it streams into a staging folder beside --to and compared with the
    signed manifest; only a complete, matching set is moved into place. Transient failures are
    retried with backoff and resumed (HTTP Range); a source slower than --min-rate or a pull past
    --deadline is given up on (exit 3). hf:// sources use the Hugging Face token (HF_TOKEN or
    `hf auth login`) for gated and private repositories, sent to the hub only. Interrupting
    (Ctrl-C, SIGTERM, SIGHUP) removes the staging folder.
    """
    name, version = parse_ref(ref)
    policy = Policy.load(policy_path)
    trust = trust_from_options(keys, **keyless)
    src = open_source(source, hub_endpoint)
    bundles = fetch_logged_bundles(registry, name)
    limits = TransferLimits(deadline=deadline, min_rate=min_rate, rate_window=rate_window, retries=retries)
    result = pull(name, version, bundles, policy, src, dest, trust, progress=not as_json, limits=limits)
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
