"""Verification policy: who is trusted for what, and which attestations a model must carry.

This module decides; it does no I/O beyond loading the policy file. ``evaluate`` takes attestations
that already verified (signature, subject, schema) and answers allowed/denied with reason codes and
the evidence used, so the CLI, the Python API, the guard and the registry's admission endpoints
reach the same decision from the same inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
import yaml

from attest.errors import PolicyError, SchemaError
from attest.keys import load_public_key
from attest.predicates import (
    BACKDOOR_SCAN_V1,
    COMPLIANCE_ASSESSMENT_V1,
    CONSTITUTION_BINDING_V1,
    MODEL_MANIFEST_V1,
    OMS_SIGNATURE_V1,
    REVOCATION_V1,
    VERIFICATION_SUMMARY_V1,
    validate_document,
)
from attest.statement import strip_algorithm
from attest.verifying import IdentityRule, SignerIdentity, Trust, VerifiedAttestation

POLICY_API_VERSION = "model-attest.dev/policy/v1"
# Dates further ahead than this are not trusted to satisfy an age requirement (a "fresh forever" trick).
CLOCK_SKEW = timedelta(hours=1)
# An OpenSSF model-signing signature is a manifest too: it satisfies a manifest requirement.
SATISFIES = {MODEL_MANIFEST_V1: {MODEL_MANIFEST_V1, OMS_SIGNATURE_V1}}


@dataclass(frozen=True)
class Reason:
    """A machine-readable reason code with a human sentence."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Decision:
    allowed: bool
    model_digest: str
    reasons: list[Reason] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    policy_digest: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def deny(self, code: str, message: str) -> None:
        self.allowed = False
        self.reasons.append(Reason(code, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allowed" if self.allowed else "denied",
            "modelDigest": self.model_digest,
            "policyDigest": self.policy_digest,
            "reasons": [r.to_json() for r in self.reasons],
            "evidence": self.evidence,
            **self.details,
        }


@dataclass(frozen=True)
class Requirement:
    predicate_type: str
    signed_by: tuple[str, ...] = ()
    max_age_days: float | None = None
    allowed_results: tuple[str, ...] = ("PASSED",)
    jurisdictions: tuple[str, ...] = ()
    approved_constitutions: tuple[str, ...] = ()
    relationships: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Requirement:
        return cls(
            predicate_type=doc["predicateType"],
            signed_by=tuple(doc.get("signedBy", ())),
            max_age_days=doc.get("maxAgeDays"),
            allowed_results=tuple(doc.get("allowedResults", ("PASSED",))),
            jurisdictions=tuple(doc.get("jurisdictions", ())),
            approved_constitutions=tuple(strip_algorithm(d) for d in doc.get("approvedConstitutions", ())),
            relationships=tuple(doc.get("relationships", ())),
        )


@dataclass(frozen=True)
class Policy:
    """A parsed, schema-valid policy. ``digest`` names it in verdicts and caches."""

    roles: dict[str, tuple[str | IdentityRule, ...]]  # key fingerprints or identity rules
    requirements: tuple[Requirement, ...]
    keys: dict[str, Any]  # fingerprint -> public key, for keys given as files
    deny_revoked: bool = True
    digest: str = ""
    name: str = ""

    @classmethod
    def load(cls, path: Path | str) -> Policy:
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read policy: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: policy is not valid YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_document(doc, base_dir=path.parent, where=str(path))

    @classmethod
    def from_document(cls, doc: Any, base_dir: Path | None = None, where: str = "policy") -> Policy:
        try:
            validate_document("policy", doc, what=where)
        except SchemaError as exc:
            raise PolicyError(str(exc)) from None
        keys: dict[str, Any] = {}
        roles: dict[str, tuple[str | IdentityRule, ...]] = {}
        for role, entries in doc["signers"].items():
            members: list[str | IdentityRule] = []
            for entry in entries:
                if "key" in entry:
                    members.append(entry["key"])
                elif "keyFile" in entry:
                    key = load_public_key((base_dir or Path.cwd()) / entry["keyFile"])
                    fp = Trust().add_key(key)
                    keys[fp] = key
                    members.append(fp)
                else:
                    members.append(
                        IdentityRule(entry["issuer"], entry.get("identity"), entry.get("identityRegex"))
                    )
            roles[role] = tuple(members)
        requirements = tuple(Requirement.from_json(r) for r in doc["require"])
        for req in requirements:
            for role in req.signed_by:
                if role not in roles:
                    raise PolicyError(
                        f"{where}: requirement for {req.predicate_type} names unknown role {role!r}"
                    )
        digest = "sha256:" + hashlib.sha256(rfc8785.dumps(doc)).hexdigest()
        return cls(roles, requirements, keys, bool(doc.get("denyRevoked", True)), digest, doc.get("name", ""))

    @classmethod
    def default(cls, trust: Trust) -> Policy:
        """Without a policy file: a manifest signed by any signer the command line trusts."""
        members: list[str | IdentityRule] = [*trust.keys, *trust.identities]
        return cls(
            {"cli": tuple(members)}, (Requirement(MODEL_MANIFEST_V1),), dict(trust.keys), True, "", "default"
        )

    def trust(self, base: Trust | None = None) -> Trust:
        """The verification trust this policy implies, merged with command-line trust ``base``.

        A role member named only by fingerprint verifies with a key of that fingerprint supplied
        elsewhere (``--key``, the registry's namespace bindings); a policy cannot conjure key bytes.
        """
        base = base or Trust()
        identities = list(base.identities)
        for members in self.roles.values():
            identities += [m for m in members if isinstance(m, IdentityRule) and m not in identities]
        return Trust({**base.keys, **self.keys}, identities, base.trust_config, base.offline, base.staging)

    def roles_of(self, signer: SignerIdentity) -> set[str]:
        found = set()
        for role, members in self.roles.items():
            for m in members:
                if (isinstance(m, IdentityRule) and m.matches(signer)) or m == signer.key_fingerprint:
                    found.add(role)
        return found

    def key_fingerprints(self) -> set[str]:
        return {m for members in self.roles.values() for m in members if isinstance(m, str)}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _attestation_time(att: VerifiedAttestation) -> datetime | None:
    p = att.predicate
    for key in ("scanFinishedOn", "evaluationDate", "revokedOn", "timeVerified"):
        if isinstance(p.get(key), str):
            try:
                return parse_time(p[key])
            except ValueError:
                return None
    return None


def _check(req: Requirement, att: VerifiedAttestation, now: datetime) -> Reason | None:
    """Why ``att`` does not satisfy ``req`` (None when it does), beyond type and signer."""
    p = att.predicate
    if req.max_age_days is not None:
        when = _attestation_time(att)
        if when is None:
            return Reason("ATTESTATION_UNDATED", f"{att.predicate_type} carries no usable date")
        if when - now > CLOCK_SKEW:
            return Reason(
                "ATTESTATION_FROM_FUTURE", f"{att.predicate_type} is dated {when:%Y-%m-%d}, in the future"
            )
        if now - when > timedelta(days=req.max_age_days):
            return Reason(
                "ATTESTATION_STALE",
                f"{att.predicate_type} from {when:%Y-%m-%d} is older than {req.max_age_days:g} days",
            )
    if req.predicate_type == VERIFICATION_SUMMARY_V1 and p.get("verificationResult") != "PASSED":
        return Reason("VSA_FAILED", f"verification summary says {p.get('verificationResult')}")
    if req.predicate_type == BACKDOOR_SCAN_V1 and p.get("result") not in req.allowed_results:
        return Reason(
            "SCAN_NOT_PASSED",
            f"backdoor scan result is {p.get('result')}, policy accepts {'/'.join(req.allowed_results)}",
        )
    if req.predicate_type == COMPLIANCE_ASSESSMENT_V1:
        failing = [
            f.get("ruleId", "?")
            for f in p.get("findings", [])
            if f.get("status") == "not-satisfied"
            and (not req.jurisdictions or f.get("jurisdiction") in req.jurisdictions)
        ]
        if failing:
            return Reason(
                "COMPLIANCE_NOT_SATISFIED", f"not-satisfied compliance findings: {', '.join(failing)}"
            )
    if req.predicate_type == CONSTITUTION_BINDING_V1:
        digest = str(p.get("constitution", {}).get("canonicalDigest", {}).get("sha256", ""))
        if req.approved_constitutions and digest not in req.approved_constitutions:
            return Reason(
                "CONSTITUTION_NOT_APPROVED", f"constitution sha256:{digest} is not an approved constitution"
            )
        if req.relationships and p.get("relationship") not in req.relationships:
            return Reason(
                "CONSTITUTION_RELATIONSHIP",
                f"constitution relationship {p.get('relationship')!r} is not accepted",
            )
    return None


def evaluate(
    policy: Policy,
    attestations: Sequence[VerifiedAttestation],
    model_digest: str,
    now: datetime | None = None,
) -> Decision:
    """Decide over attestations that already verified *for this model digest*."""
    now = now or datetime.now(UTC)
    decision = Decision(True, model_digest, policy_digest=policy.digest or None)
    used: dict[str, VerifiedAttestation] = {}
    for req in policy.requirements:
        accepted_types = SATISFIES.get(req.predicate_type, {req.predicate_type})
        candidates = [a for a in attestations if a.predicate_type in accepted_types]
        failure: Reason | None = None
        satisfied = None
        for att in candidates:
            roles = policy.roles_of(att.signer)
            if not roles or (req.signed_by and not roles & set(req.signed_by)):
                failure = failure or Reason(
                    "UNTRUSTED_SIGNER",
                    f"{req.predicate_type} signed by {att.signer}, not by {'/'.join(req.signed_by) or 'a trusted signer'}",
                )
                continue
            problem = _check(req, att, now)
            if problem is None:
                satisfied = att
                break
            failure = problem
        if satisfied is not None:
            used[satisfied.bundle_digest] = satisfied
        else:
            decision.deny(
                *(failure.code, failure.message)
                if failure
                else (
                    "MISSING_ATTESTATION",
                    f"no {req.predicate_type} attestation from {'/'.join(req.signed_by) or 'a trusted signer'}",
                )
            )
    if policy.deny_revoked:
        for att in _revocations(policy, attestations, model_digest):
            used[att.bundle_digest] = att
            decision.deny(
                "REVOKED",
                f"model revoked by {att.signer} on {att.predicate.get('revokedOn')}: {att.predicate.get('reason')}",
            )
    decision.evidence = [a.evidence() for a in used.values()]
    return decision


def _revocations(
    policy: Policy, attestations: Iterable[VerifiedAttestation], model_digest: str
) -> list[VerifiedAttestation]:
    want = strip_algorithm(model_digest)
    return [
        a
        for a in attestations
        if a.predicate_type == REVOCATION_V1
        and strip_algorithm(str(a.predicate.get("revokedDigest", ""))) == want
        and policy.roles_of(a.signer)
    ]
