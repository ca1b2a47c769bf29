"""Benchmark: the registry under load, against its own trivial endpoint measured in the same run.

For each database (SQLite, PostgreSQL): bulk-load N attestations (default 100,000) through the storage
layer, start a real ``attest serve`` subprocess, and drive it over loopback from this process with a
minimal keep-alive HTTP/1.1 client on asyncio (so the driver, not httpx, is the lighter side):
  * baseline: ``GET /v1/ping`` (the framework's ceiling on this machine) at 1/16/64 clients;
  * repeated admission decisions (``POST /v1/admission/evaluate``, cache hits) at 1/16/64 clients;
  * first-time admission decisions (distinct digests: full re-verification of every stored bundle);
  * publish throughput (``POST /v1/attestations``, fresh signed bundles) at 1/16/64 clients.
Then scaling on PostgreSQL: query and admission p99 with S1 (10,000) and S2 (1,000,000) stored,
bulk-loading the difference between the two measurements, and the ratio.

Usage: python bench/registry.py [--stored 100000] [--scale 10000,1000000] [--backends sqlite,postgresql]
       [--duration 5] [--no-scale]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import yaml  # noqa: E402

from attest.bundle import bundle_digest, envelope_digest, parse_bundle  # noqa: E402
from attest.predicates import MODEL_MANIFEST_V1  # noqa: E402
from attest.statement import parse_statement  # noqa: E402
from attest.verifying import SignerIdentity, VerifiedAttestation  # noqa: E402
from tests.registry_fixtures import Publisher, free_port, manifest_predicate, model_digest, running_postgres  # noqa: E402

ATTESTATIONS_PER_MODEL = 4


def model_name(i: int) -> str:
    return f"bench/model-{i}"


def make_bundle(pub: Publisher, model: int, version: int) -> dict[str, Any]:
    name = model_name(model)
    predicate = manifest_predicate(name)
    predicate["model"]["version"] = str(version)  # distinct bundles for the same model
    return pub.bundle(name, digest=model_digest(name), predicate=predicate)


def as_verified(pub: Publisher, doc: dict[str, Any]) -> VerifiedAttestation:
    """The bench signed these itself: skip re-verification during the bulk load (storage-layer path)."""
    parsed = parse_bundle(json.dumps(doc))
    return VerifiedAttestation(
        parse_statement(parsed.payload),
        SignerIdentity(key_fingerprint=pub.fingerprint),
        bundle_digest(doc),
        envelope_digest(doc),
        doc,
    )


class World:
    """A data dir, trust and policy files, a publisher key bound to the ``bench`` namespace, a token."""

    def __init__(self, root: Path, database_url: str | None) -> None:
        from registry.auth import bind_signer, create_token
        from registry.settings import Settings
        from registry.state import Registry

        self.root, self.database_url = root, database_url
        keys = root / "keys"
        keys.mkdir(parents=True)
        self.pub = Publisher("bench", keys, "ed25519")
        (root / "trust.yaml").write_text("keys: [keys/bench.pub]\n")
        policy = {
            "apiVersion": "model-attest.dev/policy/v1",
            "signers": {"publisher": [{"key": self.pub.fingerprint}]},
            "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}],
        }
        (root / "policy.yaml").write_text(yaml.safe_dump(policy))
        self.settings = Settings(
            data_dir=root / "data",
            database_url=database_url,
            trust_file=root / "trust.yaml",
            policy_file=root / "policy.yaml",
            origin="bench.local/log",
        )
        self.registry = Registry(self.settings)
        with self.registry.db.write_session() as s:
            self.token, _ = create_token(s, "publisher", ["bench"])
            bind_signer(s, "bench", self.pub.fingerprint)
        self.stored = 0

    def load_to(self, total: int) -> float:
        """Bulk-load attestations until ``total`` are stored; returns entries per second."""
        from registry.bulk import bulk_load

        start_n, start = self.stored, time.perf_counter()

        def gen() -> Iterator[VerifiedAttestation]:
            for n in range(self.stored, total):
                yield as_verified(
                    self.pub, make_bundle(self.pub, n // ATTESTATIONS_PER_MODEL, n % ATTESTATIONS_PER_MODEL)
                )

        self.stored = bulk_load(self.registry, gen(), batch=5000)
        assert self.stored == total, (self.stored, total)
        return (total - start_n) / (time.perf_counter() - start)

    def models(self) -> int:
        return self.stored // ATTESTATIONS_PER_MODEL

    @contextmanager
    def server(self) -> Iterator[str]:
        port = free_port()
        env = dict(os.environ) | {
            "ATTEST_REGISTRY_TRUST_FILE": str(self.settings.trust_file),
            "ATTEST_REGISTRY_POLICY_FILE": str(self.settings.policy_file),
            "ATTEST_REGISTRY_ORIGIN": self.settings.origin,
        }
        if self.database_url:
            env["ATTEST_REGISTRY_DATABASE_URL"] = self.database_url
        log = (self.root / "server.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(self.settings.data_dir),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("server did not start")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


# -- a minimal keep-alive HTTP/1.1 load generator -----------------------------------------------------


def request_bytes(method: str, path: str, body: bytes = b"", token: str | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    return head.encode() + b"\r\n" + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> tuple[int, bytes]:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return status, await reader.readexactly(length)


def drive(
    url: str,
    clients: int,
    make: Callable[[int], bytes],
    duration: float | None = None,
    count: int | None = None,
    expect: tuple[int, ...] = (200,),
    check: Callable[[bytes], None] | None = None,
) -> dict[str, float]:
    """Run ``clients`` keep-alive connections; each request from ``make(i)``. Returns rate and latencies."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**12))

    async def worker(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                i = next(counter)
                if count is not None and i >= count:
                    return
                t0 = time.perf_counter()
                status, body = await _one(reader, writer, make(i))
                latencies.append(time.perf_counter() - t0)
                if status not in expect:
                    errors += 1
                elif check is not None and i < 3:
                    check(body)
        finally:
            writer.close()

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + (duration or 3600)) for _ in range(clients)))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    lat = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(lat),
        "rate": len(lat) / elapsed,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
        "errors": errors,
    }


