"""The server's trust configuration: which signers' bundles the registry accepts at all.

A YAML/JSON file::

    keys: [publisher.pub, other.pub]          # PEM public keys, paths relative to this file
    identities:                               # Sigstore keyless signers
      - {issuer: https://token.actions.githubusercontent.com, identityRegex: "https://github.com/org/.*"}
    trustConfig: private-trust-config.json     # optional private Sigstore deployment
    offline: true                              # verify with the embedded/local roots, no network

Which namespace a signer may publish under is a separate, admin-managed binding (``registry.auth``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from attest.errors import UsageError
from attest.keys import load_public_key
from attest.verifying import IdentityRule, Trust


def load_trust(path: Path | None) -> Trust:
    """Build the verifier ``Trust`` from a trust file; no file means nothing is accepted."""
    if path is None:
        return Trust()
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read trust file: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: trust file must be a mapping")
    trust = Trust(offline=bool(doc.get("offline", False)), staging=bool(doc.get("staging", False)))
    for key in doc.get("keys", []) or []:
        trust.add_key(load_public_key(path.parent / str(key)))
    for ident in doc.get("identities", []) or []:
        if not isinstance(ident, dict) or "issuer" not in ident:
            raise UsageError(f"{path}: each identity needs an issuer and identity or identityRegex")
        trust.identities.append(
            IdentityRule(ident["issuer"], ident.get("identity"), ident.get("identityRegex"))
        )
    if doc.get("trustConfig"):
        trust.trust_config = path.parent / str(doc["trustConfig"])
    return trust
