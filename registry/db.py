"""Database engines, sessions and the one write lock that serialises the log sequencer.

SQLite runs in WAL mode so readers never wait for the writer. Writers (publish) take the database
write lock up front with ``BEGIN IMMEDIATE``: two publishers can then never read the same tree size
and both append at it. On PostgreSQL the same role is played by a transaction-scoped advisory lock,
which serialises sequencers across any number of API workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, create_engine

from attest.errors import AttestError, UsageError
from registry.settings import Settings

# pg_advisory_xact_lock key of the log sequencer ("mattestl" as an int64).
SEQUENCER_LOCK_KEY = 0x6D61747465737421


def create_private_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use 0644 under the usual umask); its
    ``-wal`` and ``-shm`` files inherit the database file's mode. An existing file is left alone."""
    if path.name == ":memory:" or not path.name:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class StorageError(AttestError):
    """The database could not store or read (disk full, I/O error, unreachable): the server's
    fault, reported with its reason. 507 when storage is full, 503 otherwise; exit 3 in the CLI."""

    http_status = 503
    exit_code = 3


class StorageFull(StorageError):
    """The disk (or quota) under the database is full: 507 Insufficient Storage."""

    http_status = 507


class WriteConflict(StorageError):
    """A uniqueness race lost to a concurrent writer: 409, retrying gives the stored answer."""

    http_status = 409


_FULL = (
    "database or disk is full",
    "no space left on device",
    "disk full",
    "file too large",
    "quota exceeded",
)
_IO = ("disk i/o error", "readonly database", "unable to open database", "could not extend file")


def classify_db_error(exc: DBAPIError) -> AttestError:
    """The one mapping from a database failure to an HTTP answer (never a bare 500).

    Input the database refused (PostgreSQL ``DataError``: a string too long, a NUL byte, a number out
    of range) is the caller's fault: 400. Full storage is 507, other storage or connection failures
    503, a constraint race 409; the reason is kept in the message.
    """
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    reason = text_.splitlines()[0][:300] if text_ else type(exc).__name__
    lowered = reason.lower()
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    if isinstance(exc, DataError) or isinstance(getattr(exc, "orig", None), ValueError | OverflowError):
        return UsageError(f"value rejected by the database: {reason}")
    if any(m in lowered for m in _FULL) or sqlstate in {"53100", "53200"}:
        return StorageFull(f"storage full: {reason}")
    if isinstance(exc, IntegrityError):
        return WriteConflict(f"conflicting concurrent write: {reason}")
    if any(m in lowered for m in _IO) or isinstance(exc, OperationalError):
        return StorageError(f"storage unavailable: {reason}")
    return StorageError(f"database error: {reason}")


class Database:
    """The engines of one registry: ``read`` for queries, ``write`` for log appends and admin writes."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            create_private_file(Path(self.url.removeprefix("sqlite:///")))
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
