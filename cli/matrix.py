"""``attest matrix``: how many compliance assessments models x jurisdictions x releases need a year."""

from __future__ import annotations

import json
from pathlib import Path

import click

from attest.errors import UsageError


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--assessment",
    "assessments",
    multiple=True,
    metavar="MODEL=FILE",
    help="A verified compliance-assessment/v1 predicate (JSON) for MODEL; repeatable. "
    "Adds each cell's state: current, stale, failed or missing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def matrix(config: str, assessments: tuple[str, ...], as_json: bool) -> None:
    """Count the assessments due per year for the models, jurisdictions and release cadence in CONFIG."""
    from attest.compliance.matrix import load_matrix, matrix_status

    grid = load_matrix(Path(config))
    existing = []
    for item in assessments:
        model, sep, file = item.partition("=")
        if not sep or not model or not file:
            raise UsageError(f"--assessment takes MODEL=FILE, not {item!r}")
        try:
            existing.append((model, json.loads(Path(file).read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read assessment {file}: {exc}") from None
    result = matrix_status(grid, existing) if assessments else grid.to_json()
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
