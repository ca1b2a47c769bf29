"""Alembic migrations of the registry database (run at startup, or ``attest serve --migrate``)."""
