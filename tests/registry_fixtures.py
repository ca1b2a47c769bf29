"""Fixtures for the registry tests: real databases (SQLite and a real PostgreSQL server), signers,
tokens, in-process apps and real ``attest serve`` subprocesses on loopback.

PostgreSQL is started from its binaries (initdb + pg_ctl into a temp dir, loopback TCP port). When
the binaries are missing the PostgreSQL-parametrised tests FAIL with the packages to install: CI
must run the same tests on both databases.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from attest.keys import generate_private_key, spki_pem
from attest.predicates import MODEL_MANIFEST_V1
from attest.signing import KeySigner
from attest.statement import build_statement

REPO = Path(__file__).resolve().parents[1]
PG_PACKAGES = "postgresql (Debian: apt-get install postgresql postgresql-contrib)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    admin_url: str

    def new_database(self) -> str:
        """A fresh, empty database on the server; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the session (loopback TCP, trust auth, fsync off: tests only)."""
    try:
        with running_postgres() as server:
            yield server
    except PgUnavailable as exc:
        pytest.fail(str(exc))


class PgUnavailable(Exception):
    """PostgreSQL binaries are missing or the server would not start."""


@contextmanager
def running_postgres(durable: bool = False) -> Iterator[PgServer]:
    """Start a throwaway PostgreSQL server (also used by bench/registry.py, with ``durable=True``)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise PgUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found: install {PG_PACKAGES}")
    # Not under pytest's tmp dir: pytest keeps that 0700, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="attest-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = free_port()
    done = subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise PgUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
    opts = f"-p {port} -h 127.0.0.1 -k {root} -c max_connections=300 -c shared_buffers=512MB"
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off"
    done = subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise PgUnavailable(f"PostgreSQL did not start: {done.stderr.strip()[-500:]}")
    try:
        yield PgServer("127.0.0.1", port, "postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Publisher:
    """A signer with its key files: what a model publisher holds."""

    name: str
    directory: Path
    algorithm: str = "ecdsa-p256"
    signer: KeySigner = field(init=False)

    def __post_init__(self) -> None:
        key = generate_private_key(self.algorithm)
        self.signer = KeySigner(key)
        self.public_pem = self.directory / f"{self.name}.pub"
        self.public_pem.write_bytes(spki_pem(key.public_key()))

    @property
    def fingerprint(self) -> str:
        return self.signer.fingerprint

    def bundle(
        self,
        model: str,
        digest: str | None = None,
        predicate_type: str = MODEL_MANIFEST_V1,
        predicate: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        digest = digest or model_digest(model)
        if predicate is None:
            predicate = manifest_predicate(model)
        return self.signer.sign_statement(build_statement(model, digest, predicate_type, predicate))


def model_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def manifest_predicate(model: str) -> dict[str, Any]:
    file_digest = hashlib.sha256(model.encode()).hexdigest()
    return {
        "hashAlgorithm": "sha256",
        "model": {"name": model},
        "files": [{"path": "model.safetensors", "size": 1, "digest": file_digest}],
        "ignores": [],
        "fileCount": 1,
        "totalSize": 1,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data dir) or a fresh PostgreSQL database: every registry test runs on both."""
    if request.param == "sqlite":
        return None
    server: PgServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@dataclass
class RegistryWorld:
    """A configured registry: trust file, publishers, tokens and bindings, plus how to reach it."""

    root: Path
    data_dir: Path
    database_url: str | None
    alice: Publisher  # bound to namespace acme
    mallory: Publisher  # trusted by the server, bound to namespace evil
    stranger: Publisher  # not trusted by the server at all
    trust_file: Path
    admin_token: str = ""
    acme_token: str = ""
    evil_token: str = ""

    def settings(self, **overrides: Any) -> Any:
        from registry.settings import Settings

        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "trust_file": self.trust_file,
            "origin": "registry.test/log",
        }
        return Settings(**(values | overrides))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ATTEST_REGISTRY_DATA_DIR": str(self.data_dir),
                "ATTEST_REGISTRY_TRUST_FILE": str(self.trust_file),
                "ATTEST_REGISTRY_ORIGIN": "registry.test/log",
            }
        )
        if self.database_url:
            env["ATTEST_REGISTRY_DATABASE_URL"] = self.database_url
        return env

    def provision(self) -> None:
        """Create tokens and bindings directly in the database (as ``attest registry`` does)."""
        from registry.auth import bind_signer, create_token
        from registry.db import Database
        from registry.migrate import upgrade

        db = Database(self.settings())
        upgrade(db.write)
        with db.write_session() as s:
            self.admin_token, _ = create_token(s, "admin", [])
            self.acme_token, _ = create_token(s, "publisher", ["acme"])
            self.evil_token, _ = create_token(s, "publisher", ["evil"])
            bind_signer(s, "acme", self.alice.fingerprint)
            bind_signer(s, "evil", self.mallory.fingerprint)
        db.dispose()


def make_world(
    root: Path, database_url: str | None = None, trusted: tuple[str, ...] = ("alice", "mallory")
) -> RegistryWorld:
    """A provisioned registry world under ``root``: publishers alice, mallory and stranger (key files
    in ``root/keys``), a trust file naming the ``trusted`` ones, tokens and namespace bindings.

    One builder for the per-test fixture and for module-scoped worlds (a live server shared by a
    module), so the two cannot drift apart. ``database_url`` None is SQLite in ``root/data``.
    """
    keys = root / "keys"
    keys.mkdir(parents=True)
    alice, mallory, stranger = (Publisher(n, keys) for n in ("alice", "mallory", "stranger"))
    by_name = {"alice": alice, "mallory": mallory, "stranger": stranger}
    trust = root / "trust.yaml"
    trust.write_text(f"keys: [{', '.join(f'keys/{by_name[n].public_pem.name}' for n in trusted)}]\n")
    world = RegistryWorld(root, root / "data", database_url, alice, mallory, stranger, trust)
    world.provision()
    return world


@pytest.fixture
def registry_world(tmp_path: Path, database_url: str | None) -> RegistryWorld:
    return make_world(tmp_path, database_url)


@pytest.fixture
def registry_app(registry_world: RegistryWorld) -> Iterator[Any]:
    """An in-process app over the world's database, with a TestClient."""
    from fastapi.testclient import TestClient

    from registry import create_app

    app = create_app(registry_world.settings())
    with TestClient(app) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LiveServer:
    """A real ``attest serve`` subprocess on a loopback port."""

    world: RegistryWorld
    port: int
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # run in the child before exec (e.g. ``resource.setrlimit`` to give the server a small disk)
    preexec: Callable[[], None] | None = None
    # more ATTEST_REGISTRY_* settings for this server (e.g. a POLICY_FILE), over the world's
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.log_path = self.world.root / f"server-{self.port}-{time.monotonic_ns()}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.world.data_dir),
            ],
            cwd=REPO,
            env=self.world.env() | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def live_server(registry_world: RegistryWorld) -> Iterator[LiveServer]:
    server = LiveServer(registry_world, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def json_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


Factory = Callable[..., Any]
