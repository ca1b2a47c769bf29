"""Admission decisions over the stored, verified attestations of a model digest.

The decision itself is ``attest.policy.evaluate`` (one policy engine for CLI, guard and registry).
This module finds the attestations, re-verifies them with the server's trust (first-time decisions),
and caches decisions keyed by (model digest, policy digest, log size): any append — a revocation in
particular — changes the log size and so invalidates every cached decision; a time-to-live bounds
how long age-based requirements (``maxAgeDays``) can be answered from cache. The key is the policy's
*digest*, never its name, so renaming or re-sending a policy cannot alias another's decisions.

Trust boundaries (docs/security.md):

- **Signed verdicts only for the server's policies.** The registry holds named policies
  (``attest serve --policy NAME=FILE``); a VSA records that name as ``policy.uri`` and the sha256 of
  the canonical policy as ``policy.digest``. A caller may send its own policy to have it evaluated,
  but that answer is never signed.
- **The evidence rule.** A stored attestation counts only if it verifies and its signer is trusted by
  the policy; anything else is reported as rejected and cannot deny on its own.
- **Bounded cost.** Before any signature is checked, rows are filtered on their *stored* signer (the
  registry verified it at publish time): attestations from signers the policy does not trust are never
  verified, so 400 foreign attestations about a digest cost 400 index rows, not 400 verifications.
  The trusted remainder is capped, evaluation has a time budget, bodies are capped before they are
  read, and caller policies cannot use regular expressions (no ReDoS by an anonymous caller).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from sqlmodel import Session, col, select

from attest.errors import AttestError, PolicyError, UsageError
from attest.evidence import BundleInput, Evidence, collect_evidence
from attest.policy import Decision, Policy
from attest.predicates import REVOCATION_V1
from attest.verifying import SignerIdentity
from registry.entries import normalise_digest, render_entries
from registry.models import Entry, EntrySubject
from registry.state import Registry

ANNOTATION = "model-attest.dev/models"
_REF = re.compile(r"^(?P<name>[^@\s]+/[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
# kube-apiserver prefixes audit annotation keys with the webhook name: ours must be bare qualified names.
AUDIT_KEY = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
CACHE_TTL_S = 60.0
MAX_MODEL_REFS = 32  # model references one AdmissionReview may carry
DEFAULT_POLICY_NAME = "default"
_POLICY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class AdmissionBudgetExceeded(AttestError):
    """The evaluation ran past its time budget: no decision (503, never cached)."""

    http_status = 503
    exit_code = 3


class VerdictRefused(AttestError):
    """The registry will not sign this verdict (caller policy, revoked model, foreign name)."""

    http_status = 409


@dataclass(frozen=True)
class Decided:
    """A decision and its JSON body, serialised once: a cache hit sends stored bytes."""

    decision: dict[str, Any]
    body: bytes

    def response_body(self, cached: bool) -> bytes:
        return self.body[:-1] + (b',"cached":true}' if cached else b',"cached":false}')


class AdmissionCache:
    """A bounded LRU of decisions; a hit costs a dictionary lookup and one log-size read."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[tuple[str, str, int], tuple[float, Decided]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> Decided | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if time.monotonic() - hit[0] > CACHE_TTL_S:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return hit[1]

    def put(self, key: tuple[str, str, int], decision: Decided) -> None:
        with self._lock:
            self._data[key] = (time.monotonic(), decision)
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass(frozen=True)
class ServerPolicy:
    """A policy the registry holds under a name: the only kind whose verdicts it signs."""

    name: str
    policy: Policy


def load_server_policies(default_file: Path | None, named: dict[str, Path]) -> dict[str, ServerPolicy]:
    """The server's named policies: ``--policy FILE`` is named ``default``; ``--policy NAME=FILE`` more.

    Loaded once at start, so a bad policy file stops the server instead of failing requests.
    """
    files = dict(named)
    if default_file is not None:
        if DEFAULT_POLICY_NAME in files and files[DEFAULT_POLICY_NAME] != default_file:
            raise UsageError("two policies are named 'default': the bare --policy FILE and default=FILE")
        files[DEFAULT_POLICY_NAME] = default_file
    out: dict[str, ServerPolicy] = {}
    for name, path in files.items():
        if not _POLICY_NAME.match(name):
            raise UsageError(f"policy name {name!r}: use letters, digits, '-', '_' and '.' (at most 63)")
        out[name] = ServerPolicy(name, Policy.load(path))
    return out


