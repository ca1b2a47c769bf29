"""``attest comply``: assess a deployment profile against the rule packs and emit the predicate."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from attest.errors import UsageError
from cli._input import InputFile

_STYLE = {
    "satisfied": "green",
    "not-satisfied": "bold red",
    "insufficient-evidence": "yellow",
    "not-applicable": "dim",
}


def parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--date must be YYYY-MM-DD, not {value!r}") from None


def _write_json(path: str, doc: dict[str, Any]) -> None:
    try:
        Path(path).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _print_table(predicate: dict[str, Any]) -> None:
    findings = predicate["findings"]
    summary = predicate["summary"]
    headline = (
        f"{predicate['deploymentProfile'].get('name', '')} on {predicate['evaluationDate'][:10]}: "
        f"{summary['satisfied']} satisfied, {summary['not-satisfied']} not satisfied, "
        f"{summary['insufficient-evidence']} insufficient evidence, {summary['not-applicable']} not applicable"
    )
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=headline, show_lines=False)
        for column in ("rule", "jur.", "status", "sev.", "reason"):
            table.add_column(column, overflow="fold")
        for f in findings:
            style = _STYLE[f["status"]]
            table.add_row(
                f["ruleId"], f["jurisdiction"], f"[{style}]{f['status']}[/]", f["severity"], f["reason"]
            )
        console = Console()
        console.print(table)
        console.print(f"[dim]{predicate['disclaimer']}[/]")
        return
    click.echo(headline)
    for f in findings:
        click.echo(f"{f['ruleId']}\t{f['jurisdiction']}\t{f['status']}\t{f['severity']}\t{f['reason']}")
    click.echo(predicate["disclaimer"])


@click.command()
@click.option(
    "--profile",
    "profile_path",
    type=InputFile("deployment profile"),
    required=True,
    help="Deployment profile (YAML or JSON).",
)
@click.option("--date", "date", help="Assess the law as of this day (YYYY-MM-DD); default: today (UTC).")
@click.option(
    "--pack",
    "pack_paths",
    multiple=True,
    type=InputFile("rule pack"),
    help="Use this rule pack file instead of the built-in packs (repeatable).",
)
@click.option("--include-drafts", is_flag=True, help="Also evaluate draft measures (never binding).")
@click.option(
    "--apply-pending-amendments",
    is_flag=True,
    help="Use the dates of provisional amendments (e.g. the Digital Omnibus) instead of the law in force.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the compliance-assessment/v1 predicate here (input of `attest sign`).",
)
@click.option("--sarif", "sarif_path", type=click.Path(dir_okay=False), help="Also write SARIF 2.1.0 here.")
@click.option(
    "--oscal", "oscal_path", type=click.Path(dir_okay=False), help="Also write OSCAL assessment results here."
)
@click.option("--json", "as_json", is_flag=True, help="Print the predicate as JSON.")
def comply(
    profile_path: str,
    date: str | None,
    pack_paths: tuple[str, ...],
    include_drafts: bool,
    apply_pending_amendments: bool,
    output: str | None,
    sarif_path: str | None,
    oscal_path: str | None,
    as_json: bool,
) -> None:
    """Assess a deployment profile against the EU, CN and US rule packs (not legal advice).

    Every rule gets satisfied, not-satisfied, not-applicable (with the reason, e.g. not yet in force)
    or insufficient-evidence. Sign the -o output with: attest sign PATH --key K --predicate-type
    https://model-attest.dev/compliance-assessment/v1 --predicate FILE
    """
    from attest.compliance import Options, assess, load_pack, load_profile

    started = dt.datetime.now(dt.UTC)
    profile = load_profile(Path(profile_path))
    packs = [load_pack(Path(p)) for p in pack_paths] or None
    options = Options(include_drafts=include_drafts, apply_pending_amendments=apply_pending_amendments)
    assessment = assess(profile, packs, parse_date(date), options)
    if not assessment.packs:
        raise UsageError(f"no rule pack for the profile's jurisdictions {', '.join(profile.jurisdictions)}")
    predicate = assessment.to_predicate(started)
    finished = dt.datetime.now(dt.UTC)
    if output:
        _write_json(output, predicate)
    if sarif_path:
        from attest.compliance.sarif import to_sarif

        _write_json(sarif_path, to_sarif(assessment, predicate, started, finished))
    if oscal_path:
        from attest.compliance.oscal import to_oscal

        _write_json(oscal_path, to_oscal(assessment, predicate, started, finished))
    if as_json:
        click.echo(json.dumps(predicate, indent=2, ensure_ascii=False))
    else:
        _print_table(predicate)
