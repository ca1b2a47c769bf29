"""Long-lived signing keys: generation, loading, fingerprints.

Keys are read with a size cap (``MAX_KEY_BYTES``) and only from regular files, so a library caller
handing in ``/dev/zero`` or a FIFO gets a one-line error instead of a hang. Private keys are written
0600 with ``O_EXCL`` (never over an existing key), optionally encrypted with a passphrase. A key's identity is its fingerprint, ``sha256:<hex of the DER SubjectPublicKeyInfo>``,
which is what policies and namespace bindings name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from attest._internal.capped import MAX_KEY_BYTES, read_capped
from attest.errors import KeyMaterialError, UsageError

PASSPHRASE_ENV = "ATTEST_KEY_PASSPHRASE"
ALGORITHMS = ("ecdsa-p256", "ecdsa-p384", "ed25519")


def generate_private_key(algorithm: str = "ecdsa-p256") -> PrivateKeyTypes:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise UsageError(f"unsupported key algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")


def spki_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_pem(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(public_key: PublicKeyTypes) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo: stable across PEM formatting."""
    return "sha256:" + hashlib.sha256(spki_der(public_key)).hexdigest()


def write_key_pair(prefix: Path, algorithm: str = "ecdsa-p256", passphrase: bytes | None = None) -> str:
    """Write ``PREFIX.key`` (0600, PKCS#8) and ``PREFIX.pub``; return the public key's fingerprint."""
    key = generate_private_key(algorithm)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    priv_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pub = key.public_key()
    priv_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for p in (priv_path, pub_path):
        if p.exists():
            raise UsageError(f"{p}: already exists; refusing to overwrite a key")
    try:
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"{priv_path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(priv_pem)
    pub_path.write_bytes(spki_pem(pub))
    return fingerprint(pub)


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKeyTypes:
    """Load a PEM private key; the passphrase comes from the caller or ``ATTEST_KEY_PASSPHRASE``."""
    data = read_capped(path, MAX_KEY_BYTES, "key")
    if passphrase is None and (env := os.environ.get(PASSPHRASE_ENV)):
        passphrase = env.encode()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise KeyMaterialError(
            f"{path}: key is encrypted; set {PASSPHRASE_ENV} or enter the passphrase"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyMaterialError(f"{path}: not a usable private key ({_first_line(exc)})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyMaterialError(f"{path}: only ECDSA and Ed25519 keys are supported")
    return key


def is_encrypted_key(path: Path) -> bool:
    """Whether the PEM private key at ``path`` is passphrase-protected (read capped, like loading)."""
    return b"ENCRYPTED" in read_capped(path, MAX_KEY_BYTES, "key")[:64]


def load_public_key(path: Path) -> PublicKeyTypes:
    """Load a public key (SubjectPublicKeyInfo, PEM or DER) or the public half of a PEM certificate.

    DER is accepted because that is what token tools export (``pkcs11-tool --read-object --type pubkey``).
    """
    data = read_capped(path, MAX_KEY_BYTES, "key")
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            return x509.load_pem_x509_certificate(data).public_key()
        if b"-----BEGIN" not in data:
            return serialization.load_der_public_key(data)
        return serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyMaterialError(f"{path}: not a usable public key ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
