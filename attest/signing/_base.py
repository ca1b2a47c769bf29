"""The one interface every signing backend implements."""

from __future__ import annotations

from typing import Any, Protocol


class Signer(Protocol):
    """Anything that turns statement bytes into a signed Sigstore bundle.

    ``sign_statement`` gets the exact bytes to sign (never re-serialised afterwards) and returns the
    bundle v0.3 JSON object. Implementations: ``KeySigner`` (key files, HSM and KMS keys, optionally
    with an X.509 certificate) and ``attest._sigstore.SigstoreSigner`` (keyless).
    """

    def sign_statement(self, statement: bytes) -> dict[str, Any]: ...
