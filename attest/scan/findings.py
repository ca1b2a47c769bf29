"""Static findings: what a rule saw, in which file, how bad it is.

Kept apart from the rules so that the predicate builder, the CLI table and the tests share one shape.
Severities are ordered so the verdict can be computed from the worst one: ``critical`` / ``high`` make a
scan FAILED, ``medium`` makes it WARNED, ``low`` / ``info`` are reported but do not change the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """Order of a severity (higher is worse)."""
    return _RANK[severity]


@dataclass(frozen=True)
class Finding:
    """One static finding. ``file`` is the model-relative POSIX path (``a.zip!inner/data.pkl`` inside
    archives) so a reader can locate it without re-running the scan."""

    rule_id: str
    severity: str
    file: str
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_json(self) -> dict[str, Any]:
        """The predicate's ``staticFindings`` item (lowerCamelCase, evidence capped at 500 chars)."""
        out: dict[str, Any] = {
            "ruleId": self.rule_id,
            "severity": self.severity,
            "file": self.file,
            "evidence": self.evidence[:500],
        }
        if self.details:
            out["details"] = self.details
        return out


def worst(findings: list[Finding]) -> str | None:
    """The worst severity among ``findings`` (``None`` when there are none)."""
    if not findings:
        return None
    return max((f.severity for f in findings), key=severity_rank)


UNANALYSED = "format.unanalysed"


def unanalysed(file: str, reason: str) -> Finding:
    """The finding for content the scanner cannot analyse: medium, so the result is at least WARNED
    (never a silent PASSED), and one rule id a policy or a reader can look for."""
    return Finding(UNANALYSED, "medium", file, reason)


def dedupe(findings: list[Finding]) -> list[Finding]:
    """Drop repeats of the same rule and evidence (one finding per distinct fact), keeping order."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for f in findings:
        key = (f.rule_id, f.file, f.evidence)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
