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
        self.rate_limited = Counter(
            "registry_rate_limited_total", "Requests refused by a rate limit", ["by"], registry=self.registry
        )
        self.quota_refused = Counter(
            "registry_quota_refused_total", "Publishes refused by a namespace quota", registry=self.registry
        )
        self.log_integrity_ok = Gauge(
            "registry_log_integrity_ok",
            "1 while the stored log reproduces its signed checkpoints, 0 after a failure",
            registry=self.registry,
        )
        self.log_integrity_failures = Counter(
            "registry_log_integrity_failures_total", "Log integrity failures detected", registry=self.registry
        )
        self.storage_errors = Counter(
            "registry_storage_errors_total",
            "Requests failed by the database or its storage",
            ["status"],
            registry=self.registry,
        )


class Registry:
    """Everything one registry instance needs at request time."""

    def __init__(self, settings: Settings) -> None:
        from registry.admission import AdmissionCache, ServerPolicy, load_server_policies

        self.settings = settings
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.metrics = Metrics()
        self.db = Database(settings)
        if settings.migrate:
            from registry.migrate import upgrade

            upgrade(self.db.write)
        self.log = TransparencyLog(load_or_create_log_key(settings.resolved_log_key_path, settings.origin))
        self.log.on_broken = self._log_broken
        self.metrics.log_integrity_ok.set(1)
        with self.db.sequencer_session() as session:
            self.log.initialise(session)
        self.check_log(full=self._full_check_at_start())
        self.verifier: KeySigner = load_or_create_verifier_key(settings.data_dir / "verifier")
        self.trust: Trust = load_trust(settings.trust_file)
        # named admission policies (the only ones whose verdicts the registry signs); "default" also
        # answers AdmissionReview and requests that name no policy
        self.policies: dict[str, ServerPolicy] = load_server_policies(settings.policy_file, settings.policies)
        self.policy: Policy | None = self.policies["default"].policy if "default" in self.policies else None
        self.admission_cache = AdmissionCache(settings.admission_cache_size)
        self._size_lock = threading.Lock()
        self._size, self._size_checked, self._refreshing = 0, 0.0, False
        log.info("registry started", extra={"fields": self.describe()})

    def _full_check_at_start(self) -> bool:
        mode = self.settings.startup_check
        if mode != "auto":
            return mode == "full"
        with self.db.read_session() as session:
            return self.log.size(session) <= self.settings.startup_full_check_max

    def _log_broken(self, _problem: str) -> None:
        self.metrics.log_integrity_ok.set(0)
        self.metrics.log_integrity_failures.inc()

    def check_log(self, full: bool = True) -> list[str]:
        """Check that the stored log reproduces its signed checkpoint (``registry.integrity``); on a
        problem the log is marked broken (proofs and writes answer 503) but the server still starts,
        so clients get a clear error instead of a connection refused."""
        from registry.integrity import check_log

        with self.db.read_session() as session:
            problems = check_log(session, self.log.verifier, full=full)
        if problems:
            self.log.mark_broken("; ".join(problems[:3]))
        return problems

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
