"""Fixtures for compliance tests: a deployment profile under which every shipped rule applies."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attest.compliance import DeploymentProfile, RulePack, builtin_pack, parse_profile
from attest.compliance.conditions import fields
from attest.compliance.rules import BUILTIN_PACKS

MakeProfile = Callable[..., DeploymentProfile]


@pytest.fixture(scope="session")
def all_packs() -> list[RulePack]:
    return [builtin_pack(name) for name in BUILTIN_PACKS.values()]


def _controls(packs: list[RulePack]) -> list[str]:
    names = [f for p in packs for r in p.rules for f in fields(r["satisfiedWhen"])]
    assert all(n.startswith("controls.") for n in names), names
    return sorted({n.split(".", 1)[1] for n in names})


def full_document(packs: list[RulePack], evidence_dir: Path) -> dict[str, Any]:
    """A profile under which every rule applies and, with every control declared and evidenced, holds."""
    evidence = []
    for kind in sorted({k for p in packs for r in p.rules for k in r["evidence"]}):
        path = evidence_dir / f"{kind}.txt"
        path.write_text(f"evidence of {kind}\n")
        evidence.append(
            {"kind": kind, "path": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        )
    return {
        "name": "everything-applies",
        "jurisdictions": ["EU", "CN", "US"],
        "roles": ["gpai-provider", "provider", "deployer", "service-provider"],
        "useCases": [{"id": "cv-screening", "annexIII": "employment"}, {"id": "companion"}],
        "users": {"registered": 2_000_000, "monthlyActive": 200_000},
        "features": {
            "interactsWithPeople": True,
            "generatedContent": ["text", "image", "audio", "video"],
            "deepfakes": True,
            "anthropomorphicInteraction": True,
            "emotionalCompanionship": True,
            "minors": True,
            "publicOpinionAttributes": True,
            "socialMobilisation": True,
            "publicService": True,
            "productSafetyComponent": True,
            "materialChange": False,
        },
        "model": {
            "trainingComputeFlop": 3.0e25,
            "openSource": False,
            "systemicRiskDesignated": False,
            "placedOnMarket": "2025-09-01",
            "generative": True,
        },
        "controls": dict.fromkeys(_controls(packs), True),
        "evidence": evidence,
    }


@pytest.fixture()
def make_profile(tmp_path: Path, all_packs: list[RulePack]) -> MakeProfile:
    """``make_profile(**overrides)``: the full profile with dotted-path overrides (None deletes)."""
    base = full_document(all_packs, tmp_path)

    def make(**overrides: Any) -> DeploymentProfile:
        doc = copy.deepcopy(base)
        for dotted, value in overrides.items():
            *parents, leaf = dotted.split("__")
            node = doc
            for part in parents:
                node = node.setdefault(part, {})
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = value
        return parse_profile(doc, tmp_path)

    return make
