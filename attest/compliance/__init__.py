"""Compliance assessments: rule packs (data) x deployment profile x date -> findings and predicate.

Public surface: ``load_profile``, ``load_pack`` / ``builtin_pack``, ``assess`` and the
``Assessment.to_predicate`` it returns; ``sarif.to_sarif`` and ``oscal.to_oscal`` export it.
"""

from __future__ import annotations

from attest.compliance.engine import Assessment, Finding, Options, assess
from attest.compliance.profile import DeploymentProfile, load_profile, parse_profile
from attest.compliance.rules import Rule, RulePack, builtin_pack, load_pack, packs_for, parse_pack

__all__ = [
    "Assessment",
    "DeploymentProfile",
    "Finding",
    "Options",
    "Rule",
    "RulePack",
    "assess",
    "builtin_pack",
    "load_pack",
    "load_profile",
    "packs_for",
    "parse_pack",
    "parse_profile",
]
