"""The one evidence rule: which bundles count, for every caller that decides about a model.

``attest verify`` (``verify_model``), the loading guard, ``attest pull``, ``verify --registry`` and the
registry's admission endpoints all turn bundles into a decision the same way::

    evidence = collect_evidence(bundles, policy, trust, model_digest=digest, actual_manifest=files)
    decision = evidence.decide()

A bundle is **evidence** only when all of these hold:

1. it verifies (signature against trusted material, ``payloadType``, statement, predicate schema);
2. its signer holds a role in the policy, and a role the policy trusts *for that predicate type*
   (a requirement's ``signedBy``); a revocation only from the roles trusted for the model's manifest
   or the dedicated ``revokers`` role (``Policy.revocation_roles``);
3. it is about this model: its subject is the model digest (a revocation: its ``revokedDigest``),
   and a signed manifest matches the files on disk when the caller holds them.

Anything else is **rejected**: reported with a reason code (``Decision.rejected``, the ``rejected``
list of the decision JSON, ``Decision.warnings``) and otherwise ignored. A rejected bundle cannot
satisfy a requirement, and it cannot deny on its own: a stranger who publishes junk, or a validly
signed statement from a key the policy does not trust, about a popular model's digest changes no one's
decision. Denials come from the policy's requirements over the evidence. The one exception is a
*trusted* manifest that the files on disk do not match, when no trusted manifest does: the model was
tampered with, and the decision says ``MODEL_FILES_CHANGED`` with the file names (plus the unmet
manifest requirement).

This module does no I/O: callers read files and registries, this module decides what counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from attest._internal.walk import DEFAULT_IGNORES
from attest.errors import AttestError
from attest.manifest import Manifest, ManifestDiff, diff_manifests, manifest_from_json
from attest.oms import oms_ignores, oms_signed_manifest
from attest.policy import Decision, Policy, Reason, evaluate
from attest.predicates import MODEL_MANIFEST_V1, OMS_SIGNATURE_V1, REVOCATION_V1
from attest.statement import strip_algorithm
from attest.verifying import Trust, VerifiedAttestation, verify_bundle

# Predicate types that carry a file list: checked against the files on disk when the caller has them.
MANIFEST_TYPES = frozenset({MODEL_MANIFEST_V1, OMS_SIGNATURE_V1})


@dataclass(frozen=True)
class BundleInput:
    """A bundle to verify and where it came from (for messages, and for leaving it out of the model)."""

    name: str
    data: bytes | str | dict[str, Any]
    path: Path | None = None

    def raw(self) -> bytes:
        """The bundle bytes, for storing beside pulled files (a parsed dict is re-serialised)."""
        if isinstance(self.data, dict):
            return json.dumps(self.data).encode()
        return self.data.encode() if isinstance(self.data, str) else self.data


@dataclass(frozen=True)
class Rejected:
    """A bundle that is not evidence, and why (``code`` is a reason code, ``message`` one line)."""

    bundle: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"bundle": self.bundle, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.bundle}: {self.code}: {self.message}"


@dataclass(frozen=True)
class FileChanges:
    """How the files on disk differ from a trusted signed manifest (``bundle`` names that manifest)."""

    bundle: str
    diff: ManifestDiff

    def to_json(self) -> dict[str, list[str]]:
        return {
            "changed": list(self.diff.changed),
            "missing": list(self.diff.missing),
            "extra": list(self.diff.extra),
        }


@dataclass(frozen=True)
class Evidence:
    """The outcome of the evidence rule over one set of bundles.

    ``items`` are the accepted (input, attestation) pairs. Without a model digest only rules 1 and 2
    have been applied (``for_model`` applies rule 3); ``decide`` needs a model digest.
    """

    policy: Policy
    items: tuple[tuple[BundleInput, VerifiedAttestation], ...]
    rejected: tuple[Rejected, ...] = ()
    model_digest: str | None = None
    file_changes: FileChanges | None = None
    manifest_matched: bool = False  # a trusted manifest equals the files on disk

    @property
    def verified(self) -> list[VerifiedAttestation]:
        """The evidence: verified, trusted for its role, and (after ``for_model``) about the model."""
        return [att for _, att in self.items]

    def bundles(self) -> list[bytes]:
        """The raw bytes of the evidence bundles (``attest pull`` keeps them beside the files)."""
        return [b.raw() for b, _ in self.items]

    def manifests(self) -> list[VerifiedAttestation]:
        """Trusted manifests (manifest or OpenSSF signature) among the evidence, in input order."""
        return [att for att in self.verified if att.predicate_type in MANIFEST_TYPES]

    def keep_manifests(self, wanted: Callable[[VerifiedAttestation], bool]) -> Evidence:
        """Drop the trusted manifests ``wanted`` refuses (all other evidence stays).

        For a registry lookup by model name, which returns every version: the consumer names the
        version it holds (or the files pick it), and the other versions' manifests are simply not about
        these files, rather than "files changed" against each of them.
        """
        kept = tuple(
            (b, att) for b, att in self.items if att.predicate_type not in MANIFEST_TYPES or wanted(att)
        )
        return replace(self, items=kept)

    def signed_ignores(self) -> tuple[str, ...]:
        """The ignore patterns of the first trusted manifest (the files the signer left out).

        Only a signer trusted for the manifest can say which files do not count: a stranger's
        manifest with ``ignores: ["*"]`` must not hide the weights.
        """
        for att in self.manifests():
            if att.predicate_type == MODEL_MANIFEST_V1:
                return tuple(att.predicate.get("ignores", DEFAULT_IGNORES))
            return oms_ignores(att.predicate)
        return DEFAULT_IGNORES

    def for_model(
        self,
        model_digest: str,
        actual_manifest: Manifest | None = None,
        *,
        report_other_models: bool = True,
        model_root: Path | None = None,
    ) -> Evidence:
        """Keep only the evidence about ``model_digest`` (rule 3); the rest becomes rejected.

        With ``actual_manifest`` (the files the caller holds), each trusted manifest is compared with
        it file by file; a mismatch is rejected as ``MODEL_FILES_CHANGED`` and remembered so that
        ``decide`` can name the files. ``report_other_models=False`` drops, instead of reporting,
        trusted attestations about other digests (a registry query by name returns every version).
        """
        want = strip_algorithm(model_digest).lower()
        kept: list[tuple[BundleInput, VerifiedAttestation]] = []
        rejected = list(self.rejected)
        changes: FileChanges | None = None
        matched = False
        for b, att in self.items:
            if att.predicate_type == REVOCATION_V1:
                revoked = strip_algorithm(str(att.predicate.get("revokedDigest", ""))).lower()
                if revoked != want:
                    if report_other_models:
                        rejected.append(
                            Rejected(b.name, "SUBJECT_MISMATCH", f"revokes sha256:{revoked}, not this model")
                        )
                else:
                    kept.append((b, att))
                continue
            if actual_manifest is not None and att.predicate_type in MANIFEST_TYPES:
                try:
                    signed = _signed_manifest(att, actual_manifest, model_root)
                except AttestError as exc:
                    rejected.append(Rejected(b.name, "BUNDLE_UNVERIFIED", exc.message))
                    continue
                diff = diff_manifests(signed, actual_manifest)
                if not diff.clean:
                    changes = changes or FileChanges(b.name, diff)
                    rejected.append(
                        Rejected(
                            b.name,
                            "MODEL_FILES_CHANGED",
                            f"files differ from the signed manifest: {diff.describe()}",
                        )
                    )
                    continue
                if att.predicate_type == OMS_SIGNATURE_V1:  # its subject is the OMS root, not our digest
                    matched = True
                    kept.append((b, att))
                    continue
            if want not in att.statement.subject_sha256s():
                got = ", ".join(f"sha256:{d}" for d in sorted(att.statement.subject_sha256s())) or "none"
                if report_other_models:
                    rejected.append(
                        Rejected(b.name, "SUBJECT_MISMATCH", f"attestation is about another model ({got})")
                    )
                continue
            if actual_manifest is not None and att.predicate_type in MANIFEST_TYPES:
                matched = True
            kept.append((b, att))
        return replace(
            self,
            items=tuple(kept),
            rejected=tuple(rejected),
            model_digest=f"sha256:{want}",
            file_changes=changes,
            manifest_matched=matched,
        )

    def decide(self, now: datetime | None = None) -> Decision:
        """The policy's decision over the evidence, with the rejected bundles reported beside it."""
        if self.model_digest is None:  # a caller's bug, not a user's input: fail loudly, never allow
            raise ValueError("evidence must be narrowed to a model digest (for_model) before deciding")
        decision = evaluate(self.policy, self.verified, self.model_digest, now=now)
        if self.file_changes is not None and not self.manifest_matched:
            decision.reasons.insert(
                0,
                Reason(
                    "MODEL_FILES_CHANGED",
                    f"{self.file_changes.bundle}: files differ from the signed manifest: "
                    f"{self.file_changes.diff.describe()}",
                ),
            )
            decision.allowed = False
            decision.details["fileChanges"] = self.file_changes.to_json()
        decision.rejected = list(self.rejected)
        return decision


