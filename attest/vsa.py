"""SLSA Verification Summary Attestations (VSA v1): a signed verdict other controllers can admit on.

A verifier that has checked a model against a policy signs one statement saying so, so a downstream
admission controller verifies one signature instead of repeating the whole evaluation. This module is
the one builder, for ``attest verify --vsa`` and for the registry's admission endpoint, and it emits
the predicate exactly as https://slsa.dev/spec/v1.0/verification_summary specifies it:

- ``policy`` is a ResourceDescriptor ``{"uri": ..., "digest": {"sha256": ...}}``: the name or URL of
  the policy and the sha256 of its canonical (RFC 8785) form, which a consumer pins
  (``attest.policy`` matches on exactly these two fields);
- ``inputAttestations[]`` are ResourceDescriptors with a *locator* ``uri`` (a registry URL plus log
  index, or a file URI) and ``digest.sha256`` of the bundle (the project's bundle identity: the sha256
  of the bundle's RFC 8785 form, the ``bundleDigest`` the registry indexes);
- ``verifiedLevels`` is an array (``FAILED`` when the policy denied);
- the statement's subject is the model: its name and its digest;
- ``timeVerified`` is RFC 3339 UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest.bundle import bundle_digest
from attest.errors import UsageError
from attest.policy import Decision
from attest.predicates import VERIFICATION_SUMMARY_V1, validate_predicate
from attest.signing import Signer
from attest.statement import build_statement, strip_algorithm

VERIFIER_ID = "https://model-attest.dev/verifier/v1"
# The custom level a PASSED verdict reports (custom values must not start with SLSA_).
PASSED_LEVEL = "MODEL_ATTEST_POLICY_PASSED"
FAILED_LEVEL = "FAILED"  # the SlsaResult the spec defines for a failed policy evaluation
# Names the CLI's built-in policy ("a manifest from a signer given on the command line").
DEFAULT_POLICY_URI = "https://model-attest.dev/policy/default"
# A bundle file read only to locate it (it already verified once): far above any real bundle.
_MAX_LOCATOR_READ = 64 * 1024 * 1024


def rfc3339_now(now: datetime | None = None) -> str:
    """Seconds precision, ``Z`` suffix: what protobuf Timestamps and every RFC 3339 parser accept."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_locators(paths: Sequence[Path | str]) -> dict[str, str]:
    """``{bundleDigest: file URI}`` for bundle files, so a VSA points at the files it relied on.

    Unreadable or non-JSON files are skipped: they never became evidence, so nothing cites them.
    """
    out: dict[str, str] = {}
    for p in paths:
        path = Path(p)
        try:
            if not path.is_file() or path.stat().st_size > _MAX_LOCATOR_READ:
                continue
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            out[bundle_digest(doc)] = path.resolve().as_uri()
    return out


def vsa_predicate(
    decision: dict[str, Any],
    resource_uri: str,
    verifier_id: str = VERIFIER_ID,
    policy_uri: str | None = None,
    input_uris: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The VSA v1 predicate for a decision (``Decision.to_json()``): PASSED when allowed, else FAILED.

    ``policy_uri`` names the policy (a server's policy name or URL, a policy file's URI); the digest
    comes from the decision's ``policyDigest``. ``input_uris`` maps a ``bundleDigest`` to where that
    bundle can be fetched; an evidence item may also carry its own ``uri``.
    """
    policy: dict[str, Any] = {"uri": policy_uri or DEFAULT_POLICY_URI}
    if decision.get("policyDigest"):
        policy["digest"] = {"sha256": strip_algorithm(str(decision["policyDigest"]))}
    inputs = []
    for e in decision.get("evidence", []):
        item: dict[str, Any] = {}
        uri = e.get("uri") or (input_uris or {}).get(e["bundleDigest"])
        if uri:
            item["uri"] = uri
        item["digest"] = {"sha256": strip_algorithm(e["bundleDigest"])}
        inputs.append(item)
    allowed = bool(decision["allowed"])
    predicate: dict[str, Any] = {
        "verifier": {"id": verifier_id},
        "timeVerified": rfc3339_now(now),
        "resourceUri": resource_uri,
        "policy": policy,
        "inputAttestations": inputs,
        "verificationResult": "PASSED" if allowed else "FAILED",
        "verifiedLevels": [PASSED_LEVEL if allowed else FAILED_LEVEL],
        # an extension field (in-toto parsers ignore unknown fields): why, in reason codes
        "reasons": decision.get("reasons", []),
    }
    validate_predicate(VERIFICATION_SUMMARY_V1, predicate)
    return predicate


def sign_vsa(
    signer: Signer,
    decision: Decision | dict[str, Any],
    model_name: str,
    *,
    policy_uri: str | None = None,
    input_uris: Mapping[str, str] | None = None,
    verifier_id: str = VERIFIER_ID,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Sign the verdict as a bundle whose subject is the model (its name and digest)."""
    doc = decision.to_json() if isinstance(decision, Decision) else decision
    digest = doc["modelDigest"]
    if not model_name:
        raise UsageError("a verification summary needs the model's name")
    predicate = vsa_predicate(
        doc,
        resource_uri=f"model:{model_name}@{digest}",
        verifier_id=verifier_id,
        policy_uri=policy_uri,
        input_uris=input_uris,
        now=now,
    )
    return signer.sign_statement(build_statement(model_name, digest, VERIFICATION_SUMMARY_V1, predicate))
