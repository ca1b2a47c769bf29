"""A real ``attest serve`` on loopback: concurrent publishers, kill -9 and restart, the CLI end to end."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from attest._internal import merkle
from attest.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint
from tests.registry_fixtures import REPO, LiveServer, RegistryWorld, auth

pytestmark = pytest.mark.slow


def _checker(url: str) -> tuple[NoteVerifier, Any]:
    vkey = NoteVerifier.from_vkey(_get(url + "/v1/log/key").json()["vkey"])

    def check(note: str) -> Checkpoint:
        return verify_checkpoint(note, [vkey], origin="registry.test/log")

    return vkey, check


_HTTP = threading.local()


def _get(url: str, **kwargs: Any) -> httpx.Response:
    """GET through one kept-alive client per thread (a fresh httpx client costs ~50 ms of TLS setup)."""
    if not hasattr(_HTTP, "client"):
        _HTTP.client = httpx.Client(timeout=30)
    return _HTTP.client.get(url, **kwargs)


def _consistent(url: str, a: Checkpoint, b: Checkpoint) -> None:
    small, big = sorted((a, b), key=lambda c: c.size)
    doc = _get(
        url + "/v1/log/proof/consistency", params={"firstSize": small.size, "lastSize": big.size}
    ).json()
    merkle.verify_consistency(
        small.size, big.size, [bytes.fromhex(h) for h in doc["hashes"]], small.root_hash, big.root_hash
    )


def _publish_burst(
    server: LiveServer, clients: int, per_client: int, acks: list[dict[str, Any]], stop: threading.Event
) -> list[threading.Thread]:
    w = server.world

    def run(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(per_client):
                if stop.is_set():
                    return
                bundle = w.alice.bundle(f"acme/c{n}-{i}")
                try:
                    r = http.post("/v1/attestations", content=json.dumps(bundle), headers=auth(w.acme_token))
                except httpx.HTTPError:
                    return  # the server died mid-request: this publish was never acknowledged
                assert r.status_code == 201, r.text
                acks.append(r.json() | {"bundle": bundle})

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    return threads


def _poll_checkpoints(url: str, notes: list[str], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    notes.append(http.get("/v1/log/checkpoint").json()["checkpoint"])
                time.sleep(0.25)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_200_concurrent_publishes_from_8_clients(live_server: LiveServer) -> None:
    acks: list[dict[str, Any]] = []
    notes: list[str] = []
    stop, poll_stop = threading.Event(), threading.Event()
    poller = _poll_checkpoints(live_server.url, notes, poll_stop)
    started = time.monotonic()
    for t in _publish_burst(live_server, 8, 25, acks, stop):
        t.join()
    print(f"200 publishes from 8 clients in {time.monotonic() - started:.1f} s")
    poll_stop.set()
    poller.join()

    assert sorted(a["logIndex"] for a in acks) == list(range(200))  # dense, none reused
    _, check = _checker(live_server.url)
    for a in acks:
        proof = a["inclusionProof"]
        cp = check(proof["checkpoint"])
        merkle.verify_inclusion(
            merkle.leaf_hash(a["leaf"].encode()),
            a["logIndex"],
            cp.size,
            [bytes.fromhex(h) for h in proof["hashes"]],
            cp.root_hash,
        )
    final = check(_get(live_server.url + "/v1/log/checkpoint").json()["checkpoint"])
    assert final.size == 200
    taken = {c.size: c for c in (check(n) for n in [*notes, *(a["checkpoint"] for a in acks)])}
    polled = sorted({check(n).size for n in notes})
    # every pair of checkpoints polled during the run, and every acknowledged one against the final tree
    for i, s1 in enumerate(polled):
        for s2 in polled[i:]:
            _consistent(live_server.url, taken[s1], taken[s2])
    for cp in taken.values():
        _consistent(live_server.url, cp, final)


def test_two_workers_share_one_sequencer(registry_world: RegistryWorld) -> None:
    """Two uvicorn worker processes: the database lock alone keeps indices dense and unique."""
    from tests.registry_fixtures import free_port

    server = LiveServer(registry_world, free_port(), workers=2)
    server.start()
    try:
        acks: list[dict[str, Any]] = []
        for t in _publish_burst(server, 8, 10, acks, threading.Event()):
            t.join()
        assert sorted(a["logIndex"] for a in acks) == list(range(80))
        _, check = _checker(server.url)
        final = check(_get(server.url + "/v1/log/checkpoint").json()["checkpoint"])
        for a in acks:
            _consistent(server.url, check(a["checkpoint"]), final)
    finally:
        server.stop()


def test_kill9_during_burst_then_restart(live_server: LiveServer) -> None:
    acks: list[dict[str, Any]] = []
    notes: list[str] = []
    stop, poll_stop = threading.Event(), threading.Event()
    poller = _poll_checkpoints(live_server.url, notes, poll_stop)
    threads = _publish_burst(live_server, 8, 1000, acks, stop)
    deadline = time.monotonic() + 60
    while len(acks) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    live_server.kill9()  # mid-burst: requests are in flight
    stop.set()
    for t in threads:
        t.join()
    poll_stop.set()
    poller.join()
    assert len(acks) >= 60

    live_server.start()
    _, check = _checker(live_server.url)
    latest = check(_get(live_server.url + "/v1/log/checkpoint").json()["checkpoint"])
    assert latest.size >= len(acks)
    for a in acks:  # every acknowledged entry is there, at its index, with its bundle
        got = _get(f"{live_server.url}/v1/attestations/{a['logIndex']}").json()
        assert got["bundleDigest"] == a["bundleDigest"] and got["leaf"] == a["leaf"]
    served = {c.size: c for c in (check(n) for n in [*notes, *(a["checkpoint"] for a in acks)])}
    for cp in served.values():  # consistent with every checkpoint it ever served
        stored = _get(f"{live_server.url}/v1/log/checkpoints/{cp.size}").json()
        assert check(stored["checkpoint"]).root_hash == cp.root_hash
        _consistent(live_server.url, cp, latest)
    indices = [e["logIndex"] for e in _all_entries(live_server.url)]
    assert indices == list(range(latest.size))
    # and it keeps working after the crash
    w = live_server.world
    r = httpx.post(
        live_server.url + "/v1/attestations",
        content=json.dumps(w.alice.bundle("acme/after")),
        headers=auth(w.acme_token),
    )
    assert r.status_code == 201 and r.json()["logIndex"] == latest.size


def _all_entries(url: str) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        page = _get(
            url + "/v1/attestations", params={"limit": 500} | ({"cursor": cursor} if cursor else {})
        ).json()
        out += page["entries"]
        cursor = page["nextCursor"]
        if not cursor:
            return out


def _attest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_token_signer_publish(registry_world: RegistryWorld, tmp_path: Path) -> None:
    """``attest registry token create``, ``signer add``, ``serve`` and ``publish`` end to end."""
    from tests.registry_fixtures import free_port

    w = registry_world
    env = w.env() | {"ATTEST_CHECKPOINT_DIR": str(tmp_path / "cps")}
    db = ["--data-dir", str(w.data_dir)] + (["--database-url", w.database_url] if w.database_url else [])
    made = _attest("registry", "token", "create", "--namespace", "labs", "--json", *db, env=env)
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    bound = _attest(
        "registry", "signer", "add", "--namespace", "labs", "--key", str(w.alice.public_pem), *db, env=env
    )
    assert bound.returncode == 0, bound.stderr
    listed = json.loads(
        _attest("registry", "signer", "list", "--namespace", "labs", "--json", *db, env=env).stdout
    )
    assert listed[0]["signer"] == w.alice.fingerprint

    bundle = tmp_path / "m.sigstore.json"
    bundle.write_text(json.dumps(w.alice.bundle("labs/model")))
    server = LiveServer(w, free_port())
    server.start()
    try:
        out = _attest(
            "publish",
            str(bundle),
            "--registry",
            server.url,
            "--json",
            env=env | {"ATTEST_REGISTRY_TOKEN": token},
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["logIndex"] == 0
        missing = _attest(
            "publish",
            str(bundle),
            "--registry",
            server.url,
            env={k: v for k, v in env.items() if k != "ATTEST_REGISTRY_TOKEN"},
        )
        assert missing.returncode == 2 and "token" in missing.stderr
        other = tmp_path / "o.sigstore.json"
        other.write_text(json.dumps(w.alice.bundle("acme/model")))
        refused = _attest(
            "publish", str(other), "--registry", server.url, env=env | {"ATTEST_REGISTRY_TOKEN": token}
        )
        assert refused.returncode == 1 and "403" in refused.stderr and "Traceback" not in refused.stderr
        revoked = _attest("registry", "token", "revoke", "1", *db, env=env)
        assert revoked.returncode == 0
    finally:
        server.stop()