def _signed_manifest(att: VerifiedAttestation, actual: Manifest, model_root: Path | None = None) -> Manifest:
    """The signed file list; OpenSSF shard/BLAKE2b signatures re-hash files under ``model_root``."""
    if att.predicate_type == MODEL_MANIFEST_V1:
        return manifest_from_json(att.predicate["files"], att.predicate.get("ignores", DEFAULT_IGNORES))
    return oms_signed_manifest(att.statement, actual, model_root)


def _as_input(bundle: BundleInput | tuple[str, bytes | str | dict[str, Any]]) -> BundleInput:
    return bundle if isinstance(bundle, BundleInput) else BundleInput(bundle[0], bundle[1])


def _trusted_for_role(policy: Policy, att: VerifiedAttestation) -> Rejected | None:
    """Why the signer of a verified ``att`` is not trusted for what it says (None when it is)."""
    roles = policy.roles_of(att.signer)
    if not roles:
        return Rejected("", "UNTRUSTED_SIGNER", f"signer {att.signer} holds no role in the policy")
    if att.predicate_type == REVOCATION_V1:
        allowed = policy.revocation_roles()
        if not roles & allowed:
            return Rejected(
                "",
                "REVOCATION_UNAUTHORIZED",
                f"revocation signed by {att.signer} ({'/'.join(sorted(roles))}); only "
                f"{'/'.join(sorted(allowed)) or 'no role'} may revoke this model",
            )
        return None
    wanted = policy.roles_for(att.predicate_type)
    if wanted is not None and not roles & wanted:
        return Rejected(
            "",
            "UNTRUSTED_SIGNER",
            f"{att.predicate_type} signed by {att.signer} ({'/'.join(sorted(roles))}); "
            f"the policy trusts {'/'.join(sorted(wanted))} for it",
        )
    return None


