"""Verification policy: who is trusted for what, and which attestations a model must carry.

This module decides; it does no I/O beyond loading the policy file. ``evaluate`` takes attestations
that already verified (signature, subject, schema) and answers allowed/denied with reason codes and
the evidence used, so the CLI, the Python API, the guard and the registry's admission endpoints
reach the same decision from the same inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rfc8785
import yaml

from attest._internal.capped import MAX_POLICY_BYTES, read_capped_text
from attest._internal.walk import DEFAULT_IGNORES
from attest.errors import PolicyError, SchemaError
from attest.keys import load_public_key
from attest.oms import OMS_DEFAULT_SIGNATURE, OMS_GIT_PATHS
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

if TYPE_CHECKING:  # evidence.py imports this module; the rule's rejections ride on the Decision
    from attest.evidence import Rejected

POLICY_API_VERSION = "model-attest.dev/policy/v1"
# Dates further ahead than this are not trusted to satisfy an age requirement (a "fresh forever" trick).
CLOCK_SKEW = timedelta(hours=1)
# An OpenSSF model-signing signature is a manifest too: it satisfies a manifest requirement.
SATISFIES = {MODEL_MANIFEST_V1: {MODEL_MANIFEST_V1, OMS_SIGNATURE_V1}}
# The dedicated role whose signers may revoke, beside the roles trusted for the model's manifest.
REVOKERS_ROLE = "revokers"
# The longest age requirement accepted (about a century): beyond it date arithmetic overflows.
MAX_AGE_DAYS = 36500


@dataclass(frozen=True)
class Reason:
    """A machine-readable reason code with a human sentence."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Decision:
    """Allowed or denied, why (``reasons``), on what (``evidence``), and what was not evidence.

    ``rejected`` lists the bundles the evidence rule (``attest.evidence``) set aside: they did not
    verify, their signer is not trusted for what they say, or they are about another model. They
    never decide; they are reported so a user sees what was ignored (``warnings``).
    """

    allowed: bool
    model_digest: str
    reasons: list[Reason] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    policy_digest: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    def deny(self, code: str, message: str) -> None:
        self.allowed = False
        self.reasons.append(Reason(code, message))

    @property
    def warnings(self) -> list[str]:
        """One line per rejected bundle, for a printer to show beside the decision."""
        return [f"ignored {r.bundle}: {r.code}: {r.message}" for r in self.rejected]

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allowed" if self.allowed else "denied",
            "modelDigest": self.model_digest,
            "policyDigest": self.policy_digest,
            "reasons": [r.to_json() for r in self.reasons],
            "evidence": self.evidence,
            "rejected": [r.to_json() for r in self.rejected],
            "warnings": self.warnings,
            **self.details,
        }


