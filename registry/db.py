"""Database engines, sessions and the one write lock that serialises the log sequencer.

SQLite runs in WAL mode so readers never wait for the writer. Writers (publish) take the database
write lock up front with ``BEGIN IMMEDIATE``: two publishers can then never read the same tree size
and both append at it. On PostgreSQL the same role is played by a transaction-scoped advisory lock,
which serialises sequencers across any number of API workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from registry.settings import Settings

# pg_advisory_xact_lock key of the log sequencer ("mattestl" as an int64).
SEQUENCER_LOCK_KEY = 0x6D61747465737421


class Database:
    """The engines of one registry: ``read`` for queries, ``write`` for log appends and admin writes."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.read = self._sqlite_engine(immediate=False)
            self.write = self._sqlite_engine(immediate=True)
        else:
            self.read = create_engine(
                self.url, pool_size=settings.db_pool_size, max_overflow=10, pool_pre_ping=True
            )
            self.write = self.read

    def _sqlite_engine(self, immediate: bool) -> Engine:
        engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's is broken)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # an acknowledged entry survives power loss
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def sequencer_session(self) -> Iterator[Session]:
        """A write transaction holding the log's global write lock; commits on success."""
        with Session(self.write, expire_on_commit=False) as session, session.begin():
            if not self.is_sqlite:
                session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=SEQUENCER_LOCK_KEY))  # type: ignore[call-overload]
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with Session(self.read, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A write transaction for mutable admin state (tokens, bindings, constitutions)."""
        with Session(self.write, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.read.dispose()
        if self.write is not self.read:
            self.write.dispose()
