"""``attest release``: manifest + scan + compliance + constitution, signed and published, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from attest.registry_client import RegistryClient
from attest.release import ReleaseOptions, release
from cli._input import InputFile
from cli._output import console, err_console, print_json
from cli._signer import make_signer, signer_options


@click.command(name="release")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--name", required=True, help="Model name, org/model (the org is the registry namespace).")
@click.option("--version", "model_version", required=True, help="Model version.")
@click.option("--source-uri", help="Where the model is published.")
@click.option("--registry", required=True, envvar="ATTEST_REGISTRY", help="Registry URL.")
@click.option(
    "--token", envvar="ATTEST_REGISTRY_TOKEN", help="Publisher token (default: $ATTEST_REGISTRY_TOKEN)."
)
@signer_options
@click.option(
    "--profile",
    type=InputFile("deployment profile"),
    help="Deployment profile: adds a compliance assessment.",
)
@click.option("--date", "assessment_date", help="Assessment date (YYYY-MM-DD, default today).")
@click.option(
    "--constitution",
    type=InputFile("constitution"),
    help="Constitution text to bind.",
)
@click.option("--relationship", type=click.Choice(["trained-with", "system-prompt", "evaluated-against"]))
@click.option("--constitution-version", help="Constitution version (default: derived from its digest).")
@click.option("--no-scan", is_flag=True, help="Skip the backdoor scan (policies requiring one will deny).")
@click.option(
    "--budget", type=click.Choice(["quick", "standard", "thorough"]), default="standard", show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--allow-failed-scan",
    "override",
    metavar="REASON",
    help="Publish despite a FAILED scan; REASON is recorded in the signed scan.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".attest-release"),
    show_default=True,
    help="Where progress is kept so a re-run resumes.",
)
@click.option("--json", "as_json", is_flag=True)
def release_cmd(
    path: Path,
    name: str,
    model_version: str,
    source_uri: str | None,
    registry: str,
    token: str | None,
    key_path: Path | None,
    profile: Path | None,
    assessment_date: str | None,
    constitution: Path | None,
    relationship: str | None,
    constitution_version: str | None,
    no_scan: bool,
    budget: str,
    seed: int,
    override: str | None,
    state_dir: Path,
    as_json: bool,
    **keyless: Any,
) -> None:
    """Release the model at PATH: sign and publish every attestation; a FAILED scan stops it."""
    opts = ReleaseOptions(
        name=name,
        version=model_version,
        source_uri=source_uri,
        profile=profile,
        assessment_date=assessment_date,
        constitution=constitution,
        relationship=relationship,
        constitution_version=constitution_version,
        scan=not no_scan,
        scan_budget=budget,
        scan_seed=seed,
        override_failed_scan=override,
    )
    signer = make_signer(key_path, **keyless)
    log = err_console()
    with RegistryClient(registry, token=token) as client:
        state = release(
            path, opts, signer, client.publish, state_dir, report=lambda m: log.print(f"[dim]{m}[/]")
        )
    rows = [
        {
            "kind": s.kind,
            "predicateType": s.predicate_type,
            "logIndex": (s.entry or {}).get("logIndex"),
            "id": (s.entry or {}).get("id"),
        }
        for s in state.steps.values()
    ]
    if as_json:
        print_json(
            {"name": name, "version": model_version, "modelDigest": state.model_digest, "published": rows}
        )
        return
    from rich.table import Table

    table = Table(title=f"released {name}@{model_version} ({state.model_digest})")
    for col in ("attestation", "predicate type", "log index"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["kind"], row["predicateType"], str(row["logIndex"]))
    console().print(table)
