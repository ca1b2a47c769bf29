"""Benchmark: `attest digest` against OpenSSL SHA-256 (one process per core) and model_signing.

Makes a multi-file model (default 4 x 512 MiB of random bytes), warms the page cache, then in one run
times, on the same files:
  * model-attest's parallel hashing in-process (compute_manifest, with buffered reads and with mmap)
    and the `attest digest` CLI (which hashes with mmap, see attest/hashing.py);
  * `openssl dgst -sha256`, one process per core (the physical limit of this machine);
  * `model_signing sign key` (OpenSSF model-signing) if its CLI is on PATH or given with --model-signing;
and prints throughputs and the ratios. Usage: python bench/hashing.py [--files 4] [--mib 512]
To get the baseline tool: python -m venv /tmp/ms && /tmp/ms/bin/pip install model-signing==1.1.1 pyOpenSSL
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attest import hashing  # noqa: E402
from attest.hashing import default_workers  # noqa: E402
from attest.manifest import compute_manifest  # noqa: E402


def make_model(root: Path, files: int, mib: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1024 * 1024)
    for i in range(files):
        with open(root / f"model-{i:05d}-of-{files:05d}.safetensors", "wb") as f:
            for j in range(mib):
                f.write(block[j % 7 :] + block[: j % 7])  # distinct blocks, cheap to make
    return files * mib * 1024 * 1024


def warm(root: Path) -> None:
    for p in root.iterdir():
        with open(p, "rb") as f:
            while f.read(16 * 1024 * 1024):
                pass


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def openssl_parallel(root: Path, workers: int) -> None:
    files = sorted(root.iterdir())
    procs: list[subprocess.Popen[bytes]] = []
    for f in files:
        while len([p for p in procs if p.poll() is None]) >= workers:
            time.sleep(0.001)
        procs.append(subprocess.Popen(["openssl", "dgst", "-sha256", str(f)], stdout=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("openssl failed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mib", type=int, default=512, help="MiB per file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model-signing", default=shutil.which("model_signing"), help="model_signing CLI")
    ap.add_argument("--dir", type=Path, help="where to build the model (default: a temp dir)")
    args = ap.parse_args()

    workers = default_workers()
    tmp = Path(tempfile.mkdtemp(prefix="attest-bench-", dir=args.dir))
    root = tmp / "model"
    try:
        total = make_model(root, args.files, args.mib)
        warm(root)
        gb = total / 1e9
        rows: list[tuple[str, float]] = []
        t_read = best_of(args.repeat, lambda: compute_manifest(root))
        rows.append(("attest API, read (library default)", t_read))
        hashing.use_mmap()
        t_api = best_of(args.repeat, lambda: compute_manifest(root))
        hashing.use_mmap(False)
        rows.append(("attest API, mmap (what the CLI uses)", t_api))
        attest_cli = [sys.executable, "-m", "cli.main", "digest", str(root)]
        t_cli = best_of(
            args.repeat, lambda: subprocess.run(attest_cli, check=True, cwd=REPO, capture_output=True)
        )
        rows.append(("attest digest (CLI, incl. start-up)", t_cli))
        t_ossl = best_of(args.repeat, lambda: openssl_parallel(root, workers))
        rows.append((f"openssl dgst -sha256 x {workers} processes", t_ossl))
        t_ossl1 = best_of(1, lambda: openssl_parallel(root, 1))
        rows.append(("openssl dgst -sha256, 1 process", t_ossl1))
        t_ms = None
        if args.model_signing:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            key = tmp / "ms.key"
            key.write_bytes(
                ec.generate_private_key(ec.SECP256R1()).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            cmd = [
                args.model_signing,
                "sign",
                "key",
                str(root),
                "--private_key",
                str(key),
                "--signature",
                str(tmp / "ms.sig"),
            ]
            t_ms = best_of(args.repeat, lambda: subprocess.run(cmd, check=True, capture_output=True))
            rows.append(("model_signing sign key (CLI)", t_ms))

        print(
            f"\n{args.files} files x {args.mib} MiB = {gb:.2f} GB, {workers} cores, page cache warm, best of {args.repeat}"
        )
        print(f"{'what':42s} {'seconds':>8s} {'GB/s':>7s}")
        for name, t in rows:
            print(f"{name:42s} {t:8.3f} {gb / t:7.2f}")
        print(f"\nratio attest API (mmap) / openssl-x-cores : {t_ossl / t_api:.3f}  (target >= 0.85)")
        print(f"ratio attest API (read) / openssl-x-cores : {t_ossl / t_read:.3f}")
        print(f"ratio attest CLI / openssl-x-cores       : {t_ossl / t_cli:.3f}")
        if t_ms is not None:
            print(f"speed-up attest CLI vs model_signing     : {t_ms / t_cli:.2f}x  (target >= 1.5)")
        else:
            print("model_signing not found: pass --model-signing PATH to compare")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
