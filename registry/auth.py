"""API tokens and namespace signer bindings: who may publish what.

Tokens are random 256-bit secrets shown once; the database holds only their SHA-256 (a slow hash buys
nothing for secrets of this entropy and would cost every request). A publisher token covers a set of
namespaces (the ``org`` in ``org/name``); an admin token manages tokens and bindings. A bundle is
accepted under a namespace only if the token covers it AND its verified signer is bound to it, so a
stolen token alone cannot place a stranger's attestation there.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from attest.errors import AttestError, UsageError
from attest.verifying import SignerIdentity
from registry.models import NamespaceSigner, Token
from registry.validation import MAX_DESCRIPTION, MAX_NAMESPACE, MAX_SIGNER, check_name, check_text

TOKEN_PREFIX = "mat_"
ROLES = ("publisher", "admin")


class AuthenticationError(AttestError):
    """No token, or a token that is unknown or revoked."""

    http_status = 401


class ForbiddenError(AttestError):
    """A valid token that does not allow this action (namespace, role, signer binding)."""

    http_status = 403


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def namespace_of(model_name: str) -> str:
    """``org/name`` -> ``org``; a name without a namespace cannot be published."""
    ns, sep, rest = model_name.partition("/")
    if not sep or not ns or not rest:
        raise UsageError(f"model name {model_name!r} has no namespace (expected org/name)")
    return ns


def _check_namespace(ns: str) -> str:
    ns = ns.strip().strip("/")
    if not ns or "/" in ns or "," in ns or any(c.isspace() for c in ns):
        raise UsageError(f"invalid namespace {ns[:80]!r}")
    return check_name(ns, "namespace", MAX_NAMESPACE)


_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expiry(value: str | None, now: datetime | None = None) -> datetime | None:
    """``--expires``: a duration (``90m``, ``12h``, ``30d``, ``8w``) or an RFC 3339 time / ISO date
    (``2027-01-31``, midnight UTC); None or "" or "never": no expiry. Must lie in the future."""
    if value is None or value.strip() in ("", "never"):
        return None
    value = value.strip()
    now = now or datetime.now(UTC)
    m = _DURATION.match(value)
    if m:
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
        if seconds > 100 * 366 * 86400:
            raise UsageError(f"expiry {value!r} is more than 100 years away")
        when = now + timedelta(seconds=seconds)
    else:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"expiry {value[:40]!r} is neither a duration (30d, 12h, 90m, 8w) nor an ISO date/time"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            when.astimezone(UTC)
        except OverflowError:
            raise UsageError(f"expiry {value[:40]!r} is out of range") from None
    if when <= now:
        raise UsageError(f"expiry {value[:40]!r} is not in the future")
    return when.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns: they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    token_id: int
    role: str
    namespaces: frozenset[str]

    def covers(self, namespace: str) -> bool:
        return self.role == "admin" or namespace in self.namespaces

    def require_admin(self) -> None:
        if self.role != "admin":
            raise ForbiddenError("this action needs an admin token")


def create_token(
    session: Session,
    role: str,
    namespaces: list[str],
    description: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, Token]:
    """Create a token; returns the secret (shown once) and the stored row."""
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}")
    check_text(description, "description", MAX_DESCRIPTION)
    spaces = sorted({_check_namespace(n) for n in namespaces})
    if role == "publisher" and not spaces:
        raise UsageError("a publisher token needs at least one --namespace")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = Token(
        token_hash=hash_token(secret),
        role=role,
        namespaces=",".join(spaces),
        description=description,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
    )
    if len(row.namespaces) > 4096:
        raise UsageError("too many namespaces for one token (4096 characters in all)")
    session.add(row)
    session.flush()
    return secret, row


def revoke_token(session: Session, token_id: int) -> Token:
    row = session.get(Token, token_id)
    if row is None:
        raise UsageError(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
    return row


def list_tokens(session: Session) -> list[Token]:
    return list(session.exec(select(Token).order_by(col(Token.id))).all())


def authenticate(session: Session, authorization: str | None) -> Principal:
    """Resolve an ``Authorization: Bearer <token>`` header to a principal, or raise 401."""
    if not authorization:
        raise AuthenticationError("missing bearer token")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip() or len(secret) > 512:
        raise AuthenticationError("authorization must be 'Bearer <token>'")
    digest = hash_token(secret.strip())
    row = session.exec(select(Token).where(Token.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        raise AuthenticationError("unknown or revoked token")
    if row.expires_at is not None and _aware(row.expires_at) <= datetime.now(UTC):
        raise AuthenticationError("token expired")
    assert row.id is not None
    return Principal(row.id, row.role, frozenset(n for n in row.namespaces.split(",") if n))


def signer_key(signer: SignerIdentity) -> tuple[str, str]:
    """(signer, issuer) columns for a signer: key fingerprint and "", or Sigstore SAN and issuer."""
    if signer.key_fingerprint:
        return signer.key_fingerprint, ""
    return signer.identity or "", signer.issuer or ""


def bind_signer(session: Session, namespace: str, signer: str, issuer: str = "") -> NamespaceSigner:
    """Allow ``signer`` (key fingerprint ``sha256:...`` or Sigstore identity + issuer) under a namespace."""
    namespace = _check_namespace(namespace)
    if not signer:
        raise UsageError("a binding needs a key fingerprint or a Sigstore identity")
    check_text(signer, "signer", MAX_SIGNER)
    check_text(issuer, "issuer", MAX_SIGNER)
    if not issuer and not signer.startswith("sha256:"):
        raise UsageError(
            "a key binding needs a fingerprint 'sha256:<hex>'; a Sigstore identity needs --issuer"
        )
    existing = session.exec(
        select(NamespaceSigner).where(
            NamespaceSigner.namespace == namespace,
            NamespaceSigner.signer == signer,
            NamespaceSigner.issuer == issuer,
        )
    ).first()
    if existing is not None:
        return existing
    row = NamespaceSigner(namespace=namespace, signer=signer, issuer=issuer, created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    return row


def unbind_signer(session: Session, namespace: str, signer: str, issuer: str = "") -> bool:
    rows = session.exec(
        select(NamespaceSigner).where(
            NamespaceSigner.namespace == namespace,
            NamespaceSigner.signer == signer,
            NamespaceSigner.issuer == issuer,
        )
    ).all()
    for row in rows:
        session.delete(row)
    return bool(rows)


def list_bindings(session: Session, namespace: str | None = None) -> list[NamespaceSigner]:
    query = select(NamespaceSigner).order_by(col(NamespaceSigner.namespace), col(NamespaceSigner.id))
    if namespace:
        query = query.where(NamespaceSigner.namespace == namespace)
    return list(session.exec(query).all())


def signer_bound(session: Session, namespace: str, signer: SignerIdentity) -> bool:
    who, issuer = signer_key(signer)
    row = session.exec(
        select(NamespaceSigner.id).where(
            NamespaceSigner.namespace == namespace,
            NamespaceSigner.signer == who,
            NamespaceSigner.issuer == issuer,
        )
    ).first()
    return row is not None