@dataclass(frozen=True)
class Requirement:
    """One attestation the model must carry.

    ``threshold``: how many *distinct* signers (keys or Sigstore identities) of the ``signed_by``
    roles must each provide a satisfying attestation (k-of-n; 1 by default).
    ``policy_digest`` / ``policy_uri``: for a verification summary (VSA), the policy the verifier
    must have applied; a VSA that passed some other policy says nothing about this one.
    """

    predicate_type: str
    signed_by: tuple[str, ...] = ()
    max_age_days: float | None = None
    allowed_results: tuple[str, ...] = ("PASSED",)
    jurisdictions: tuple[str, ...] = ()
    approved_constitutions: tuple[str, ...] = ()
    relationships: tuple[str, ...] = ()
    threshold: int = 1
    policy_digest: str | None = None
    policy_uri: str | None = None
    forbid_ignores: bool = False  # manifests and OMS signatures: no ignore beyond the defaults

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Requirement:
        pinned = doc.get("policyDigest")
        return cls(
            predicate_type=doc["predicateType"],
            signed_by=tuple(doc.get("signedBy", ())),
            max_age_days=doc.get("maxAgeDays"),
            allowed_results=tuple(doc.get("allowedResults", ("PASSED",))),
            jurisdictions=tuple(doc.get("jurisdictions", ())),
            approved_constitutions=tuple(strip_algorithm(d) for d in doc.get("approvedConstitutions", ())),
            relationships=tuple(doc.get("relationships", ())),
            threshold=int(doc.get("threshold", 1)),
            policy_digest=strip_algorithm(pinned).lower() if isinstance(pinned, str) else None,
            policy_uri=doc.get("policyUri"),
            forbid_ignores=bool(doc.get("forbidIgnores", False)),
        )

    @property
    def who(self) -> str:
        return "/".join(self.signed_by) or "a trusted signer"


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
        """Read and check the policy file at ``path``; every problem is a one-line ``PolicyError``
        (or a ``UsageError`` for a missing or special file), never a parser's traceback."""
        path = Path(path)
        text = read_capped_text(path, MAX_POLICY_BYTES, "policy")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: policy is not valid YAML ({str(exc).splitlines()[0]})") from None
        except RecursionError:  # 1 MiB of '[' fits under the cap: the YAML composer recurses per level
            raise PolicyError(f"{path}: policy is nested too deeply") from None
        return cls.from_document(doc, base_dir=path.parent, where=str(path))

    @classmethod
    def from_document(cls, doc: Any, base_dir: Path | None = None, where: str = "policy") -> Policy:
        """Check a parsed policy document (schema, roles, requirements) and build the ``Policy``."""
        try:
            return cls._from_document(doc, base_dir, where)
        except RecursionError:  # a document just under the parser's depth limit still recurses here
            raise PolicyError(f"{where}: policy is nested too deeply") from None

    @classmethod
    def _from_document(cls, doc: Any, base_dir: Path | None, where: str) -> Policy:
        _require_vsa_pins(doc, where)  # before the schema, whose if/then message would be cryptic
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
            _check_requirement(req, roles, where)
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
        return replace(base, keys={**base.keys, **self.keys}, identities=identities)  # keeps every other root

    def roles_for(self, predicate_type: str) -> set[str] | None:
        """The roles trusted to provide ``predicate_type``; None when no requirement asks for it.

        A requirement without ``signedBy`` accepts every role of the policy.
        """
        reqs = [
            r
            for r in self.requirements
            if predicate_type in SATISFIES.get(r.predicate_type, {r.predicate_type})
        ]
        if not reqs:
            return None
        if any(not r.signed_by for r in reqs):
            return set(self.roles)
        return {role for r in reqs for role in r.signed_by}

    def revocation_roles(self) -> set[str]:
        """Who may revoke: the roles trusted for the model's manifest, plus a ``revokers`` role.

        Without a manifest requirement every role vouches for the model, so every role may revoke.
        A scanner or a stranger cannot withdraw a publisher's model.
        """
        manifest = self.roles_for(MODEL_MANIFEST_V1)
        allowed = set(self.roles) if manifest is None else manifest
        return allowed | ({REVOKERS_ROLE} & set(self.roles))

    def roles_of(self, signer: SignerIdentity) -> set[str]:
        found = set()
        for role, members in self.roles.items():
            for m in members:
                if (isinstance(m, IdentityRule) and m.matches(signer)) or m == signer.key_fingerprint:
                    found.add(role)
        return found

    def key_fingerprints(self) -> set[str]:
        return {m for members in self.roles.values() for m in members if isinstance(m, str)}


def _require_vsa_pins(doc: Any, where: str) -> None:
    """A VSA requirement must pin the verifier and the policy it verified, or the VSA means nothing."""
    require = doc.get("require") if isinstance(doc, dict) else None
    for i, req in enumerate(require if isinstance(require, list) else []):
        if not (isinstance(req, dict) and req.get("predicateType") == VERIFICATION_SUMMARY_V1):
            continue
        if not req.get("signedBy") or not (req.get("policyDigest") or req.get("policyUri")):
            raise PolicyError(
                f"{where} is invalid at require/{i}: a verification summary requirement must pin its "
                "verifier (signedBy) and the policy it verified (policyDigest and/or policyUri)"
            )