@dataclass(frozen=True)
class PolicyChoice:
    """The policy for a request: named by digest first, parsed only when the cache misses.

    ``server`` is set for a policy the registry holds (signable); ``document`` for a caller's policy.
    """

    digest: str
    document: dict[str, Any] | None = None
    server: ServerPolicy | None = None

    @property
    def label(self) -> str:
        return self.server.name if self.server else "request"


def server_policy(reg: Registry, name: str | None) -> ServerPolicy:
    """The named server policy; without a name, ``default`` (or the only one configured)."""
    policies: dict[str, ServerPolicy] = reg.policies
    if name is None:
        if DEFAULT_POLICY_NAME in policies:
            return policies[DEFAULT_POLICY_NAME]
        if len(policies) == 1:
            return next(iter(policies.values()))
        if not policies:
            raise UsageError("no policy in the request and none configured on the server")
        raise UsageError(f"name a policy: the server holds {', '.join(sorted(policies))}")
    if name not in policies:
        raise UsageError(f"the server holds no policy named {name[:80]!r}")
    return policies[name]


def _check_caller_policy(document: dict[str, Any]) -> None:
    """What an anonymous caller's policy may not do: read server files, or make the server run its
    regular expressions (catastrophic backtracking is unbounded CPU time)."""
    signers = document.get("signers")
    for entries in signers.values() if isinstance(signers, dict) else []:
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and "keyFile" in entry:
                raise PolicyError("a policy sent to the registry names keys by fingerprint, not keyFile")
            if isinstance(entry, dict) and "identityRegex" in entry:
                raise PolicyError(
                    "a policy sent to the registry names Sigstore identities exactly (identity), "
                    "not by identityRegex; configure regular expressions in a server policy"
                )


def choose_policy(reg: Registry, document: Any = None, name: str | None = None) -> PolicyChoice:
    """A caller's policy document (evaluated, never signed) or a server policy by name."""
    if document is None:
        sp = server_policy(reg, name)
        return PolicyChoice(sp.policy.digest, None, sp)
    if name is not None:
        raise UsageError("give either a policy document or a policy name, not both")
    if not isinstance(document, dict):
        raise PolicyError("policy must be a JSON object (the YAML policy document as JSON)")
    _check_caller_policy(document)
    try:
        canonical = rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, RecursionError, ValueError, TypeError) as exc:
        raise PolicyError(f"policy cannot be canonicalised: {exc}") from None
    return PolicyChoice("sha256:" + hashlib.sha256(canonical).hexdigest(), document)


def _stored_signer(signer: str, issuer: str | None) -> SignerIdentity:
    """The identity the registry recorded when it verified the bundle at publish time."""
    if issuer:
        return SignerIdentity(identity=signer, issuer=issuer)
    return SignerIdentity(key_fingerprint=signer)


@dataclass
class Loaded:
    """What one decision looked at: the evidence (by the one rule), and what was skipped unread."""

    evidence: Evidence
    rows: dict[str, Entry]  # bundle digest -> stored row, for the evidence's log entries
    stored: int
    untrusted: int
    over_cap: int


