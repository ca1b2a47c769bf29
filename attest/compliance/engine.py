"""The compliance engine: every rule of every pack, for one deployment profile, on one date.

Each rule gets exactly one status, decided in this order (the first that applies wins):

1. **not-applicable**: the rule is a draft and drafts were not asked for; the date is before the
   rule's effective date ("not yet in force, applies from D") or on/after its end; or its
   applicability condition is false for this profile.
2. **insufficient-evidence**: the profile does not state a fact the applicability condition needs.
3. **not-satisfied**: an evidence document the rule relies on does not match its declared digest
   (a tampered or swapped document is a finding, not a silent pass); or the profile declares the
   required control as not implemented.
4. **insufficient-evidence**: the profile does not declare the control; or a required kind of
   evidence is not referenced, or its file cannot be read.
5. **satisfied**.

Findings are statements about declared facts and hashed documents; they are not legal advice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from attest.compliance import conditions
from attest.compliance.profile import DECLARED, MISMATCH, VERIFIED, DeploymentProfile
from attest.compliance.rules import Rule, RulePack
from attest.errors import UsageError

SATISFIED = "satisfied"
NOT_SATISFIED = "not-satisfied"
NOT_APPLICABLE = "not-applicable"
INSUFFICIENT = "insufficient-evidence"
STATUSES = (SATISFIED, NOT_SATISFIED, NOT_APPLICABLE, INSUFFICIENT)

DISCLAIMER = (
    "Automated assessment of declared facts and hashed evidence against encoded rule packs; "
    "not legal advice. Check the cited sources and consult counsel."
)


@dataclass(frozen=True)
class Options:
    """How to read the law. Both default to the law as in force on the evaluation date."""

    include_drafts: bool = False  # evaluate rules whose legal status is "draft" (never binding)
    apply_pending_amendments: bool = False  # use the dates of provisional amendments (Digital Omnibus)

    def to_json(self) -> dict[str, bool]:
        return {"includeDrafts": self.include_drafts, "applyPendingAmendments": self.apply_pending_amendments}


@dataclass(frozen=True)
class Finding:
    rule: Rule
    pack: RulePack
    status: str
    reason: str
    evidence: tuple[dict[str, Any], ...]
    effective_from: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ruleId": self.rule.id,
            "title": self.rule["title"],
            "jurisdiction": self.pack.jurisdiction,
            "rulePack": self.pack.name,
            "status": self.status,
            "severity": self.rule["severity"],
            "citation": self.rule.citation,
            "effectiveFrom": self.effective_from,
            "evidence": list(self.evidence),
            "needs": {
                "controls": conditions.fields(self.rule["satisfiedWhen"]),
                "evidence": list(self.rule["evidence"]),
            },
            "reason": self.reason,
        }


def effective_from(rule: Rule, context: dict[str, Any], options: Options) -> tuple[str, str]:
    """(date the rule applies from for this profile, why that date)."""
    amendment = rule.get("pendingAmendment")
    if options.apply_pending_amendments and amendment:
        return amendment["effectiveFrom"], f"{amendment['instrument']} ({amendment['legalStatus']})"
    for transition in rule.get("effectiveFromWhen", []):
        if conditions.evaluate(transition["when"], context) is True:
            return transition["effectiveFrom"], transition["reason"]
    return rule["effectiveFrom"], rule["instrument"]


def _not_in_force(rule: Rule, date: str, start: str, why: str) -> str | None:
    if date < start:
        reason = f"not yet in force: applies from {start} ({why})"
        amendment = rule.get("pendingAmendment")
        if amendment and amendment["effectiveFrom"] != start:
            reason += (
                f"; {amendment['instrument']} ({amendment['legalStatus']}, not yet law) would move this to "
                f"{amendment['effectiveFrom']}"
            )
        return reason
    until = rule.get("effectiveUntil")
    if until is not None and date >= until:
        return f"no longer in force: applied until {until} (exclusive)"
    return None


def evaluate_rule(
    rule: Rule, pack: RulePack, profile: DeploymentProfile, date: dt.date, options: Options
) -> Finding:
    context = profile.context()
    day = date.isoformat()
    start, why = effective_from(rule, context, options)

    def finding(status: str, reason: str, evidence: tuple[dict[str, Any], ...] = ()) -> Finding:
        return Finding(rule, pack, status, reason, evidence, start)

    if rule["legalStatus"] == "draft" and not options.include_drafts:
        return finding(NOT_APPLICABLE, "draft measure, not legally binding (evaluate with --include-drafts)")
    if (reason := _not_in_force(rule, day, start, why)) is not None:
        return finding(NOT_APPLICABLE, reason)
    applicable = conditions.evaluate(rule["applicability"], context)
    if applicable is False:
        return finding(
            NOT_APPLICABLE, "does not apply: " + conditions.why_false(rule["applicability"], context)
        )
    if applicable is None:
        missing = ", ".join(conditions.unknown_fields(rule["applicability"], context))
        return finding(
            INSUFFICIENT, f"cannot tell whether the rule applies: the profile does not state {missing}"
        )

    items = [item for kind in rule["evidence"] for item in profile.evidence_of(kind)]
    evidence = tuple(item.to_json() for item in items)
    tampered = [item.problem for item in items if item.state == MISMATCH]
    if tampered:
        return finding(NOT_SATISFIED, "; ".join(p for p in tampered if p), evidence)
    satisfied = conditions.evaluate(rule["satisfiedWhen"], context)
    if satisfied is False:
        return finding(
            NOT_SATISFIED,
            "declared not implemented: " + conditions.why_false(rule["satisfiedWhen"], context),
            evidence,
        )
    if satisfied is None:
        missing = ", ".join(conditions.unknown_fields(rule["satisfiedWhen"], context))
        return finding(INSUFFICIENT, f"the profile does not declare {missing}", evidence)
    usable = {item.kind for item in items if item.state in (VERIFIED, DECLARED)}
    absent = [kind for kind in rule["evidence"] if kind not in usable]
    if absent:
        unreadable = [p for item in items if (p := item.problem)]
        detail = f" ({'; '.join(unreadable)})" if unreadable else ""
        return finding(INSUFFICIENT, f"no usable evidence of kind {', '.join(absent)}{detail}", evidence)
    return finding(SATISFIED, "declared implemented and backed by hashed evidence", evidence)


@dataclass(frozen=True)
class Assessment:
    profile: DeploymentProfile
    packs: tuple[RulePack, ...]
    date: dt.date
    options: Options
    findings: tuple[Finding, ...]

    def counts(self) -> dict[str, int]:
        return {status: sum(f.status == status for f in self.findings) for status in STATUSES}

    def to_predicate(self, assessed_on: dt.datetime | None = None) -> dict[str, Any]:
        """The ``compliance-assessment/v1`` predicate (validated before it is returned)."""
        from attest.predicates import COMPLIANCE_ASSESSMENT_V1, validate_predicate

        by_jurisdiction: dict[str, dict[str, int]] = {}
        for f in self.findings:
            row = by_jurisdiction.setdefault(f.pack.jurisdiction, dict.fromkeys(STATUSES, 0))
            row[f.status] += 1
        when = assessed_on or dt.datetime.now(dt.UTC)
        predicate = {
            "rulePack": [p.reference() for p in self.packs],
            "deploymentProfile": {"name": self.profile.name, "digest": self.profile.digest},
            "evaluationDate": f"{self.date.isoformat()}T00:00:00Z",
            "assessedOn": when.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "options": self.options.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "summary": {
                "total": len(self.findings),
                **self.counts(),
                "byJurisdiction": by_jurisdiction,
                "jurisdictions": self.profile.jurisdictions,
            },
            "evidenceProblems": [p for item in self.profile.evidence if (p := item.problem)],
            "disclaimer": DISCLAIMER,
        }
        validate_predicate(COMPLIANCE_ASSESSMENT_V1, predicate)
        return predicate


def assess(
    profile: DeploymentProfile,
    packs: list[RulePack] | None = None,
    date: dt.date | None = None,
    options: Options | None = None,
) -> Assessment:
    """Evaluate every rule of ``packs`` (default: the built-in packs of the profile's jurisdictions)."""
    from attest.compliance.rules import packs_for

    chosen = tuple(packs if packs is not None else packs_for(profile.jurisdictions))
    ids = [rule.id for pack in chosen for rule in pack.rules]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise UsageError(f"rule ids appear in more than one pack: {', '.join(clashes)}")
    day = date or dt.datetime.now(dt.UTC).date()
    opts = options or Options()
    findings = tuple(evaluate_rule(rule, pack, profile, day, opts) for pack in chosen for rule in pack.rules)
    return Assessment(profile, chosen, day, opts, findings)
