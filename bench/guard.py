"""Benchmark: guarded against unguarded ``from_pretrained`` of a ~2 GB model, warm page cache.

Builds (once, kept in --dir) a float32 Llama checkpoint of about --gib GiB in safetensors, signs it
with a fresh key, warms the page cache, then in one run times, best of --repeat:
  * unguarded ``AutoModelForCausalLM.from_pretrained(dir)``;
  * the same call under ``attest.guard.install(policy)``, twice: the first load with an empty verified
    store (private snapshot by reflink where the file system has them, else in-kernel
    ``copy_file_range``, hashed while copying, verified), the second with the store holding the
    unchanged files (hard-linked into the snapshot, nothing read or hashed; the policy still decides);
  * end to end, ``python load.py`` against ``attest run --policy P -- python load.py`` (adds the
    verifier subprocess and the bootstrap), first run and later runs;
and prints the ratios, the peak extra disk (from the file system's own free-space count, so a reflink
or a hard link shows as ~0) and what the store keeps on disk. The store is a private one under --dir.
Usage: python bench/guard.py [--gib 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOAD = (
    "import sys, time, transformers\n"
    "t = time.perf_counter()\n"
    "transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
    "print('load_s', time.perf_counter() - t)\n"
)


def build(root: Path, gib: float) -> Path:
    """A Llama whose float32 weights are about ``gib`` GiB (layers scale the size), signed."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from attest.keys import load_private_key, write_key_pair
    from attest.signing import KeySigner, sign_model

    model = root / "model"
    if (model / "manifest.sigstore.json").exists():
        return model
    shutil.rmtree(root, ignore_errors=True)
    model.mkdir(parents=True)
    hidden, inter, vocab = 2048, 5504, 32000
    per_layer = 4 * hidden * hidden + 3 * hidden * inter + 2 * hidden
    layers = max(1, round((gib * 2**30 / 4 - 2 * vocab * hidden) / per_layer))
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=16,
        vocab_size=vocab,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in LlamaForCausalLM(config).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    tensors = {k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    del tensors
    config.save_pretrained(model)
    write_key_pair(root / "publisher")
    bundle = sign_model(KeySigner(load_private_key(root / "publisher.key")), model, name="bench/llama")
    (model / "manifest.sigstore.json").write_text(json.dumps(bundle))
    (root / "policy.yaml").write_text(
        "apiVersion: model-attest.dev/policy/v1\n"
        "signers:\n  publisher:\n    - keyFile: publisher.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n    signedBy: [publisher]\n"
    )
    return model


def warm(folder: Path) -> int:
    total = 0
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while chunk := f.read(16 * 1024 * 1024):
                    total += len(chunk)
    return total


class DiskWatch:
    """Peak drop of the file system's free bytes while it runs (the snapshot's real cost)."""

    def __init__(self, path: Path) -> None:
        self.path, self.peak, self._stop = path, 0, threading.Event()
        self.base = self._free()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.base - self._free())

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def best(times: list[float]) -> float:
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "attest-bench-guard")
    args = parser.parse_args()

    import transformers

    from attest import guard
    from attest._guard_boot import store as guard_store
    from attest.policy import Policy

    model = build(args.dir, args.gib)
    size = warm(model)
    policy = args.dir / "policy.yaml"
    store_dir = args.dir / "store"
    os.environ[guard_store.STORE_ENV] = str(store_dir)  # a store of its own, emptied for "first load"
    os.environ.pop(guard.SNAPSHOT_DIR_ENV, None)  # snapshots in the store's tmp/, as by default
    os.environ.setdefault(guard_store.STORE_MAX_ENV, f"{int(size * 2)}")

    def clear_store() -> None:
        if store_dir.exists():
            for p in store_dir.rglob("*"):
                if p.is_file():
                    p.chmod(0o600)
            shutil.rmtree(store_dir)

    def store_usage() -> tuple[int, int]:
        store, _ = guard_store.open_store()
        assert store is not None
        with store:
            return store.usage()

    clear_store()
    print(f"model: {size / 2**30:.2f} GiB in {model} ({os.cpu_count()} CPUs)")

    def load() -> None:
        transformers.AutoModelForCausalLM.from_pretrained(model)
        gc.collect()

    def guarded_load() -> tuple[float, int]:
        guard.install(policy=policy)
        try:
            with DiskWatch(args.dir) as disk:
                t = time.perf_counter()
                load()
                elapsed = time.perf_counter() - t
        finally:
            guard.uninstall()
            for p in (store_dir / "tmp").iterdir():
                shutil.rmtree(p, ignore_errors=True)
        return elapsed, disk.peak

    def verify_only() -> tuple[float, str]:
        t = time.perf_counter()
        copy, decision = guard.verify_snapshot(model, guard.GuardConfig(Policy.load(policy)))
        elapsed = time.perf_counter() - t
        shutil.rmtree(copy.parent)
        return elapsed, str(decision.details.get("snapshot", "?"))

    plain: list[float] = []
    first: list[tuple[float, int]] = []
    second: list[tuple[float, int]] = []
    verify_first: list[tuple[float, str]] = []
    verify_second: list[tuple[float, str]] = []
    for _ in range(args.repeat):
        warm(model)
        t = time.perf_counter()
        load()
        plain.append(time.perf_counter() - t)
        clear_store()
        first.append(guarded_load())  # empty store: copy + hash everything
        second.append(guarded_load())  # the same, unchanged model: linked from the store
        clear_store()
        verify_first.append(verify_only())
        verify_second.append(verify_only())
    blobs, stored = store_usage()

    p = best(plain)
    (g1, peak1), (g2, peak2) = min(first), min(second)
    (v1, m1), (v2, m2) = min(verify_first), min(verify_second)
    print(f"unguarded from_pretrained             {p:7.2f} s")
    print(f"guarded, first load (empty store)     {g1:7.2f} s   ratio {g1 / p:.2f}x  (snapshot by {m1})")
    print(f"guarded, second load (verified store) {g2:7.2f} s   ratio {g2 / p:.2f}x  (snapshot by {m2})")
    print(f"  snapshot + verify, first / second   {v1:7.2f} s / {v2:.2f} s")
    print(f"peak extra disk, first / second load  {peak1 / 2**30:7.2f} GiB / {peak2 / 2**30:.2f} GiB")
    print(
        f"store on disk after the runs          {stored / 2**30:7.2f} GiB in {blobs} blobs ({stored / size:.2f}x the model)"
    )

    # end to end: a fresh interpreter each time, as a user runs it (the store warm from the above,
    # except for "first", which empties it before each run)
    program = args.dir / "load.py"
    program.write_text(LOAD)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    guarded_cmd = [
        sys.executable,
        "-m",
        "cli.main",
        "run",
        "--policy",
        policy,
        "--",
        sys.executable,
        program,
        model,
    ]
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "first": [], "second": []}  # (wall, load)
    for _ in range(args.repeat):
        for kind, cmd, cwd in (
            ("plain", [sys.executable, program, model], None),
            ("first", guarded_cmd, REPO),
            ("second", guarded_cmd, REPO),
        ):
            if kind == "first":
                clear_store()
            warm(model)
            t = time.perf_counter()
            done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd, env=env)
            wall = time.perf_counter() - t
            runs[kind].append((wall, float(done.stdout.split("load_s")[-1])))
    (pw, pl) = min(runs["plain"], key=lambda r: r[1])
    for kind in ("first", "second"):
        gw, gl = min(runs[kind], key=lambda r: r[1])
        print(
            f"fresh process, {kind:6} from_pretrained {pl:6.2f} s -> attest run {gl:6.2f} s  ratio {gl / pl:.2f}x;"
            f"  wall incl. imports {pw:6.2f} s -> {gw:6.2f} s  ratio {gw / pw:.2f}x"
        )
    clear_store()


if __name__ == "__main__":
    main()