def _load_evidence(reg: Registry, session: Session, policy: Policy, digest: str) -> Loaded:
    """The evidence about ``digest`` among the stored attestations whose recorded signer the policy trusts.

    Untrusted signers' rows are counted, never verified (the bounded-cost rule: the registry checked
    each signer when it accepted the bundle, so the stored signer is a safe pre-filter). The trusted
    ones go through ``attest.evidence.collect_evidence`` with the server's trust, trusted revocations
    first and then newest first, at most ``admission_max_attestations`` of them and within
    ``admission_time_budget_s``. A row that fails verification is rejected, not a denial.
    """
    heads = session.exec(
        select(Entry.log_index, Entry.signer, Entry.signer_issuer, Entry.predicate_type)
        .join(EntrySubject, col(EntrySubject.log_index) == col(Entry.log_index))
        .where(EntrySubject.digest == digest)
        .order_by(col(Entry.log_index).desc())
    ).all()
    trusted = [h for h in heads if policy.roles_of(_stored_signer(h[1], h[2]))]
    # revocations by trusted signers are never crowded out by a flood of other attestations
    trusted.sort(key=lambda h: h[3] != REVOCATION_V1)
    cap = reg.settings.admission_max_attestations
    chosen = sorted(h[0] for h in trusted[:cap])
    rows = list(
        session.exec(select(Entry).where(col(Entry.log_index).in_(chosen)).order_by(col(Entry.log_index)))
        if chosen
        else []
    )
    budget = reg.settings.admission_time_budget_s
    deadline = time.monotonic() + budget

    def inputs() -> Iterator[BundleInput]:
        for row in rows:
            if time.monotonic() >= deadline:
                raise AdmissionBudgetExceeded(f"evaluation of {digest} exceeded {budget:g} s; try again")
            yield BundleInput(f"log entry {row.log_index}", row.bundle)

    evidence = collect_evidence(inputs(), policy, reg.trust, model_digest=digest)
    return Loaded(
        evidence,
        {r.bundle_digest: r for r in rows},
        len(heads),
        len(heads) - len(trusted),
        max(0, len(trusted) - cap),
    )


def cached_decision(reg: Registry, model_digest: str, choice: PolicyChoice, log_size: int) -> Decided | None:
    """A cache hit without touching the database (``log_size`` from the registry's size tracker)."""
    return reg.admission_cache.get((normalise_digest(model_digest), choice.digest, log_size))


def _decide(evidence: Evidence, policy: Policy, digest: str) -> Decision:
    """The evidence's decision, failing closed: an attestation whose contents the policy engine cannot
    handle (a date out of range, say) denies with a reason instead of becoming a 500."""
    try:
        return evidence.decide()
    except (ArithmeticError, ValueError, TypeError, KeyError, AttributeError) as exc:
        decision = Decision(True, digest, policy_digest=policy.digest or None)
        decision.deny("EVALUATION_FAILED", f"an attestation could not be evaluated: {type(exc).__name__}")
        decision.rejected = list(evidence.rejected)
        return decision


def decide(reg: Registry, model_digest: str, choice: PolicyChoice) -> tuple[Decided, bool]:
    """Decision JSON for one model digest; (decision, served from cache?)."""
    digest = normalise_digest(model_digest)
    with reg.db.read_session() as session:
        size = reg.log.size(session)
        reg.note_log_size(size)
        key = (digest, choice.digest, size)
        cached = reg.admission_cache.get(key)
        if cached is not None:
            return cached, True
        if choice.server is not None:
            policy = choice.server.policy
        else:
            policy = Policy.from_document(choice.document, where="policy")
        loaded = _load_evidence(reg, session, policy, digest)
        decision = _decide(loaded.evidence, policy, digest)
        if loaded.stored == 0:
            decision.deny("UNKNOWN_MODEL", f"the registry holds no attestation for {digest}")
        out = decision.to_json()
        out["policyDigest"] = choice.digest
        verified = loaded.evidence.verified
        out["attestations"] = {
            "stored": loaded.stored,
            "untrustedSigner": loaded.untrusted,
            "overCap": loaded.over_cap,
            "evidence": len(verified),
            "rejected": len(loaded.evidence.rejected),
        }
        out["modelNames"] = sorted(
            {
                s.name
                for a in verified
                if a.predicate_type != REVOCATION_V1
                for s in a.statement.subjects
                if s.digest.get("sha256", "").lower() == digest.removeprefix("sha256:")
            }
        )
        out["revoked"] = any(a.predicate_type == REVOCATION_V1 for a in verified)
        checkpoint = reg.log.checkpoint(session, size)
        used = {e["bundleDigest"] for e in out.get("evidence", [])}
        out["logEntries"] = render_entries(
            reg.log,
            session,
            [r for d, r in loaded.rows.items() if d in used],
            checkpoint,
            include_bundle=False,
        )
        out["checkpoint"] = checkpoint.note
    decided = Decided(out, json.dumps(out, separators=(",", ":")).encode())
    reg.admission_cache.put(key, decided)
    return decided, False


