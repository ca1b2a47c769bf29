"""The running registry: settings, database, log, trust and caches, built once per app.

``create_app`` makes one ``Registry`` and hangs it on ``app.state``; routers reach it through the
``get_registry`` dependency, so tests can run several registries (SQLite, PostgreSQL) side by side.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from attest.errors import UsageError
from attest.keys import load_private_key, write_key_pair
from attest.policy import Policy
from attest.signing import KeySigner
from attest.verifying import Trust
from registry.db import Database
from registry.log import TransparencyLog, load_or_create_log_key
from registry.settings import Settings
from registry.trust import load_trust

log = logging.getLogger("registry")


def load_or_create_verifier_key(prefix: Path) -> KeySigner:
    """The key that signs the registry's verification summaries (VSAs): ``PREFIX.key`` (0600) and
    ``PREFIX.pub``, created on first start. Kept apart from the log key: a verdict is not a log entry."""
    key_path = Path(f"{prefix}.key")
    if not key_path.exists():
        with contextlib.suppress(UsageError):  # another worker created it first
            write_key_pair(prefix)
    return KeySigner(load_private_key(key_path))


class Metrics:
    """Prometheus metrics in a per-app collector registry (several apps may live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "registry_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "registry_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.published = Counter("registry_published_total", "Accepted attestations", registry=self.registry)
        self.refused = Counter(
            "registry_refused_total", "Refused publish requests", ["status"], registry=self.registry
        )
        self.admission = Counter(
            "registry_admission_total", "Admission decisions", ["allowed", "cached"], registry=self.registry
        )
        self.log_size = Gauge("registry_log_size", "Entries in the transparency log", registry=self.registry)


class Registry:
    """Everything one registry instance needs at request time."""

    def __init__(self, settings: Settings) -> None:
        from registry.admission import AdmissionCache

        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings)
        if settings.migrate:
            from registry.migrate import upgrade

            upgrade(self.db.write)
        self.log = TransparencyLog(load_or_create_log_key(settings.resolved_log_key_path, settings.origin))
        with self.db.sequencer_session() as session:
            self.log.initialise(session)
        self.verifier: KeySigner = load_or_create_verifier_key(settings.data_dir / "verifier")
        self.trust: Trust = load_trust(settings.trust_file)
        self.policy: Policy | None = Policy.load(settings.policy_file) if settings.policy_file else None
        self.admission_cache = AdmissionCache(settings.admission_cache_size)
        self._size_lock = threading.Lock()
        self._size, self._size_checked, self._refreshing = 0, 0.0, False
        self.metrics = Metrics()
        log.info("registry started", extra={"fields": self.describe()})

    def note_log_size(self, size: int) -> None:
        """Record a log size this process has seen committed (publishes and reads call this)."""
        with self._size_lock:
            if size > self._size:
                self._size = size
            self._size_checked = time.monotonic()

    def log_size_hint(self) -> int | None:
        """The log size for admission cache keys, or None when this caller must re-read it.

        Exact for this process's own publishes; appends by other processes (workers, bulk loads) are
        seen within ``size_refresh_s``. Single-flight: while one caller refreshes (``refresh_log_size``,
        off the event loop), the others keep using the last size instead of piling up more queries.
        """
        if time.monotonic() - self._size_checked <= self.settings.size_refresh_s:
            return self._size
        with self._size_lock:
            if self._refreshing:
                return self._size
            self._refreshing = True
        return None

    def refresh_log_size(self) -> int:
        try:
            with self.db.read_session() as session:
                self.note_log_size(self.log.size(session))
        finally:
            self._refreshing = False
        return self._size

    def describe(self) -> dict[str, Any]:
        return {
            "origin": self.log.origin,
            "logKey": self.log.verifier.vkey(),
            "database": "sqlite" if self.db.is_sqlite else "postgresql",
            "dataDir": str(Path(self.settings.data_dir).resolve()),
            "trustedKeys": len(self.trust.keys),
            "trustedIdentities": len(self.trust.identities),
        }

    def close(self) -> None:
        self.db.dispose()
