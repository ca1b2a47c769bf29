"""SQLModel tables of the registry. The Alembic migrations in ``registry/migrations`` create exactly these.

Rows in ``entry``, ``entry_subject``, ``tree_node`` and ``checkpoint`` are written once, by the log
sequencer, in the transaction that appends the leaf, and never updated or deleted: the log is the
record. Tokens and namespace signer bindings are the only mutable state (revocation is a timestamp).
Every query the API answers walks an index ending in ``log_index`` so cost stays flat as the store grows
and cursors (``log_index > n``) are stable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel


class Entry(SQLModel, table=True):
    """One accepted attestation and its leaf in the transparency log."""

    __tablename__ = "entry"
    __table_args__ = (
        Index("ix_entry_predicate_type_log_index", "predicate_type", "log_index"),
        Index("ix_entry_signer_log_index", "signer", "log_index"),
        Index("ix_entry_integrated_time_log_index", "integrated_time", "log_index"),
        Index("ix_entry_statement_digest", "statement_digest"),
        Index("ix_entry_namespace_integrated_time", "namespace", "integrated_time"),
    )

    log_index: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    bundle_digest: str = Field(max_length=71, unique=True)
    envelope_digest: str = Field(max_length=71)
    # sha256 of the DSSE payload (the signed statement): with the signer, what makes an entry unique,
    # whatever other signatures ride along in the envelope
    statement_digest: str | None = Field(default=None, max_length=71)
    predicate_type: str = Field(max_length=512)
    signer: str = Field(max_length=1024)  # key fingerprint, or Sigstore SAN
    signer_issuer: str | None = Field(default=None, max_length=1024)  # OIDC issuer (Sigstore only)
    namespace: str = Field(max_length=255)
    integrated_time: int = Field(sa_column=Column(BigInteger, nullable=False))  # Unix seconds
    envelope_size: int
    leaf: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON leaf record
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    bundle: str = Field(sa_column=Column(Text, nullable=False))  # the bundle JSON as received


class EntrySubject(SQLModel, table=True):
    """One subject (model name + digest) of an entry; the lookup path for models and admission."""

    __tablename__ = "entry_subject"
    __table_args__ = (
        Index("ix_entry_subject_digest_log_index", "digest", "log_index"),
        Index("ix_entry_subject_name_log_index", "name", "log_index"),
    )

    log_index: int = Field(primary_key=True, foreign_key="entry.log_index")
    digest: str = Field(primary_key=True, max_length=71)  # sha256:<hex>
    name: str = Field(max_length=512)


class TreeNode(SQLModel, table=True):
    """Hash of a *complete* subtree: level ``level`` covering leaves [idx * 2**level, (idx+1) * 2**level).

    Complete subtrees never change, so proofs for any tree size need only O(log n) of these rows.
    """

    __tablename__ = "tree_node"

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    idx: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Checkpoint(SQLModel, table=True):
    """Every checkpoint the log signed, by tree size (one per append)."""

    __tablename__ = "checkpoint"

    size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime


class Token(SQLModel, table=True):
    """An API token, stored as the SHA-256 of its (high-entropy) secret."""

    __tablename__ = "token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)  # publisher | admin
    namespaces: str = Field(default="", max_length=4096)  # comma-separated, publisher scope
    description: str = Field(default="", max_length=255)
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None  # None: never expires


class NamespaceSigner(SQLModel, table=True):
    """A signer allowed to publish under a namespace: a key fingerprint, or Sigstore identity + issuer."""

    __tablename__ = "namespace_signer"
    __table_args__ = (Index("ix_namespace_signer_ns", "namespace", "signer", "issuer", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    namespace: str = Field(max_length=255)
    signer: str = Field(max_length=1024)
    issuer: str = Field(default="", max_length=1024)  # "" for keys
    created_at: datetime


class Constitution(SQLModel, table=True):
    """A canonical constitution text, addressed by the sha256 of its canonical form."""

    __tablename__ = "constitution"

    digest: str = Field(primary_key=True, max_length=71)
    text: str = Field(sa_column=Column(Text, nullable=False))
    section_root: str = Field(max_length=64)
    created_at: datetime


class LogKey(SQLModel, table=True):
    """The public half of the log's note key (one row), recorded on first start.

    The private key lives in the data directory; a server started with a different key against the
    same database refuses to run, since its checkpoints would not verify for existing clients.
    """

    __tablename__ = "log_key"

    origin: str = Field(primary_key=True, max_length=255)
    vkey: str = Field(max_length=1024)
    created_at: datetime