def collect_evidence(
    bundles: Iterable[BundleInput | tuple[str, bytes | str | dict[str, Any]]],
    policy: Policy,
    trust: Trust | None = None,
    *,
    model_digest: str | None = None,
    actual_manifest: Manifest | None = None,
) -> Evidence:
    """Verify ``bundles`` and sort them into evidence and rejected bundles, by the one rule above.

    ``bundles``: ``BundleInput``s or ``(name, bundle bytes / JSON / dict)`` pairs; ``name`` is what
    a rejection is reported under (a file path, ``registry#<log index>``, ``log entry <n>``).
    ``trust``: verification trust from outside the policy (``--key``, ``--trust-config``, the
    registry's namespace keys); the policy's own keys and identities are added to it.
    ``model_digest`` (``sha256:<hex>``) / ``actual_manifest`` (the files on disk; its digest is the
    model digest): when given, the evidence is narrowed to this model (``Evidence.for_model``);
    otherwise call ``for_model`` once the digest is known (``attest pull`` learns it from the
    manifest, ``verify_model`` from the ignores a trusted manifest declares).

    Never raises for a bad bundle: every failure is a ``Rejected`` entry.
    """
    full_trust = policy.trust(trust)
    items: list[tuple[BundleInput, VerifiedAttestation]] = []
    rejected: list[Rejected] = []
    for raw in bundles:
        b = _as_input(raw)
        try:
            att = verify_bundle(b.data, full_trust)
        except AttestError as exc:
            rejected.append(Rejected(b.name, "BUNDLE_UNVERIFIED", exc.message))
            continue
        problem = _trusted_for_role(policy, att)
        if problem is not None:
            rejected.append(replace(problem, bundle=b.name))
            continue
        items.append((b, att))
    evidence = Evidence(policy, tuple(items), tuple(rejected))
    if actual_manifest is not None:
        return evidence.for_model(model_digest or actual_manifest.digest, actual_manifest)
    if model_digest is not None:
        return evidence.for_model(model_digest)
    return evidence


__all__ = [
    "BundleInput",
    "Evidence",
    "FileChanges",
    "Rejected",
    "collect_evidence",
]