def verdict_name(decision: dict[str, Any], choice: PolicyChoice, model_name: str | None) -> str:
    """The subject name of a signed verdict, or why the registry refuses to sign one.

    Signed only for a server policy, never for a revoked model (whatever the policy says about
    revocations), and only under a name the verified attestations give this digest.
    """
    if choice.server is None:
        raise VerdictRefused(
            "a policy sent with the request is evaluated but never signed: name a server policy "
            "(policyName) to get a verification summary"
        )
    if decision.get("revoked"):
        raise VerdictRefused(f"{decision['modelDigest']} is revoked: the registry signs no verdict for it")
    names: list[str] = decision.get("modelNames", [])
    if model_name is not None:
        if model_name not in names:
            raise VerdictRefused(
                f"no verified attestation names {decision['modelDigest']} {model_name[:200]!r}"
                + (f" (they name {', '.join(names)})" if names else "")
            )
        return model_name
    if len(names) == 1:
        return names[0]
    if not names:
        raise VerdictRefused(f"no verified attestation names {decision['modelDigest']}: nothing to sign")
    raise UsageError(f"the attestations give several names ({', '.join(names)}): choose one with modelName")


# --- Kubernetes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageRef:
    """A model the object loads, found in its spec: where it was found, the raw reference, and the
    ``org/name`` it maps to (matched against the annotation that pins digests)."""

    where: str
    reference: str
    name: str | None


def _storage_name(reference: str) -> str | None:
    """``org/name`` of a storage URI or image reference: the last two path segments, without a tag,
    revision or digest (``hf://org/name:rev``, ``oci://ghcr.io/org/name:v1``, ``s3://b/models/org/name``)."""
    ref = reference.split("://", 1)[1] if "://" in reference else reference
    ref = ref.split("@", 1)[0].split("?", 1)[0].rstrip("/")
    parts = [p for p in ref.split("/") if p]
    if "://" not in reference and len(parts) > 2:
        parts = parts[1:]  # an image reference starts with its registry host
    if len(parts) < 2:
        return None
    org, name = parts[-2], parts[-1].split(":", 1)[0]
    return f"{org}/{name}" if org and name else None


def _pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Pod specs of a Pod, of a workload's pod template, and of a KServe predictor."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    found: list[tuple[str, dict[str, Any]]] = [("spec", spec)]
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        found.append(("spec.template.spec", template["spec"]))
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        inner = ((job.get("spec") or {}).get("template") or {}).get("spec")
        if isinstance(inner, dict):
            found.append(("spec.jobTemplate.spec.template.spec", inner))
    predictor = spec.get("predictor")
    if isinstance(predictor, dict):
        found.append(("spec.predictor", predictor))
    return found


def storage_refs(obj: dict[str, Any]) -> list[StorageRef]:
    """Model references in an object's spec: KServe ``spec.predictor.model.storageUri`` and
    ``spec.predictor.<framework>.storageUri``, and OCI image volumes (``volumes[].image.reference``)."""
    refs: list[StorageRef] = []
    spec = obj.get("spec")
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    if isinstance(predictor, dict):
        for key, value in predictor.items():
            if isinstance(value, dict) and isinstance(value.get("storageUri"), str):
                uri = value["storageUri"]
                refs.append(StorageRef(f"spec.predictor.{key}.storageUri", uri, _storage_name(uri)))
        if isinstance(predictor.get("storageUri"), str):
            uri = predictor["storageUri"]
            refs.append(StorageRef("spec.predictor.storageUri", uri, _storage_name(uri)))
    for where, pod in _pod_specs(obj):
        volumes = pod.get("volumes")
        for i, vol in enumerate(volumes if isinstance(volumes, list) else []):
            image = vol.get("image") if isinstance(vol, dict) else None
            if isinstance(image, dict) and isinstance(image.get("reference"), str):
                ref = image["reference"]
                refs.append(StorageRef(f"{where}.volumes[{i}].image.reference", ref, _storage_name(ref)))
    return refs


