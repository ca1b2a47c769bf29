"""A private Sigstore trust domain served on loopback, for tests only.

It plays Fulcio (short-lived code-signing certificates with an embedded SCT), a CT log (the SCT
key), Rekor v1 (``dsse`` 0.0.1 entries with inclusion proof, signed checkpoint and SET), Rekor v2
(``hashedrekord`` 0.0.2 entries, no SET), an RFC 3161 timestamp authority and an OIDC token minter,
so that sigstore-python's real signing and verification code paths run with no network beyond
127.0.0.1. Nothing here ships: the package lives under ``tests/``.
"""

from tests.sigstore_domain.domain import VARIANTS, SigstoreDomain

__all__ = ["VARIANTS", "SigstoreDomain"]
