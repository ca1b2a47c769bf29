"""``attest scan PATH``: static checks and a forward-pass backdoor scan, as a backdoor-scan/v1 predicate.

The output file is exactly the predicate JSON that ``attest sign --predicate-type
https://model-attest.dev/backdoor-scan/v1 --predicate FILE`` signs. Exit codes follow ``--fail-on``.
With ``--trigger TEXT`` only the given strings are judged (``judge_placements``), no predicate is made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from attest._internal.atomic import write_atomic
from attest.errors import UndecidedError, UsageError
from cli._output import console, err_console, print_json

if TYPE_CHECKING:
    from attest.scan import ScanOptions

_FAIL_ON = {"failed": {"FAILED", "ERROR"}, "warned": {"WARNED", "FAILED", "ERROR"}, "never": set()}
_STYLE = {"PASSED": "green", "WARNED": "yellow", "FAILED": "bold red", "ERROR": "bold magenta"}
MAX_TRIGGER_CHARS = 1000  # a trigger is a phrase; a longer string is a mistake, and costs a long decode


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the predicate JSON to FILE.")
@click.option(
    "--sarif", "sarif_path", type=click.Path(dir_okay=False),
    help="Also write the findings as a SARIF 2.1.0 log to FILE (code-scanning dashboards).",
)  # fmt: skip
@click.option("--static-only", is_flag=True, help="Only the static file checks (no torch needed).")
@click.option(
    "--budget", type=click.Choice(["quick", "standard", "thorough"]), default="standard", show_default=True,
    help="How many generations and candidates the dynamic stage may use.",
)  # fmt: skip
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed (scans are deterministic)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the predicate JSON instead of the summary.")
@click.option("--redact-triggers", is_flag=True, help="Omit candidate trigger texts (keep ids and hashes).")
@click.option(
    "--fail-on", type=click.Choice(sorted(_FAIL_ON)), default="failed", show_default=True,
    help="Exit 1 when the result is at least this bad (failed: FAILED or ERROR).",
)  # fmt: skip
@click.option(
    "--trigger", "triggers", multiple=True, metavar="TEXT",
    help="Judge only this string (repeatable), as the scan judges its candidates; exit 1 when one meets a rule.",
)  # fmt: skip
def scan(
    path: str,
    output: str | None,
    sarif_path: str | None,
    static_only: bool,
    budget: str,
    seed: int,
    as_json: bool,
    redact_triggers: bool,
    fail_on: str,
    triggers: tuple[str, ...],
) -> None:
    """Scan the model at PATH and print (or write) the backdoor-scan/v1 predicate."""
    from attest.scan import ScanOptions, scan_model

    for target in (output, sarif_path):  # fail before a scan that may take minutes, not after it
        if target and not Path(target).absolute().parent.is_dir():
            raise UsageError(f"{target}: its folder does not exist")
    options = ScanOptions(budget=budget, seed=seed, static_only=static_only, redact_triggers=redact_triggers)
    if triggers:
        if static_only or sarif_path or redact_triggers:
            raise UsageError(
                "--trigger judges strings by forward passes: not with --static-only, --sarif or --redact-triggers"
            )
        _judge_triggers(Path(path), triggers, options, output, as_json, fail_on)  # exits
    if sys.stderr.isatty() and not as_json:
        predicate = _with_progress(lambda progress: scan_model(path, options, progress))
    else:
        predicate = scan_model(path, options)
    if output:
        write_atomic(Path(output), (json.dumps(predicate, indent=2, ensure_ascii=False) + "\n").encode())
    if sarif_path:
        from attest.scan.sarif import to_sarif

        log = to_sarif(predicate, path)
        write_atomic(Path(sarif_path), (json.dumps(log, indent=2, ensure_ascii=False) + "\n").encode())
    if as_json:
        print_json(predicate)
    else:
        _summary(predicate, output)
    sys.exit(1 if predicate["result"] in _FAIL_ON[fail_on] else 0)


def _judge_triggers(
    root: Path,
    triggers: tuple[str, ...],
    options: ScanOptions,
    output: str | None,
    as_json: bool,
    fail_on: str,
) -> NoReturn:
    """``--trigger``: the scan's verdict on strings the user already suspects (a red-team finding, a
    trigger a model card admits to), without the search. Exit 1 when one meets a rule, 0 when none
    does, 3 when the model cannot be run (nothing was decided)."""
    from attest.scan.dynamic import PLACEMENTS, judge_placements
    from attest.scan.dynamic.loading import DynamicError

    for text in triggers:
        if not text.strip() or len(text) > MAX_TRIGGER_CHARS:
            raise UsageError(f"--trigger: a string of 1 to {MAX_TRIGGER_CHARS} characters, not only spaces")
    if not root.is_dir():
        raise UsageError(f"{root}: --trigger needs a model folder")
    try:
        groups = [[(text, place) for place in PLACEMENTS] for text in triggers]  # one model load for all
        judged = [
            {"trigger": text, **j}
            for text, j in zip(triggers, judge_placements(root, groups, options), strict=True)
        ]
    except DynamicError as exc:
        raise UndecidedError(f"{root}: cannot run the model to judge a trigger: {exc}") from None
    except ImportError as exc:
        raise UndecidedError(
            f"--trigger needs torch and transformers (pip install 'model-attest[scan]'): {exc}"
        ) from None
    doc = {"model": str(root), "budget": options.budget, "judgements": judged}
    if output:
        write_atomic(Path(output), (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    if as_json:
        print_json(doc)
    else:
        from rich.table import Table

        table = Table(title="trigger judgements")
        for column in ("trigger", "rule met", "margin", "placed", "output", "attack success", "span"):
            table.add_column(column, overflow="fold")
        for j in judged:
            table.add_row(
                repr(j["trigger"]), j["rule"], f"{j['margin']:+.3f}", j["position"], repr(j["collapsedResponse"]),
                f"{j['attackSuccessRate']:.0%}", repr(j["appendedSpan"]) if j.get("appendedSpan") else "-",
            )  # fmt: skip
        console().print(table)
    met = any(j["rule"] != "none" for j in judged)
    sys.exit(1 if met and fail_on != "never" else 0)


def _with_progress(run: Any) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=err_console(), transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result: dict[str, Any] = run(progress)
        return result


def _summary(predicate: dict[str, Any], output: str | None) -> None:
    from rich.table import Table

    out = console()
    result = predicate["result"]
    out.print(
        f"result: [{_STYLE[result]}]{result}[/]  ({predicate['runtimeSeconds']:.1f} s, budget {predicate['coverage']['budget']})"
    )
    findings = predicate["staticFindings"]
    if findings:
        table = Table(title="static findings", show_lines=False)
        table.add_column("severity", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        for column in ("file", "evidence"):
            table.add_column(column, overflow="fold")
        for f in findings:
            table.add_row(f["severity"], f["ruleId"], f["file"], f["evidence"])
        out.print(table)
    if predicate["dynamicSignals"]:
        table = Table(title="dynamic signals")
        for column in ("signal", "score", "threshold", "unit", "triggered"):
            table.add_column(column)
        for s in predicate["dynamicSignals"]:
            table.add_row(
                s["name"],
                f"{s['score']:.4g}",
                f"{s['threshold']:.4g}",
                s["unit"],
                "yes" if s.get("triggered") else "no",
            )
        out.print(table)
    if predicate["candidateTriggers"]:
        table = Table(title="top candidate triggers")
        for column in ("text", "token ids", "score", "attack success"):
            table.add_column(column, overflow="fold")
        for c in predicate["candidateTriggers"][:5]:
            asr = c.get("attackSuccessRate")
            table.add_row(
                repr(c["text"]) if "text" in c else "(redacted)",
                str(c["tokenIds"]),
                f"{c['score']:.4g}",
                "-" if asr is None else f"{asr:.0%}",
            )
        out.print(table)
    for error in predicate.get("errors", []):
        out.print(f"[magenta]error:[/] {error}")
    if output:
        out.print(f"predicate written to {output}")