def model_refs(review: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str], bool]:
    """Model references of an AdmissionReview's object: ([(name, digest)], [problems], references?).

    Digests come from the ``model-attest.dev/models`` annotation (``org/name@sha256:<hex>``, comma or
    space separated). Every model the spec loads (KServe storageUri, OCI image volumes) must be pinned
    there by name, or the object is denied: admission cannot check bytes it has no digest for.
    """
    obj = (review.get("request") or {}).get("object") or {}
    if not isinstance(obj, dict):
        raise UsageError("request.object must be an object")
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    annotations = annotations if isinstance(annotations, dict) else {}
    raw = annotations.get(ANNOTATION)
    refs: list[tuple[str, str]] = []
    problems: list[str] = []
    for part in re.split(r"[,\s]+", str(raw).strip()) if raw is not None else []:
        if not part:
            continue
        m = _REF.match(part)
        if m is None:
            problems.append(f"model reference {part[:200]!r} is not org/name@sha256:<64 lowercase hex>")
        else:
            refs.append((m.group("name"), m.group("digest")))
    pinned = {name for name, _ in refs}
    spec_refs = storage_refs(obj)
    for s in spec_refs:
        if s.name is None:
            problems.append(f"{s.where}: cannot tell which model {s.reference[:200]!r} is")
        elif s.name not in pinned:
            problems.append(
                f"{s.where}: model {s.name} ({s.reference[:200]}) is not pinned: "
                f"add {s.name}@sha256:<digest> to the {ANNOTATION} annotation"
            )
    if len(refs) > MAX_MODEL_REFS:
        problems.append(f"{len(refs)} model references; at most {MAX_MODEL_REFS} are checked per object")
        refs = refs[:MAX_MODEL_REFS]
    return refs, problems, bool(refs or problems or spec_refs or raw is not None)


def _audit_key(key: str) -> str:
    assert AUDIT_KEY.match(key) and len(key) <= 63, key  # our own keys: a bug if ever invalid
    return key


def parse_review(body: Any) -> tuple[dict[str, Any], str]:
    """The ``request`` of an AdmissionReview v1 and its uid, or a 400 naming what is wrong."""
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise UsageError("body is not an AdmissionReview (kind must be AdmissionReview)")
    if body.get("apiVersion") != "admission.k8s.io/v1":
        raise UsageError("AdmissionReview apiVersion must be admission.k8s.io/v1")
    request = body.get("request")
    if not isinstance(request, dict):
        raise UsageError("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 256:
        raise UsageError("AdmissionReview request.uid must be a non-empty string")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise UsageError("AdmissionReview request.object must be an object")
    return request, uid


def review(reg: Registry, body: Any, policy_name: str | None = None) -> dict[str, Any]:
    """Answer a Kubernetes AdmissionReview v1 under a server policy.

    Allowed only if every referenced model is allowed; anything that prevents a decision (no policy
    configured, a malformed or unpinned reference, an evaluation over budget) is a denial, not an
    HTTP error. Objects that reference no model are allowed silently (no warning).
    """
    _, uid = parse_review(body)
    refs, problems, references = model_refs(body)
    warnings: list[str] = []
    audit: dict[str, str] = {}
    denials: list[str] = list(problems)
    choice: PolicyChoice | None = None
    if refs:
        try:
            choice = choose_policy(reg, None, policy_name)
        except AttestError as exc:
            denials.append(exc.message)
            refs = []
    for name, digest in refs:
        assert choice is not None
        try:
            decision = decide(reg, digest, choice)[0].decision
        except AttestError as exc:
            denials.append(f"{name}@{digest}: {exc.message}")
            audit[_audit_key(f"model-{digest.removeprefix('sha256:')[:16]}")] = f"{name}: error"
            continue
        audit[_audit_key(f"model-{digest.removeprefix('sha256:')[:16]}")] = (
            f"{name}: {'allowed' if decision['allowed'] else 'denied'}"
        )
        if not decision["allowed"]:
            codes = ", ".join(f"{r['code']}: {r['message']}" for r in decision["reasons"])
            denials.append(f"{name}@{digest} denied ({codes})")
        names = decision.get("modelNames", [])
        if decision["allowed"] and names and name not in names:
            warnings.append(f"{name}@{digest}: attestations name the model {', '.join(names)}")
        if decision.get("rejected"):
            warnings.append(f"{name}@{digest}: {len(decision['rejected'])} stored attestation(s) rejected")
    response: dict[str, Any] = {"uid": uid, "allowed": not denials}
    if denials:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": "; ".join(denials)[:4000]}
    if warnings and references:
        response["warnings"] = [w[:256] for w in warnings[:16]]
    if references:
        audit[_audit_key("decision")] = "allowed" if not denials else "denied"
        if choice is not None:
            audit[_audit_key("policy")] = f"{choice.label} {choice.digest}"
        response["auditAnnotations"] = audit
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
