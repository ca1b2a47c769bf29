"""``attest matrix``: how many compliance assessments models x jurisdictions x releases need a year."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from attest._internal.capped import MAX_DOCUMENT_BYTES, read_capped_text
from attest.errors import UsageError
from cli._input import InputFile
from cli._trust import trust_from_options, trust_options


@click.command()
@click.argument("config", type=InputFile("matrix config"))
@click.option(
    "--assessment",
    "assessments",
    multiple=True,
    metavar="MODEL=FILE",
    help="A verified compliance-assessment/v1 predicate (JSON) for MODEL; repeatable. "
    "Adds each cell's state: current, stale, failed or missing.",
)
@click.option(
    "--registry",
    envvar="ATTEST_REGISTRY",
    help="Take the assessments from a registry: each proven in its log and verified with the trust options.",
)
@trust_options
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def matrix(
    config: str,
    assessments: tuple[str, ...],
    registry: str | None,
    keys: tuple[Path, ...],
    as_json: bool,
    **keyless: Any,
) -> None:
    """Count the assessments due per year for the models, jurisdictions and release cadence in CONFIG."""
    from attest.compliance.matrix import load_matrix, matrix_status

    grid = load_matrix(Path(config))
    existing = []
    for item in assessments:
        model, sep, file = item.partition("=")
        if not sep or not model or not file:
            raise UsageError(f"--assessment takes MODEL=FILE, not {item!r}")
        text = read_capped_text(file, MAX_DOCUMENT_BYTES, "assessment")
        try:
            existing.append((model, json.loads(text)))
        except (ValueError, RecursionError) as exc:
            raise UsageError(f"{file}: assessment is not JSON ({exc})") from None
    if registry:
        from attest.predicates import COMPLIANCE_ASSESSMENT_V1
        from attest.registry_client import fetch_verified_attestations

        trust = trust_from_options(keys, **keyless)
        if not trust.keys and not trust.identities:
            raise UsageError("--registry needs a trusted signer: --key PUB or --identity/--issuer")
        for model in grid.models:
            for att in fetch_verified_attestations(registry, model, trust):
                if att.predicate_type == COMPLIANCE_ASSESSMENT_V1:
                    existing.append((model, att.predicate))
    result = matrix_status(grid, existing) if assessments or registry else grid.to_json()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(
        f"{result['models']} models x {len(result['jurisdictions'])} jurisdictions "
        f"({', '.join(result['jurisdictions'])}): {result['assessmentsPerYear']} assessments a year"
    )
    for row in result["rows"]:
        extra = f"\t{row['state']}" if "state" in row else f"\t{row.get('releasesPerYear', '')}/year"
        click.echo(f"  {row['model']}\t{row['jurisdiction']}{extra}")
    if "status" in result:
        click.echo("  " + ", ".join(f"{k}: {v}" for k, v in result["status"].items()))