def fmt(r: dict[str, float]) -> str:
    return (
        f"{int(r['clients']):>3} clients: {r['rate']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
        + (f"  ERRORS {int(r['errors'])}" if r["errors"] else "")
    )


def evaluate_request(digest: str) -> bytes:
    return request_bytes("POST", "/v1/admission/evaluate", json.dumps({"modelDigest": digest}).encode())


def _allowed(body: bytes) -> None:
    assert json.loads(body)["allowed"] is True, body[:300]


def bench_backend(name: str, world: World, stored: int, duration: float, results: dict[str, Any]) -> None:
    print(f"\n== {name}: bulk-loading {stored} attestations", flush=True)
    rate = world.load_to(stored)
    print(f"   bulk load: {rate:.0f} attestations/s", flush=True)
    out: dict[str, Any] = {"stored": stored, "bulkLoadPerSecond": rate}
    rng = random.Random(7)
    with world.server() as url:
        ping = request_bytes("GET", "/v1/ping")
        hot = model_digest(model_name(1))
        drive(url, 1, lambda i: evaluate_request(hot), count=1, check=_allowed)  # warm the cache
        for clients in (1, 16, 64):
            base = drive(url, clients, lambda i: ping, duration=duration)
            adm = drive(url, clients, lambda i: evaluate_request(hot), duration=duration, check=_allowed)
            ratio = adm["rate"] / base["rate"]
            print(f"   ping       {fmt(base)}", flush=True)
            print(f"   admission  {fmt(adm)}   = {ratio:.2f} x ping", flush=True)
            out[f"ping{clients}"], out[f"admissionCached{clients}"], out[f"ratio{clients}"] = base, adm, ratio
        fresh = rng.sample(range(2, world.models()), min(1100, world.models() - 2))
        for clients, n in ((1, 300), (16, 800)):
            picks = fresh[:n]
            fresh = fresh[n:]
            first = drive(
                url,
                clients,
                lambda i, p=picks: evaluate_request(model_digest(model_name(p[i % len(p)]))),
                count=n,
                check=_allowed,
            )
            print(f"   first-time {fmt(first)}", flush=True)
            out[f"admissionFirst{clients}"] = first
        next_model = world.models() + 10
        for clients, n in ((1, 150), (16, 400), (64, 600)):
            bodies = [json.dumps(make_bundle(world.pub, next_model + j, 0)).encode() for j in range(n)]
            next_model += n
            pub = drive(
                url,
                clients,
                lambda i, b=bodies: request_bytes("POST", "/v1/attestations", b[i], world.token),
                count=n,
                expect=(201,),
            )
            print(f"   publish    {fmt(pub)}", flush=True)
            out[f"publish{clients}"] = pub
        world.stored += 150 + 400 + 600
    results[name] = out


