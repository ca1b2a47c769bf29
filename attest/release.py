"""Publisher release: manifest, scan, compliance assessment and constitution binding, each signed and
published, resumable.

Everything is computed and checked before anything is published: a FAILED (or ERROR) scan stops the
release with nothing published, unless the publisher overrides it explicitly — and then the override,
with its reason, is written into the signed scan attestation, so no consumer can miss it. Progress is
kept in a state file keyed by model name, version and digest; a re-run after a failure reuses the
predicates already computed and the bundles already signed (a re-signed bundle would differ, and be
published twice), and publishes only what the registry has not acknowledged yet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest._internal.atomic import write_atomic
from attest.errors import AttestError, UsageError
from attest.manifest import Manifest, compute_manifest
from attest.predicates import (
    BACKDOOR_SCAN_V1,
    COMPLIANCE_ASSESSMENT_V1,
    CONSTITUTION_BINDING_V1,
    MODEL_MANIFEST_V1,
)
from attest.signing import Signer, manifest_predicate, sign_attestation


class ReleaseStopped(AttestError):
    """The release was stopped before publishing (a failed scan without an override)."""

    exit_code = 1


@dataclass
class ReleaseOptions:
    name: str
    version: str
    source_uri: str | None = None
    profile: Path | None = None
    assessment_date: str | None = None
    constitution: Path | None = None
    relationship: str | None = None
    constitution_version: str | None = None
    scan: bool = True
    scan_budget: str = "standard"
    scan_seed: int = 0
    override_failed_scan: str | None = None  # the reason, when the publisher overrides a FAILED scan


@dataclass
class Step:
    kind: str
    predicate_type: str
    predicate: dict[str, Any]
    bundle: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Step:
        return cls(doc["kind"], doc["predicateType"], doc["predicate"], doc["bundle"], doc["entry"])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
            "bundle": self.bundle,
            "entry": self.entry,
        }


@dataclass
class ReleaseState:
    """What has been computed, signed and published for one model digest; persisted atomically."""

    path: Path
    name: str
    version: str
    model_digest: str
    steps: dict[str, Step] = field(default_factory=dict)

    @classmethod
    def open(cls, state_dir: Path, name: str, version: str, model_digest: str) -> ReleaseState:
        key = hashlib.sha256(f"{name}@{version}".encode()).hexdigest()[:16]
        path = state_dir / f"{name.replace('/', '__')}@{version}.{key}.json"
        state = cls(path, name, version, model_digest)
        if path.exists():
            doc = json.loads(path.read_text())
            if doc.get("modelDigest") == model_digest:  # a changed model starts over
                state.steps = {k: Step.from_json(v) for k, v in doc["steps"].items()}
        return state

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "name": self.name,
            "version": self.version,
            "modelDigest": self.model_digest,
            "steps": {k: s.to_json() for k, s in self.steps.items()},
        }
        write_atomic(self.path, json.dumps(doc, indent=2).encode())


Publish = Callable[[dict[str, Any]], dict[str, Any]]
Report = Callable[[str], None]


def _scan_predicate(path: Path, opts: ReleaseOptions, report: Report) -> dict[str, Any]:
    from attest.scan.options import ScanOptions
    from attest.scan.scanner import scan_model

    report("scanning (static + forward-pass backdoor scan)")
    options = ScanOptions(budget=opts.scan_budget, seed=opts.scan_seed)
    return scan_model(path, options)


def _compliance_predicate(opts: ReleaseOptions, report: Report) -> dict[str, Any]:
    import datetime as dt

    from attest.compliance.engine import assess
    from attest.compliance.profile import load_profile

    assert opts.profile is not None
    report(f"assessing compliance with {opts.profile}")
    day = dt.date.fromisoformat(opts.assessment_date) if opts.assessment_date else None
    return assess(load_profile(opts.profile), date=day).to_predicate()


def _constitution_predicate(opts: ReleaseOptions, report: Report) -> dict[str, Any]:
    from attest.constitution import binding_predicate, default_version

    assert opts.constitution is not None and opts.relationship is not None
    report(f"binding constitution {opts.constitution} ({opts.relationship})")
    raw = opts.constitution.read_bytes()
    version = opts.constitution_version or default_version(raw)
    return binding_predicate(
        raw, name=opts.constitution.stem, version=version, relationship=opts.relationship
    )


def plan_release(
    path: Path, manifest: Manifest, opts: ReleaseOptions, state: ReleaseState, report: Report
) -> None:
    """Compute every predicate not already in ``state`` (saving after each: scans are expensive)."""
    wanted: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        (
            "manifest",
            MODEL_MANIFEST_V1,
            lambda: manifest_predicate(manifest, opts.name, opts.version, opts.source_uri),
        ),
    ]
    if opts.scan:
        wanted.append(("scan", BACKDOOR_SCAN_V1, lambda: _scan_predicate(path, opts, report)))
    if opts.profile is not None:
        wanted.append(("compliance", COMPLIANCE_ASSESSMENT_V1, lambda: _compliance_predicate(opts, report)))
    if opts.constitution is not None:
        if opts.relationship is None:
            raise UsageError(
                "--constitution needs --relationship trained-with|system-prompt|evaluated-against"
            )
        wanted.append(
            ("constitution", CONSTITUTION_BINDING_V1, lambda: _constitution_predicate(opts, report))
        )
    for kind, ptype, make in wanted:
        if kind not in state.steps:
            state.steps[kind] = Step(kind, ptype, make())
            state.save()


def gate_scan(state: ReleaseState, opts: ReleaseOptions) -> None:
    """Stop on a FAILED/ERROR scan unless overridden; record an override in the predicate itself."""
    scan = state.steps.get("scan")
    if scan is None or scan.predicate.get("result") in ("PASSED", "WARNED"):
        return
    if not opts.override_failed_scan:
        result = scan.predicate.get("result")
        raise ReleaseStopped(
            f"backdoor scan result is {result}: nothing was published (override with --allow-failed-scan REASON)"
        )
    if "releaseOverride" not in scan.predicate and scan.bundle is None:
        scan.predicate["releaseOverride"] = {
            "reason": opts.override_failed_scan,
            "overriddenOn": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "result": scan.predicate.get("result"),
        }
        state.save()


def release(
    path: Path,
    opts: ReleaseOptions,
    signer: Signer,
    publish: Publish,
    state_dir: Path,
    report: Report | None = None,
) -> ReleaseState:
    """Run (or resume) a release; returns the state with every step's published entry."""
    say = report or (lambda msg: None)
    say(f"hashing {path}")
    manifest = compute_manifest(path, progress=True)
    state = ReleaseState.open(state_dir, opts.name, opts.version, manifest.digest)
    plan_release(path, manifest, opts, state, say)
    gate_scan(state, opts)
    for step in state.steps.values():
        if step.bundle is None:
            step.bundle = sign_attestation(signer, manifest, opts.name, step.predicate_type, step.predicate)
            state.save()
    for step in state.steps.values():
        if step.entry is None:
            assert step.bundle is not None
            say(f"publishing {step.kind}")
            step.entry = publish(step.bundle)
            state.save()
    return state
