"""Initial schema: log entries, subjects, tree nodes, checkpoints, tokens, bindings, constitutions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry",
        sa.Column("log_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bundle_digest", sa.String(71), nullable=False),
        sa.Column("envelope_digest", sa.String(71), nullable=False),
        sa.Column("predicate_type", sa.String(512), nullable=False),
        sa.Column("signer", sa.String(1024), nullable=False),
        sa.Column("signer_issuer", sa.String(1024), nullable=True),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("integrated_time", sa.BigInteger(), nullable=False),
        sa.Column("envelope_size", sa.Integer(), nullable=False),
        sa.Column("leaf", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("bundle", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("log_index"),
        sa.UniqueConstraint("bundle_digest"),
    )
    op.create_index("ix_entry_predicate_type_log_index", "entry", ["predicate_type", "log_index"])
    op.create_index("ix_entry_signer_log_index", "entry", ["signer", "log_index"])
    op.create_index("ix_entry_integrated_time_log_index", "entry", ["integrated_time", "log_index"])
    op.create_table(
        "entry_subject",
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.ForeignKeyConstraint(["log_index"], ["entry.log_index"]),
        sa.PrimaryKeyConstraint("log_index", "digest"),
    )
    op.create_index("ix_entry_subject_digest_log_index", "entry_subject", ["digest", "log_index"])
    op.create_index("ix_entry_subject_name_log_index", "entry_subject", ["name", "log_index"])
    op.create_table(
        "tree_node",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "checkpoint",
        sa.Column("size", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("namespaces", sa.String(4096), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "namespace_signer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("signer", sa.String(1024), nullable=False),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_namespace_signer_ns", "namespace_signer", ["namespace", "signer", "issuer"], unique=True
    )
    op.create_table(
        "constitution",
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("section_root", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "log_key",
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("vkey", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin"),
    )


def downgrade() -> None:
    for table in ("log_key", "constitution", "namespace_signer", "token", "checkpoint", "tree_node"):
        op.drop_table(table)
    op.drop_table("entry_subject")
    op.drop_table("entry")