def bench_scale(world: World, sizes: list[int], results: dict[str, Any]) -> None:
    print(f"\n== PostgreSQL scaling: {' vs '.join(map(str, sizes))} stored attestations", flush=True)
    rng = random.Random(11)
    out: dict[str, Any] = {}
    for size in sizes:
        rate = world.load_to(size)
        print(f"   loaded {size} ({rate:.0f}/s)", flush=True)
        with world.server() as url:
            # disjoint model sets, so one measurement never warms the caches of the next
            picks = rng.sample(range(world.models()), min(2400, world.models()))
            q_picks, first1, first4 = picks[:800], picks[800:1600], picks[1600:]

            def query(i: int, p: list[int] = q_picks) -> bytes:
                digest = model_digest(model_name(p[i % len(p)]))
                return request_bytes("GET", f"/v1/attestations?subjectDigest={digest}")

            def first(i: int, p: list[int]) -> bytes:
                return evaluate_request(model_digest(model_name(p[i % len(p)])))

            hot = model_digest(model_name(picks[0]))
            res = {
                "query": drive(url, 1, query, count=len(q_picks)),
                "admissionFirst": drive(
                    url, 1, lambda i, p=first1: first(i, p), count=len(first1), check=_allowed
                ),
                "admissionFirst4": drive(
                    url, 4, lambda i, p=first4: first(i, p), count=len(first4), check=_allowed
                ),
                "admissionCached": drive(
                    url, 1, lambda i, h=hot: evaluate_request(h), count=3000, check=_allowed
                ),
                "admissionCached16": drive(
                    url, 16, lambda i, h=hot: evaluate_request(h), count=10000, check=_allowed
                ),
            }
        for key, r in res.items():
            print(f"   {size:>8}: {key:<18} {fmt(r)}", flush=True)
        out[str(size)] = res
    a, b = out[str(sizes[0])], out[str(sizes[-1])]
    for key in a:
        ratio = b[key]["p99_ms"] / a[key]["p99_ms"]
        print(f"   p99 ratio {key}: {ratio:.2f} ({sizes[-1]} vs {sizes[0]})", flush=True)
        out[f"ratio_{key}"] = ratio
    results["scale"] = out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stored", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--scale", default="10000,1000000")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--json", type=Path, help="Also write the results to this file.")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # SIGTERM/SIGINT unwind normally, so the registry and PostgreSQL servers are stopped and temp dirs go
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs"}
    with tempfile.TemporaryDirectory(prefix="attest-bench-") as tmp, running_postgres(durable=True) as pg:
        for backend in args.backends.split(","):
            url = pg.new_database() if backend == "postgresql" else None
            bench_backend(backend, World(Path(tmp) / backend, url), args.stored, args.duration, results)
        if not args.no_scale:
            sizes = [int(s) for s in args.scale.split(",")]
            bench_scale(World(Path(tmp) / "scale", pg.new_database()), sizes, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
