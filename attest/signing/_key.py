"""Long-lived keys as signers: a PEM key file, or a key in an HSM or KMS named by a signer URI.

Every backend is a securesystemslib signer (``CryptoSigner`` for files; ``HSMSigner``, ``GCPSigner``,
``AWSSigner``, ``AzureSigner``, ``VaultSigner`` for devices and services), so the bundle is the same
whatever holds the key: a DSSE signature with a key hint, or with the X.509 chain for OpenSSF
model-signing ``certificate`` mode. Verifiers and policies name the signer by its public key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from securesystemslib.signer import CryptoSigner, SSlibKey
from securesystemslib.signer import Signer as SslibSigner

from attest.bundle import build_certificate_bundle, build_key_bundle, pae
from attest.errors import KeyMaterialError, SigningError, UsageError
from attest.keys import fingerprint, spki_der, spki_pem
from attest.statement import PAYLOAD_TYPE

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

# Signer-URI schemes accepted by ``--signer-uri`` (securesystemslib 1.6 ``SIGNER_FOR_URI_SCHEME``);
# ``gnupg``, ``tkey`` and ``sigstore`` are left out: they do not produce a plain key signature.
SIGNER_URI_SCHEMES = {
    "hsm": "hsm",  # PKCS#11: PYKCS11LIB names the module; the PIN comes from ATTEST_SIGNER_PIN
    "gcpkms": "gcpkms",
    "awskms": "awskms",
    "azurekms": "azurekms",
    "hv": "vault",
}
PIN_ENV = "ATTEST_SIGNER_PIN"
# OpenSSF model-signing accepts these curves only (its _check_supported_ec_key).
_OMS_CURVES = ("secp256r1", "secp384r1", "secp521r1")


class KeySigner:
    """Signs with a long-lived key; the bundle carries the key's hint (or certificate), no log entry.

    ``pem_hint``: name the key by sha256 of its PEM SubjectPublicKeyInfo, as OpenSSF model-signing
    requires (its verifier refuses any other hint); the default is sha256 of the DER form, which
    sigstore-js uses. Verifiers here accept both.
    """

    def __init__(
        self,
        private_key: PrivateKeyTypes | None = None,
        *,
        pem_hint: bool = False,
        signer: SslibSigner | None = None,
        public_key: PublicKeyTypes | None = None,
    ) -> None:
        if private_key is not None:
            signer, public_key = CryptoSigner(private_key), private_key.public_key()
        if signer is None or public_key is None:
            raise ValueError("KeySigner needs a private key, or a signer and its public key")
        self._signer = signer
        self.public_key = public_key
        self.fingerprint = fingerprint(public_key)
        encoded = spki_pem(public_key) if pem_hint else spki_der(public_key)
        self._hint = hashlib.sha256(encoded).hexdigest()
        self._chain_der: list[bytes] | None = None

    @classmethod
    def from_uri(
        cls,
        uri: str,
        public_key: PublicKeyTypes | None = None,
        *,
        pem_hint: bool = False,
        pin: str | None = None,
    ) -> KeySigner:
        """A signer whose private key stays in an HSM or KMS, named by a securesystemslib signer URI.

        ``public_key`` is the key's public half (exported once from the device); it names the key in
        the bundle and every signature is checked against it before a bundle is returned. For
        ``hsm:`` it may be left out: it is then read from the token.
        """
        scheme = uri.partition(":")[0]
        if scheme not in SIGNER_URI_SCHEMES:
            known = ", ".join(f"{s}:" for s in SIGNER_URI_SCHEMES)
            raise UsageError(f"--signer-uri {uri!r}: unsupported scheme (use one of {known})")

        def secrets(message: str) -> str:
            if pin is not None:
                return pin
            if env := os.environ.get(PIN_ENV):
                return env
            raise UsageError(f"{uri}: {message.lower()} needed; set {PIN_ENV}")

        try:
            if public_key is None:
                public_key = _public_key_from_token(uri, secrets)
            sslib_key = SSlibKey.from_crypto(public_key)
        except (UsageError, KeyMaterialError):
            raise
        except Exception as exc:
            raise KeyMaterialError(f"{uri}: no usable public key: {_first_line(exc)}") from None

        try:
            signer = SslibSigner.from_priv_key_uri(uri, sslib_key, secrets)
        except UsageError:
            raise
        except Exception as exc:
            extra = SIGNER_URI_SCHEMES[scheme]
            hint = f" (install securesystemslib[{extra}])" if "required" in str(exc) else ""
            raise UsageError(f"--signer-uri {uri}: {_first_line(exc)}{hint}") from None
        return cls(signer=signer, public_key=public_key, pem_hint=pem_hint)

    def with_certificate(self, leaf: Certificate, chain: Sequence[Certificate] = ()) -> KeySigner:
        """Carry the signing certificate (and intermediates) instead of a key hint, as model_signing
        ``sign certificate`` does. The certificate must certify this signer's key."""
        if spki_der(leaf.public_key()) != spki_der(self.public_key):
            raise KeyMaterialError("the signing certificate does not certify the signing key")
        self._chain_der = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, *chain)]
        return self

    def require_oms_key(self) -> None:
        """Refuse keys OpenSSF model-signing cannot verify (EC P-256/384/521 only), before any work."""
        key = self.public_key
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _OMS_CURVES:
            raise UsageError("OpenSSF model-signing output needs an ECDSA key (P-256, P-384 or P-521)")

    def sign_statement(self, statement: bytes) -> dict[str, Any]:
        message = pae(PAYLOAD_TYPE, statement)
        try:
            signature = self._signer.sign(message)
            # A device or a KMS signs with a key we only know by its public half: check it is the one.
            SSlibKey.from_crypto(self.public_key, keyid=signature.keyid).verify_signature(signature, message)
        except UsageError:
            raise
        except Exception as exc:
            hint = (
                f" (the token refused the PIN in ${PIN_ENV})" if type(exc).__name__.startswith("Pin") else ""
            )
            raise SigningError(f"signing failed: {_first_line(exc)}{hint}") from None
        sig = bytes.fromhex(signature.signature)
        if self._chain_der is not None:
            return build_certificate_bundle(statement, PAYLOAD_TYPE, sig, self._chain_der)
        return build_key_bundle(statement, PAYLOAD_TYPE, sig, self._hint)


def _public_key_from_token(uri: str, secrets: Callable[[str], str]) -> PublicKeyTypes:
    """Read the public half of an ``hsm:`` key from its PKCS#11 token (the other schemes need it given)."""
    from urllib.parse import parse_qsl, urlparse

    from securesystemslib.signer import HSMSigner

    parsed = urlparse(uri)
    if parsed.scheme != "hsm":
        raise UsageError(f"--signer-uri {uri}: give the key's public half with --public-key")
    keyid = int(parsed.path) if parsed.path else HSMSigner.SCHEME_KEYID
    _, key = HSMSigner.import_(keyid, dict(parse_qsl(parsed.query)).get("label"), secrets)
    public: PublicKeyTypes = serialization.load_pem_public_key(key.keyval["public"].encode())
    return public


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
