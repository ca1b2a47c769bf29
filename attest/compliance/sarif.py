"""SARIF 2.1.0 export of an assessment, for code-scanning dashboards and CI gates.

Mapping: satisfied -> kind ``pass``; not-satisfied -> kind ``fail`` with a level from the rule's
severity; insufficient-evidence -> kind ``open`` (the tool could not reach a conclusion);
not-applicable -> kind ``notApplicable``. SARIF requires level ``none`` for every kind except
``fail``. The run always carries ``invocations[].executionSuccessful`` (a run without it looks clean
even when it was degraded) and evidence problems as tool execution notifications.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from attest._internal.sarif import SARIF_SCHEMA, SEVERITY_LEVEL
from attest.compliance._export import INFORMATION_URI, TOOL_NAME, rfc3339, tool_version
from attest.compliance.engine import (
    INSUFFICIENT,
    NOT_APPLICABLE,
    NOT_SATISFIED,
    SATISFIED,
    Assessment,
)

_KIND = {SATISFIED: "pass", NOT_SATISFIED: "fail", INSUFFICIENT: "open", NOT_APPLICABLE: "notApplicable"}
_LEVEL = SEVERITY_LEVEL  # shared with the scan export (attest/_internal/sarif.py)


def _rule_descriptor(finding: Any) -> dict[str, Any]:
    rule = finding.rule
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "shortDescription": {"text": rule["title"]},
        "fullDescription": {
            "text": f"{rule['instrument']}, {rule['article']} ({rule['legalStatus']}, "
            f"{rule['obligation']}); source: {rule['source']['title']}"
        },
        "defaultConfiguration": {"level": _LEVEL[rule["severity"]]},
        "properties": {
            "jurisdiction": finding.pack.jurisdiction,
            "rulePack": finding.pack.name,
            "instrument": rule["instrument"],
            "article": rule["article"],
            "legalStatus": rule["legalStatus"],
            "obligation": rule["obligation"],
            "effectiveFrom": rule["effectiveFrom"],
            "severity": rule["severity"],
            "tags": ["compliance", finding.pack.jurisdiction, rule["legalStatus"], rule["obligation"]],
        },
    }
    if "url" in rule["source"]:
        descriptor["helpUri"] = rule["source"]["url"]
    return descriptor


def to_sarif(
    assessment: Assessment, predicate: dict[str, Any], started: dt.datetime, finished: dt.datetime
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run, one rule per rule evaluated and one result per finding."""
    rules = [_rule_descriptor(f) for f in assessment.findings]
    results = []
    for index, (finding, doc) in enumerate(zip(assessment.findings, predicate["findings"], strict=True)):
        kind = _KIND[finding.status]
        results.append(
            {
                "ruleId": finding.rule.id,
                "ruleIndex": index,
                "kind": kind,
                "level": _LEVEL[finding.rule["severity"]] if kind == "fail" else "none",
                "message": {"text": f"{finding.status}: {finding.reason}"},
                "properties": {
                    "status": finding.status,
                    "jurisdiction": finding.pack.jurisdiction,
                    "effectiveFrom": doc["effectiveFrom"],
                    "evidence": doc["evidence"],
                },
            }
        )
    notifications = [
        {"level": "warning", "message": {"text": problem}}
        for problem in predicate.get("evidenceProblems", [])
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": True,
        "startTimeUtc": rfc3339(started),
        "endTimeUtc": rfc3339(finished),
    }
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": tool_version(),
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [invocation],
                "results": results,
                "properties": {
                    "evaluationDate": predicate["evaluationDate"],
                    "rulePacks": predicate["rulePack"],
                    "deploymentProfile": predicate["deploymentProfile"],
                    "summary": predicate["summary"],
                    "disclaimer": predicate["disclaimer"],
                },
            }
        ],
    }
