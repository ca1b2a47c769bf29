"""Deployment profiles: what is assessed, validated against ``schemas/deployment-profile.schema.json``.

Evidence documents named by path are hashed when the profile is loaded. A declared digest that does
not match the file, or a file that is not there, is recorded on the evidence item, and the engine turns
it into a finding for every rule that relies on that kind of evidence: never a silent pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from attest.compliance import _yaml
from attest.predicates import validate_document

# state of an evidence item after loading
VERIFIED = "verified"  # a file whose sha256 matches the declared one (or none was declared)
DECLARED = "declared"  # a URI with a declared sha256, not fetched (offline by design)
MISMATCH = "digest-mismatch"
MISSING = "missing"


@dataclass(frozen=True)
class EvidenceItem:
    kind: str
    location: str
    declared_sha256: str | None
    actual_sha256: str | None
    state: str

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "location": self.location, "state": self.state}
        digest = self.actual_sha256 or self.declared_sha256
        if digest:
            doc["digest"] = {"sha256": digest}
        if self.state == MISMATCH:
            doc["declaredDigest"] = {"sha256": self.declared_sha256}
        return doc

    @property
    def problem(self) -> str | None:
        if self.state == MISMATCH:
            return (
                f"evidence {self.kind} at {self.location}: sha256 {self.actual_sha256} does not match "
                f"the declared {self.declared_sha256}"
            )
        if self.state == MISSING:
            return f"evidence {self.kind} at {self.location} cannot be read"
        return None


@dataclass(frozen=True)
class DeploymentProfile:
    document: dict[str, Any] = field(repr=False)
    evidence: tuple[EvidenceItem, ...]
    digest: str

    @property
    def name(self) -> str:
        return str(self.document["name"])

    @property
    def jurisdictions(self) -> list[str]:
        return list(self.document["jurisdictions"])

    def context(self) -> dict[str, Any]:
        """What conditions are evaluated over: the document plus derived facts."""
        areas = sorted({u["annexIII"] for u in self.document.get("useCases", []) if "annexIII" in u})
        derived = {"annexIIIAreas": areas, "evidenceKinds": sorted({e.kind for e in self.evidence})}
        return {**self.document, "derived": derived}

    def evidence_of(self, kind: str) -> list[EvidenceItem]:
        return [e for e in self.evidence if e.kind == kind]


def _sha256_file(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _evidence(entry: dict[str, Any], base: Path) -> EvidenceItem:
    declared = entry.get("sha256")
    if "path" in entry:
        actual = _sha256_file(base / entry["path"])
        if actual is None:
            state = MISSING
        elif declared is not None and declared != actual:
            state = MISMATCH
        else:
            state = VERIFIED
        return EvidenceItem(entry["kind"], entry["path"], declared, actual, state)
    return EvidenceItem(entry["kind"], entry["uri"], declared, None, DECLARED)


def parse_profile(document: Any, base: Path, what: str = "deployment profile") -> DeploymentProfile:
    """Validate a parsed profile and hash its evidence files (paths relative to ``base``)."""
    validate_document("deployment-profile", document, what=what)
    evidence = tuple(_evidence(e, base) for e in document.get("evidence", []))
    digest = "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()
    return DeploymentProfile(document=document, evidence=evidence, digest=digest)


def load_profile(path: Path) -> DeploymentProfile:
    """Load a deployment profile (YAML or JSON); evidence paths are relative to its folder."""
    return parse_profile(
        _yaml.load_file(path, "deployment profile"), path.parent, f"deployment profile {path}"
    )
