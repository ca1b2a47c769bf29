"""Alembic environment: migrations run on a connection handed over by ``registry.migrate``."""

from __future__ import annotations

from alembic import context

from registry.models import SQLModel

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