def _check_requirement(req: Requirement, roles: dict[str, Any], where: str) -> None:
    """Refuse requirements that cannot mean what they say (a usage error, at load time)."""
    for role in req.signed_by:
        if role not in roles:
            raise PolicyError(f"{where}: requirement for {req.predicate_type} names unknown role {role!r}")
    if req.threshold > 1:
        if not req.signed_by:
            raise PolicyError(f"{where}: requirement for {req.predicate_type}: threshold needs signedBy")
        members = {m for role in req.signed_by for m in roles[role]}
        bounded = all(not (isinstance(m, IdentityRule) and m.identity_regex) for m in members)
        if bounded and req.threshold > len(members):
            raise PolicyError(
                f"{where}: requirement for {req.predicate_type}: threshold {req.threshold} exceeds the "
                f"{len(members)} signers of {req.who}"
            )


def parse_time(value: str) -> datetime:
    """An RFC 3339 time in UTC; ``ValueError`` for anything unusable, out-of-range dates included."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 lies beyond datetime.max in UTC
        raise ValueError(f"time {value!r} is out of range") from None


def oms_extra_ignores(predicate: dict[str, Any]) -> list[str]:
    """The ignore paths of an OpenSSF (OMS) signature beyond what every such signature leaves out.

    Not counted: model_signing's git paths (``.git``, ``.gitattributes``, ``.github``, ``.gitignore``),
    and the signature file itself as model_signing and ``attest sign --format oms`` record it when it
    is written inside the model: ``model.sig`` (model_signing's default name) or a ``*.sigstore.json``
    file (model-attest's default ignore). Any other path leaves files on disk unsigned. A malformed
    ``ignore_paths`` is returned whole, so a policy that forbids ignores denies it.
    """
    serialization = predicate.get("serialization")
    paths = serialization.get("ignore_paths", []) if isinstance(serialization, dict) else []
    if not isinstance(paths, list):
        return [repr(paths)]
    extra = []
    for raw in paths:
        path = str(raw).strip("/").removeprefix("./")
        if path in OMS_GIT_PATHS or path == OMS_DEFAULT_SIGNATURE:
            continue
        if "/" not in path and path.endswith(".sigstore.json"):
            continue
        extra.append(str(raw))
    return extra


def _attestation_time(att: VerifiedAttestation) -> datetime | None:
    p = att.predicate
    for key in ("scanFinishedOn", "evaluationDate", "revokedOn", "timeVerified"):
        if isinstance(p.get(key), str):
            try:
                return parse_time(p[key])
            except (ValueError, OverflowError):
                return None
    return None


def _check(req: Requirement, att: VerifiedAttestation, now: datetime) -> Reason | None:
    """Why ``att`` does not satisfy ``req`` (None when it does), beyond type and signer."""
    p = att.predicate
    if req.forbid_ignores and att.predicate_type == MODEL_MANIFEST_V1:
        # An ignore pattern decides which files on disk the signature does not cover.
        extra = [i for i in p.get("ignores", ()) if i not in DEFAULT_IGNORES]
        if extra or p.get("allowIgnoreLoadable"):
            return Reason(
                "IGNORES_FORBIDDEN",
                f"the signed manifest leaves files out with ignore patterns {extra}; the policy forbids ignores",
            )
    if req.forbid_ignores and att.predicate_type == OMS_SIGNATURE_V1:
        extra = oms_extra_ignores(p)
        if extra:
            return Reason(
                "IGNORES_FORBIDDEN",
                f"the OpenSSF signature leaves out ignore paths {extra}; the policy forbids ignores",
            )
    if req.max_age_days is not None:
        when = _attestation_time(att)
        if when is None:
            return Reason("ATTESTATION_UNDATED", f"{att.predicate_type} carries no usable date")
        if when - now > CLOCK_SKEW:
            return Reason(
                "ATTESTATION_FROM_FUTURE", f"{att.predicate_type} is dated {when:%Y-%m-%d}, in the future"
            )
        if now - when > timedelta(days=min(req.max_age_days, MAX_AGE_DAYS)):
            return Reason(
                "ATTESTATION_STALE",
                f"{att.predicate_type} from {when:%Y-%m-%d} is older than {req.max_age_days:g} days",
            )
    if req.predicate_type == VERIFICATION_SUMMARY_V1:
        return _check_vsa(req, p)
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


def _check_vsa(req: Requirement, p: dict[str, Any]) -> Reason | None:
    """A VSA counts only if it passed, and passed *the pinned policy* (digest and/or name)."""
    if p.get("verificationResult") != "PASSED":
        return Reason("VSA_FAILED", f"verification summary says {p.get('verificationResult')}")
    recorded: dict[str, Any] = p["policy"] if isinstance(p.get("policy"), dict) else {}
    digests: dict[str, Any] = recorded["digest"] if isinstance(recorded.get("digest"), dict) else {}
    got_digest = str(digests.get("sha256", "")).lower()
    if req.policy_digest is not None and got_digest != req.policy_digest:
        return Reason(
            "VSA_POLICY_MISMATCH",
            f"verification summary is for policy sha256:{got_digest or '(none)'}, "
            f"not the pinned sha256:{req.policy_digest}",
        )
    if req.policy_uri is not None and recorded.get("uri") != req.policy_uri:
        return Reason(
            "VSA_POLICY_MISMATCH",
            f"verification summary is for policy {recorded.get('uri') or '(unnamed)'!s}, not {req.policy_uri}",
        )
    return None


def evaluate(
    policy: Policy,
    attestations: Sequence[VerifiedAttestation],
    model_digest: str,
    now: datetime | None = None,
) -> Decision:
    """Decide over attestations that already verified *for this model digest*.

    Callers should pass the evidence of ``attest.evidence.collect_evidence``; the role checks here
    are repeated so that a direct caller cannot make an untrusted signer count either.
    """
    now = now or datetime.now(UTC)
    decision = Decision(True, model_digest, policy_digest=policy.digest or None)
    used: dict[str, VerifiedAttestation] = {}
    for req in policy.requirements:
        accepted_types = SATISFIES.get(req.predicate_type, {req.predicate_type})
        candidates = [a for a in attestations if a.predicate_type in accepted_types]
        failure: Reason | None = None
        satisfying: dict[SignerIdentity, VerifiedAttestation] = {}  # one vote per distinct signer
        for att in candidates:
            roles = policy.roles_of(att.signer)
            if not roles or (req.signed_by and not roles & set(req.signed_by)):
                failure = failure or Reason(
                    "UNTRUSTED_SIGNER", f"{req.predicate_type} signed by {att.signer}, not by {req.who}"
                )
                continue
            if att.signer in satisfying:
                continue
            problem = _check(req, att, now)
            if problem is None:
                satisfying[att.signer] = att
                if len(satisfying) >= req.threshold:
                    break
            else:
                failure = problem
        if len(satisfying) >= req.threshold:
            used.update((a.bundle_digest, a) for a in satisfying.values())
        elif satisfying:
            decision.deny(
                "THRESHOLD_NOT_MET",
                f"{req.predicate_type} needs {req.threshold} distinct signers from {req.who}, "
                f"found {len(satisfying)} ({', '.join(str(s) for s in satisfying)})",
            )
        elif failure is not None:
            decision.deny(failure.code, failure.message)
        else:
            decision.deny("MISSING_ATTESTATION", f"no {req.predicate_type} attestation from {req.who}")
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
    """Revocations of ``model_digest`` signed with authority over it (``Policy.revocation_roles``)."""
    want = strip_algorithm(model_digest).lower()
    allowed = policy.revocation_roles()
    return [
        a
        for a in attestations
        if a.predicate_type == REVOCATION_V1
        and strip_algorithm(str(a.predicate.get("revokedDigest", ""))).lower() == want
        and policy.roles_of(a.signer) & allowed
    ]
