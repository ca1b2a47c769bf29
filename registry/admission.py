"""Admission decisions over the stored, verified attestations of a model digest.

The decision itself is ``attest.policy.evaluate`` (one policy engine for CLI, guard and registry).
This module finds the attestations, re-verifies them with the server's trust (first-time decisions),
and caches decisions keyed by (model digest, policy digest, log size): any append — a revocation in
particular — changes the log size and so invalidates every cached decision; a time-to-live bounds
how long age-based requirements (``maxAgeDays``) can be answered from cache.

Unknown digests, unverifiable bundles and unknown model references are denials, never errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import rfc8785
from sqlmodel import Session, col, select

from attest.errors import AttestError, PolicyError, UsageError
from attest.policy import Decision, Policy, evaluate
from attest.predicates import REVOCATION_V1
from attest.verifying import VerifiedAttestation, verify_bundle
from registry.entries import normalise_digest, render_entries
from registry.models import Entry, EntrySubject
from registry.state import Registry

ANNOTATION = "model-attest.dev/models"
_REF = re.compile(r"^(?P<name>[^@\s]+/[^@\s]+)@(?P<digest>sha256:[0-9a-fA-F]{64})$")
CACHE_TTL_S = 60.0


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
class PolicyChoice:
    """The policy for a request: named by digest first, parsed only when the cache misses."""

    digest: str
    document: dict[str, Any] | None  # None: the server's configured policy


def choose_policy(reg: Registry, document: Any) -> PolicyChoice:
    if document is None:
        if reg.policy is None:
            raise UsageError("no policy in the request and none configured on the server")
        return PolicyChoice(reg.policy.digest, None)
    if not isinstance(document, dict):
        raise PolicyError("policy must be a JSON object (the YAML policy document as JSON)")
    for entries in (document.get("signers") or {}).values():
        for entry in entries or []:
            if isinstance(entry, dict) and "keyFile" in entry:
                raise PolicyError("a policy sent to the registry names keys by fingerprint, not keyFile")
    return PolicyChoice("sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest(), document)


def _load_verified(
    reg: Registry, session: Session, policy: Policy, digest: str
) -> tuple[list[VerifiedAttestation], list[Entry], list[dict[str, str]]]:
    rows = list(
        session.exec(
            select(Entry)
            .join(EntrySubject, col(EntrySubject.log_index) == col(Entry.log_index))
            .where(EntrySubject.digest == digest)
            .order_by(col(Entry.log_index))
        ).all()
    )
    trust = policy.trust(reg.trust)
    verified, used, failures = [], [], []
    for row in rows:
        try:
            att = verify_bundle(row.bundle, trust)
        except AttestError as exc:
            failures.append({"logIndex": str(row.log_index), "message": exc.message})
            continue
        # a revocation is indexed under the digest it revokes; every other attestation must be about it
        if (
            digest.removeprefix("sha256:") in att.statement.subject_sha256s()
            or att.predicate_type == REVOCATION_V1
        ):
            verified.append(att)
            used.append(row)
    return verified, used, failures


def cached_decision(reg: Registry, model_digest: str, choice: PolicyChoice, log_size: int) -> Decided | None:
    """A cache hit without touching the database (``log_size`` from the registry's size tracker)."""
    return reg.admission_cache.get((normalise_digest(model_digest), choice.digest, log_size))


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
        policy = (
            reg.policy if choice.document is None else Policy.from_document(choice.document, where="policy")
        )
        assert policy is not None
        verified, rows, failures = _load_verified(reg, session, policy, digest)
        decision: Decision = evaluate(policy, verified, digest)
        if not rows and not failures:
            decision.deny("UNKNOWN_MODEL", f"the registry holds no attestation for {digest}")
        for f in failures:
            decision.deny("BUNDLE_UNVERIFIED", f"log entry {f['logIndex']}: {f['message']}")
        out = decision.to_json()
        out["policyDigest"] = choice.digest
        checkpoint = reg.log.checkpoint(session, size)
        used = {e["bundleDigest"] for e in out.get("evidence", [])}
        out["logEntries"] = render_entries(
            reg.log, session, [r for r in rows if r.bundle_digest in used], checkpoint, include_bundle=False
        )
        out["checkpoint"] = checkpoint.note
    decided = Decided(out, json.dumps(out, separators=(",", ":")).encode())
    reg.admission_cache.put(key, decided)
    return decided, False


def model_refs(review: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Model references of an AdmissionReview's object: ([(name, digest)], [problems])."""
    obj = (review.get("request") or {}).get("object") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(ANNOTATION)
    refs: list[tuple[str, str]] = []
    problems: list[str] = []
    if raw is None:
        return refs, problems
    for part in re.split(r"[,\s]+", str(raw).strip()):
        if not part:
            continue
        m = _REF.match(part)
        if m is None:
            problems.append(f"model reference {part!r} is not org/name@sha256:<64 hex>")
        else:
            refs.append((m.group("name"), m.group("digest").lower()))
    return refs, problems


def review(reg: Registry, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a Kubernetes AdmissionReview v1 under the server's policy.

    Allowed only if every referenced model is allowed; anything that prevents a decision (no policy
    configured, a malformed reference, an unverifiable bundle) is a denial, not an HTTP error.
    """
    request = body.get("request")
    if body.get("kind") != "AdmissionReview" or not isinstance(request, dict) or "uid" not in request:
        raise UsageError("body is not an AdmissionReview v1 request")
    refs, problems = model_refs(body)
    warnings: list[str] = []
    audit: dict[str, str] = {}
    denials: list[str] = list(problems)
    if not refs and not problems:
        warnings.append(f"no {ANNOTATION} annotation: no model to check")
    choice = PolicyChoice("", None)
    if refs:
        try:
            choice = choose_policy(reg, None)
        except AttestError as exc:
            denials.append(exc.message)
            refs = []
    for name, digest in refs:
        try:
            decision = decide(reg, digest, choice)[0].decision
        except AttestError as exc:
            denials.append(f"{name}@{digest}: {exc.message}")
            continue
        audit[f"model-attest.dev/{digest.removeprefix('sha256:')[:16]}"] = (
            f"{name}: {'allowed' if decision['allowed'] else 'denied'}"
        )
        if not decision["allowed"]:
            codes = ", ".join(f"{r['code']}: {r['message']}" for r in decision["reasons"])
            denials.append(f"{name}@{digest} denied ({codes})")
        names = {s["name"] for e in decision.get("logEntries", []) for s in e.get("subjects", [])}
        if decision["allowed"] and names and name not in names:
            warnings.append(f"{name}@{digest}: attestations name the model {', '.join(sorted(names))}")
    response: dict[str, Any] = {"uid": request["uid"], "allowed": not denials}
    if denials:
        response["status"] = {"code": 403, "message": "; ".join(denials)}
    if warnings:
        response["warnings"] = warnings
    audit["model-attest.dev/policy"] = choice.digest
    response["auditAnnotations"] = audit
    return {
        "apiVersion": body.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }
