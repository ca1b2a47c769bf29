"""Rule packs: versioned YAML data, validated against ``schemas/rule-pack.schema.json`` and hashed.

The pack digest is ``sha256:`` + SHA-256 of the RFC 8785 JSON of the parsed pack, so reformatting the
YAML (comments, key order, quoting) does not change it, while any change of a rule, date or condition
does. A compliance-assessment predicate records the name, version and digest of every pack it used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import rfc8785

from attest.compliance import _yaml
from attest.errors import SchemaError, UsageError
from attest.predicates import validate_document

# Jurisdiction code -> name of the pack shipped for it.
BUILTIN_PACKS = {"EU": "eu-ai-act", "CN": "cn-cac", "US": "us-nist-ai-rmf"}


@dataclass(frozen=True)
class Rule:
    """One obligation; ``raw`` is the rule exactly as in the pack (for SARIF/OSCAL metadata)."""

    raw: dict[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def id(self) -> str:
        return str(self.raw["id"])

    @property
    def citation(self) -> dict[str, Any]:
        """Instrument, article, source and legal status: what a finding cites."""
        cite: dict[str, Any] = {
            "instrument": self.raw["instrument"],
            "article": self.raw["article"],
            "legalStatus": self.raw["legalStatus"],
            "obligation": self.raw["obligation"],
            "source": self.raw["source"]["title"],
        }
        if "url" in self.raw["source"]:
            cite["url"] = self.raw["source"]["url"]
        return cite


@dataclass(frozen=True)
class RulePack:
    name: str
    version: str
    jurisdiction: str
    title: str
    disclaimer: str
    rules: tuple[Rule, ...]
    digest: str
    document: dict[str, Any] = field(repr=False)

    def reference(self) -> dict[str, str]:
        """The ``rulePack[]`` entry of the predicate."""
        return {"name": self.name, "version": self.version, "digest": self.digest}


def pack_digest(document: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def parse_pack(document: Any, what: str) -> RulePack:
    """Validate a parsed pack document and build a ``RulePack`` (rule ids must be unique)."""
    validate_document("rule-pack", document, what=what)
    ids = [r["id"] for r in document["rules"]]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SchemaError(f"{what} has duplicate rule ids: {', '.join(duplicates)}")
    for rule in document["rules"]:
        until = rule.get("effectiveUntil")
        if until is not None and until <= rule["effectiveFrom"]:
            raise SchemaError(
                f"{what}: rule {rule['id']} ends ({until}) before it starts ({rule['effectiveFrom']})"
            )
    return RulePack(
        name=document["name"],
        version=document["version"],
        jurisdiction=document["jurisdiction"],
        title=document["title"],
        disclaimer=document["disclaimer"],
        rules=tuple(Rule(r) for r in document["rules"]),
        digest=pack_digest(document),
        document=document,
    )


def load_pack(path: Path) -> RulePack:
    """Load a rule pack from a YAML (or JSON) file."""
    return parse_pack(_yaml.load_file(path, "rule pack"), f"rule pack {path}")


@cache
def builtin_pack(name: str) -> RulePack:
    """Load one of the packs shipped in ``attest/compliance/packs/`` (cached: package data never changes)."""
    resource = resources.files("attest.compliance.packs").joinpath(f"{name}.yaml")
    if not resource.is_file():
        known = ", ".join(sorted(BUILTIN_PACKS.values()))
        raise UsageError(f"no built-in rule pack {name!r} (known: {known})")
    return parse_pack(
        _yaml.loads(resource.read_text(encoding="utf-8"), f"rule pack {name}"), f"rule pack {name}"
    )


def packs_for(jurisdictions: list[str]) -> list[RulePack]:
    """The built-in packs for the given jurisdictions (those without a pack are skipped)."""
    return [builtin_pack(BUILTIN_PACKS[j]) for j in jurisdictions if j in BUILTIN_PACKS]
