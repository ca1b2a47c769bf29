"""Transparency-log checkpoints: C2SP ``tlog-checkpoint`` text inside a C2SP ``signed-note``.

A checkpoint is the log's signed statement "my tree of N leaves has root R". Clients keep the last
one they verified and demand consistency proofs to newer ones (see ``attest.registry_client``), so
the format here must be exact: the signature covers the note text byte for byte.

Rules followed (shared notes/transparency-log.md, C2SP signed-note):
- key ID = SHA-256(key name || 0x0A || signature type || public key)[:4], type 0x01 = Ed25519;
- verifiers ignore signatures by unknown keys, reject the note if a known key's signature fails,
  require at least one valid known signature, and accept up to (at least) 16 signature lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attest.errors import KeyMaterialError, VerificationError

ED25519_TYPE = 0x01
MAX_SIGNATURES = 16
_DASH = "\u2014 "


def key_id(name: str, public_key: bytes, sig_type: int = ED25519_TYPE) -> bytes:
    """The 4-byte key ID of the signed-note spec."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise KeyMaterialError(f"invalid note key name {name!r}: must be non-empty, no spaces, no '+'")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A known log key: its name and Ed25519 public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_key) != 32:
            raise KeyMaterialError("an Ed25519 note key must be 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def vkey(self) -> str:
        """The C2SP verifier-key string ``<name>+<hex key id>+<base64(type || key)>``."""
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier-key string, checking that its key ID matches its key."""
        try:
            name, hex_id, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            declared = bytes.fromhex(hex_id)
        except (ValueError, binascii.Error) as exc:
            raise KeyMaterialError(f"malformed verifier key {vkey!r}") from exc
        if len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise KeyMaterialError("verifier key is not an Ed25519 note key")
        verifier = cls(name, raw[1:])
        if verifier.key_id != declared:
            raise KeyMaterialError("verifier key ID does not match its name and key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A log's signing key (Ed25519) under a key name; the registry holds one."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_key_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, _raw_public(self.private_key.public_key()))

    def sign_line(self, text: bytes) -> str:
        sig = self.private_key.sign(text)
        return f"{_DASH}{self.name} {base64.b64encode(self.verifier.key_id + sig).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint body: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def body(self) -> str:
        """The exact checkpoint text that gets signed (ends with a newline)."""
        if not self.origin or "\n" in self.origin:
            raise VerificationError("checkpoint origin must be one non-empty line")
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """Return the signed note text for ``checkpoint`` signed by every signer."""
    if not signers:
        raise KeyMaterialError("a checkpoint needs at least one signer")
    body = checkpoint.body()
    return body + "\n" + "".join(s.sign_line(body.encode()) for s in signers)


def _parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")[:-1]  # body ends with "\n"
    if len(lines) < 3:
        raise VerificationError("checkpoint body needs origin, size and root hash lines")
    origin, size_text, root_text, *ext = lines
    if not origin:
        raise VerificationError("checkpoint origin is empty")
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise VerificationError(f"checkpoint tree size {size_text!r} is not a canonical decimal")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise VerificationError("checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise VerificationError("checkpoint root hash is not 32 bytes")
    if any(not line for line in ext):
        raise VerificationError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, int(size_text), root, tuple(ext))


def verify_note(note: str, verifiers: Iterable[NoteVerifier]) -> tuple[str, list[str]]:
    """Verify any signed note; return its text and the names of the known keys that signed it.

    Unknown keys are ignored; a known key whose signature fails rejects the whole note; at least one
    known key must have signed.
    """
    if not isinstance(note, str) or "\r" in note or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise VerificationError("signed note contains control characters")
    sep = note.rfind("\n\n")
    if sep < 0 or not note.endswith("\n"):
        raise VerificationError("signed note has no signature block")
    body, sig_block = note[: sep + 1], note[sep + 2 :]
    sig_lines = sig_block.split("\n")[:-1]
    if not sig_lines:
        raise VerificationError("signed note has no signatures")
    if len(sig_lines) > MAX_SIGNATURES:
        raise VerificationError(f"signed note has more than {MAX_SIGNATURES} signatures")
    known: dict[tuple[str, bytes], NoteVerifier] = {(v.name, v.key_id): v for v in verifiers}
    signed_by: list[str] = []
    for line in sig_lines:
        if not line.startswith(_DASH):
            raise VerificationError("malformed signature line in signed note")
        parts = line[len(_DASH) :].split(" ")
        if len(parts) != 2 or not parts[0]:
            raise VerificationError("malformed signature line in signed note")
        name, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise VerificationError("signature in signed note is not base64") from exc
        if len(raw) < 5:
            raise VerificationError("signature in signed note is too short")
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue
        if not verifier.verify(body.encode(), raw[4:]):
            raise VerificationError(f"checkpoint signature by known key {name!r} is invalid")
        signed_by.append(name)
    if not signed_by:
        raise VerificationError("checkpoint is not signed by any trusted log key")
    return body, signed_by


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> tuple[Checkpoint, list[str]]:
    """Verify a signed checkpoint note; return the checkpoint and the names of keys that signed it."""
    body, signed_by = verify_note(note, verifiers)
    return _parse_body(body), signed_by


def verify_checkpoint(note: str, verifiers: Iterable[NoteVerifier], origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and (optionally) its origin; return the checkpoint."""
    checkpoint, _ = open_note(note, verifiers)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}")
    return checkpoint


def generate_signer(name: str) -> NoteSigner:
    """A fresh Ed25519 log key under ``name``."""
    return NoteSigner(name, Ed25519PrivateKey.generate())
