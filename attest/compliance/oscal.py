"""OSCAL assessment-results export, for GRC tools (compliance-trestle, Lula and the like).

One ``result`` for the assessment. Every finding becomes an ``observation`` (method EXAMINE: the
engine examines declared facts and hashed documents; ``relevant-evidence`` lists each document with
its sha256). Applicable rules also become OSCAL ``findings`` whose ``target.status.state`` is
``satisfied`` or ``not-satisfied``; OSCAL has no third state, so insufficient-evidence is
``not-satisfied`` with ``reason: insufficient-evidence`` (never a silent pass). Not-applicable rules
are observations only. UUIDs are derived from the predicate digest, so an export is reproducible.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from attest.compliance._export import (
    INFORMATION_URI,
    TOOL_NAME,
    predicate_digest,
    rfc3339,
    stable_uuid,
    tool_version,
)
from attest.compliance.engine import INSUFFICIENT, NOT_APPLICABLE, SATISFIED, Assessment

OSCAL_VERSION = "1.1.2"
NS = "https://model-attest.dev/ns/oscal"


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": value}


def to_oscal(
    assessment: Assessment, predicate: dict[str, Any], started: dt.datetime, finished: dt.datetime
) -> dict[str, Any]:
    digest = predicate_digest(predicate)
    collected = rfc3339(finished)
    observations: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for finding, doc in zip(assessment.findings, predicate["findings"], strict=True):
        rule_id = finding.rule.id
        observation_uuid = stable_uuid(digest, "observation", rule_id)
        observation: dict[str, Any] = {
            "uuid": observation_uuid,
            "title": f"{rule_id}: {finding.rule['title']}",
            "description": f"{finding.status}: {finding.reason}",
            "props": [
                _prop("jurisdiction", finding.pack.jurisdiction),
                _prop("status", finding.status),
                _prop("legal-status", finding.rule["legalStatus"]),
            ],
            "methods": ["EXAMINE"],
            "collected": collected,
        }
        evidence = [
            {
                "href": item["location"],
                "description": f"{item['kind']} ({item['state']})"
                + (f", sha256 {item['digest']['sha256']}" if "digest" in item else ""),
            }
            for item in doc["evidence"]
        ]
        if evidence:
            observation["relevant-evidence"] = evidence
        observations.append(observation)
        if finding.status == NOT_APPLICABLE:
            continue
        status: dict[str, Any] = {"state": "satisfied" if finding.status == SATISFIED else "not-satisfied"}
        if finding.status == INSUFFICIENT:
            status["reason"] = "insufficient-evidence"
        findings.append(
            {
                "uuid": stable_uuid(digest, "finding", rule_id),
                "title": f"{rule_id}: {finding.rule['title']}",
                "description": finding.reason,
                "props": [
                    _prop("jurisdiction", finding.pack.jurisdiction),
                    _prop("severity", finding.rule["severity"]),
                ],
                "target": {
                    "type": "objective-id",
                    "target-id": rule_id,
                    "description": f"{finding.rule['instrument']}, {finding.rule['article']}",
                    "status": status,
                },
                "related-observations": [{"observation-uuid": observation_uuid}],
            }
        )
    packs = ", ".join(f"{p['name']} {p['version']} ({p['digest']})" for p in predicate["rulePack"])
    return {
        "assessment-results": {
            "uuid": stable_uuid(digest, "assessment-results"),
            "metadata": {
                "title": f"Compliance assessment of {predicate['deploymentProfile'].get('name', 'deployment')} "
                f"on {predicate['evaluationDate'][:10]}",
                "last-modified": collected,
                "version": tool_version(),
                "oscal-version": OSCAL_VERSION,
                "props": [_prop("predicate-sha256", digest)],
                "remarks": predicate["disclaimer"],
            },
            "import-ap": {
                "href": INFORMATION_URI + "/compliance-assessment/v1",
                "remarks": f"No separate assessment plan: the rule packs are the plan ({packs}).",
            },
            "results": [
                {
                    "uuid": stable_uuid(digest, "result"),
                    "title": f"{TOOL_NAME}: {predicate['summary']['total']} rules",
                    "description": f"Rule packs: {packs}. Deployment profile {predicate['deploymentProfile']['digest']}.",
                    "start": rfc3339(started),
                    "end": collected,
                    "props": [_prop("evaluation-date", predicate["evaluationDate"])],
                    "reviewed-controls": {"control-selections": [{"include-all": {}}]},
                    "observations": observations,
                    "findings": findings,
                }
            ],
        }
    }
