"""Statement digests (one statement per signer), namespace quota index, token expiry.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import base64
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _statement_digest(bundle: str) -> str | None:
    try:
        payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    except (ValueError, KeyError, TypeError):
        return None
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("entry") as batch:
        batch.add_column(sa.Column("statement_digest", sa.String(71), nullable=True))
    op.create_index("ix_entry_statement_digest", "entry", ["statement_digest"])
    op.create_index("ix_entry_namespace_integrated_time", "entry", ["namespace", "integrated_time"])
    with op.batch_alter_table("token") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    # backfill existing entries (their stored bundles are the ones that verified at publish time)
    conn = op.get_bind()
    entry = sa.table(
        "entry",
        sa.column("log_index", sa.Integer),
        sa.column("bundle", sa.Text),
        sa.column("statement_digest"),
    )
    rows = conn.execute(sa.select(entry.c.log_index, entry.c.bundle)).fetchall()
    for log_index, bundle in rows:
        conn.execute(
            entry.update()
            .where(entry.c.log_index == log_index)
            .values(statement_digest=_statement_digest(bundle))
        )


def downgrade() -> None:
    with op.batch_alter_table("token") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_entry_namespace_integrated_time", "entry")
    op.drop_index("ix_entry_statement_digest", "entry")
    with op.batch_alter_table("entry") as batch:
        batch.drop_column("statement_digest")
