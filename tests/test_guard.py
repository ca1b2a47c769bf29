"""attest.guard: transformers, safetensors and torch refuse what does not verify; load what does."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attest import guard
from attest.keys import load_private_key, load_public_key
from attest.policy import Policy
from attest.signing import KeySigner, sign_model
from tests.core_fixtures import REPO


@pytest.fixture
def signed_llama(tmp_path: Path, tiny_llama_template: Path, keypair: tuple[Path, Path]) -> tuple[Path, Path]:
    model = tmp_path / "tiny-llama"
    shutil.copytree(tiny_llama_template, model)
    return model, sign_with_policy(model, keypair, "org/tiny-llama")


def sign_with_policy(model: Path, keypair: tuple[Path, Path], name: str) -> Path:
    """Sign ``model`` with the publisher key; return a policy (beside the folder) requiring that."""
    bundle = sign_model(KeySigner(load_private_key(keypair[0])), model, name=name)
    (model / "manifest.sigstore.json").write_text(json.dumps(bundle))
    policy = model.parent / "policy.yaml"
    shutil.copy(keypair[1], model.parent / "publisher.pub")
    policy.write_text(
        "apiVersion: model-attest.dev/policy/v1\n"
        "signers:\n  publisher:\n    - keyFile: publisher.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n    signedBy: [publisher]\n"
    )
    return policy


@pytest.fixture
def installed(signed_llama: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    guard.install(policy=signed_llama[1])
    try:
        yield signed_llama
    finally:
        guard.uninstall()


def test_verified_model_and_tokenizer_load(installed: tuple[Path, Path]) -> None:
    import transformers

    model_dir, _ = installed
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert model.config.num_hidden_layers == 2
    assert tok("hello world")["input_ids"] == [3, 4]


def test_tampered_weights_refused_by_every_loader(installed: tuple[Path, Path]) -> None:
    import safetensors.torch
    import torch
    import transformers

    model_dir, _ = installed
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    for load in (
        lambda: transformers.AutoModelForCausalLM.from_pretrained(model_dir),
        lambda: transformers.LlamaForCausalLM.from_pretrained(model_dir),
        lambda: safetensors.torch.load_file(weights),
        lambda: torch.load(weights),
    ):
        with pytest.raises(guard.ModelRefused, match=r"MODEL_FILES_CHANGED.*model\.safetensors"):
            load()


def test_unsigned_model_refused(
    tmp_path: Path, tiny_llama_template: Path, installed: tuple[Path, Path]
) -> None:
    import transformers

    unsigned = tmp_path / "unsigned"
    shutil.copytree(tiny_llama_template, unsigned)
    with pytest.raises(guard.ModelRefused, match="MISSING_ATTESTATION"):
        transformers.AutoModelForCausalLM.from_pretrained(unsigned)
    with pytest.raises(guard.ModelRefused, match="MISSING_ATTESTATION"):
        transformers.AutoTokenizer.from_pretrained(unsigned)


def test_hub_ids_and_streams_refused(installed: tuple[Path, Path]) -> None:
    import io

    import torch
    import transformers

    with pytest.raises(guard.ModelRefused, match="not a local path"):
        transformers.AutoModelForCausalLM.from_pretrained("org/never-downloaded")
    with pytest.raises(guard.ModelRefused, match="only files on disk"):
        torch.load(io.BytesIO(b"x"))


def test_loaded_bytes_are_the_verified_bytes(installed: tuple[Path, Path]) -> None:
    """A change after verification does not reach the loader: it reads the private snapshot."""
    import safetensors.torch

    model_dir, _ = installed
    weights = model_dir / "model.safetensors"
    first = safetensors.torch.load_file(weights)
    weights.write_bytes(b"\x00" * 16)  # swapped after verification
    again = safetensors.torch.load_file(weights)
    assert set(first) == set(again)
    assert all(bool((first[k] == again[k]).all()) for k in first)


def test_no_policy_fails_closed(signed_llama: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    monkeypatch.delenv("ATTEST_POLICY", raising=False)
    guard.install()
    try:
        with pytest.raises(guard.ModelRefused, match="no verification policy"):
            transformers.AutoModelForCausalLM.from_pretrained(signed_llama[0])
    finally:
        guard.uninstall()


def test_uninstall_restores_loaders(signed_llama: tuple[Path, Path]) -> None:
    import torch
    import transformers

    before = (torch.load, vars(transformers.PreTrainedModel)["from_pretrained"])
    guard.install(policy=signed_llama[1])
    assert torch.load is not before[0]
    guard.uninstall()
    assert (torch.load, vars(transformers.PreTrainedModel)["from_pretrained"]) == before


def test_attest_run_guards_a_program(signed_llama: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, policy = signed_llama
    program = tmp_path / "load.py"
    program.write_text(
        "import sys, transformers\n"
        "m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "print('loaded', m.config.model_type)\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "cli.main",
        "run",
        "--policy",
        str(policy),
        "--",
        sys.executable,
        str(program),
        str(model_dir),
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "loaded llama" in ok.stdout
    (model_dir / "config.json").write_text(
        json.dumps({**json.loads((model_dir / "config.json").read_text()), "num_hidden_layers": 1})
    )
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert refused.returncode != 0
    assert "refusing to load" in refused.stderr and "config.json" in refused.stderr


def test_policy_key_must_match(signed_llama: tuple[Path, Path], tmp_path: Path) -> None:
    """A policy trusting another key refuses the publisher's model."""
    from attest.keys import write_key_pair

    write_key_pair(tmp_path / "other")
    model_dir, _ = signed_llama
    other = tmp_path / "other-policy.yaml"
    other.write_text(
        "apiVersion: model-attest.dev/policy/v1\nsigners:\n  publisher:\n    - keyFile: other.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n"
    )
    assert load_public_key(tmp_path / "other.pub")
    with pytest.raises(guard.ModelRefused):
        guard.verify_snapshot(model_dir, guard.GuardConfig(Policy.load(other)))


# --------------------------------------------------------------------------------------------------
# The verified store (attest/_guard_boot/store.py): an unchanged file is copied and hashed once


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store for this test; snapshots go to its tmp/ (the default) so blobs can be linked."""
    root = tmp_path / "store"
    monkeypatch.setenv("ATTEST_GUARD_STORE", str(root))
    monkeypatch.delenv("ATTEST_SNAPSHOT_DIR", raising=False)
    monkeypatch.delenv("ATTEST_GUARD_STORE_MAX", raising=False)
    return root


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Bytes read to be hashed, by the guard's copy (``_hash_range``) and by the verifier
    (``attest.hashing``): a spy around the real functions, so "not hashed again" is counted, not timed."""
    from attest import hashing

    seen = {"guard": 0, "verifier": 0}
    real_range, real_read, real_mapped = guard._hash_range, hashing._hash_read, hashing._hash_mapped

    def hash_range(fd: int, start: int, end: int, h: Any, buf: memoryview) -> None:
        seen["guard"] += end - start
        real_range(fd, start, end, h, buf)

    def hash_read(f: Any, update: Any, progress: Any) -> None:
        seen["verifier"] += 1
        real_read(f, update, progress)

    def hash_mapped(fd: int, size: int, update: Any, progress: Any) -> None:
        seen["verifier"] += 1
        real_mapped(fd, size, update, progress)

    monkeypatch.setattr(guard, "_hash_range", hash_range)
    monkeypatch.setattr(hashing, "_hash_read", hash_read)
    monkeypatch.setattr(hashing, "_hash_mapped", hash_mapped)
    return seen


POISON = struct.pack("<f", 1234.0)  # what the attacks write over the last weight


def _weights_model(tmp_path: Path, keypair: tuple[Path, Path], seed: float = 0.0) -> tuple[Path, Path]:
    """A signed folder with 1 MiB of float32 weights (w[-1] == 1.0), settled past the racy window."""
    import numpy as np
    import safetensors.numpy

    model = tmp_path / "m"
    model.mkdir()
    w = np.zeros(1 << 18, dtype=np.float32)
    w[0], w[-1] = seed, 1.0
    safetensors.numpy.save_file({"w": w}, model / "w.safetensors")
    (model / "config.json").write_text('{"model_type": "none"}')
    policy = sign_with_policy(model, keypair, "org/m")
    time.sleep(0.1)  # files changed within the last 50 ms are not indexed (racy clean, see store.py)
    return model, policy


def _load(model: Path, policy: Path) -> tuple[float, dict[str, Any]]:
    """Guarded snapshot + verify, then read w[-1] from the snapshot; the snapshot is removed."""
    import safetensors.numpy

    copy, decision = guard.verify_snapshot(model, guard.GuardConfig(Policy.load(policy)))
    try:
        return float(safetensors.numpy.load_file(copy / "w.safetensors")["w"][-1]), decision.details
    finally:
        shutil.rmtree(copy.parent)


def _blob(store: Path, model: Path, name: str = "w.safetensors") -> Path:
    import hashlib

    return store / "blobs" / hashlib.sha256((model / name).read_bytes()).hexdigest()


def test_second_load_comes_from_the_store_unhashed(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    store: Path,
    hashed: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, policy = _weights_model(tmp_path, keypair)
    hashed.update(guard=0, verifier=0)  # signing hashed the files: count from here
    value, first = _load(model, policy)
    assert value == 1.0 and first["fromStore"] == 0 and first["hashedBytes"] > 1 << 20
    assert hashed["guard"] == first["hashedBytes"] and hashed["verifier"] == 0
    blob = _blob(store, model)
    assert (blob.stat().st_mode & 0o777) == 0o444 and (store.stat().st_mode & 0o777) == 0o700

    hashed["guard"] = 0
    value, second = _load(model, policy)
    assert value == 1.0 and second["snapshot"] == "store"
    assert second["fromStore"] == second["snapshotFiles"] == 3 and second["hashedBytes"] == 0
    assert hashed == {"guard": 0, "verifier": 0}  # neither the copy nor the verifier read a byte

    # control: with the store off the same load copies and hashes everything again
    monkeypatch.setenv("ATTEST_GUARD_STORE", "off")
    value, off = _load(model, policy)
    assert value == 1.0 and off["fromStore"] == 0 and off["store"].startswith("off")
    assert hashed["guard"] == off["hashedBytes"] > 1 << 20


def test_guarded_load_reports_the_store_in_debug_output(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Through ``guard.install`` and a real loader: the second process-level load is from the store."""
    import safetensors.numpy

    model, policy = _weights_model(tmp_path, keypair)
    monkeypatch.setenv("ATTEST_GUARD_DEBUG", "1")
    for _ in range(2):
        guard.install(policy=policy)
        try:
            assert float(safetensors.numpy.load_file(model / "w.safetensors")["w"][-1]) == 1.0
        finally:
            guard.uninstall()
    err = capfd.readouterr().err
    assert "0 of 3 from the verified store" in err and "3 of 3 from the verified store, 0 bytes hashed" in err


def test_a_changed_source_is_never_answered_from_the_store(
    tmp_path: Path, keypair: tuple[Path, Path], store: Path
) -> None:
    """Modified in place with its mtime put back, replaced by rename, or only touched: the ctime or
    the inode differs, so the file is copied and hashed again (and the tampered ones refused)."""
    model, policy = _weights_model(tmp_path, keypair)
    weights = model / "w.safetensors"
    _load(model, policy)
    assert _load(model, policy)[1]["fromStore"] == 3  # control: unchanged, from the store
    good = weights.read_bytes()
    poisoned = good[:-4] + POISON  # same size
    st = weights.stat()

    with open(weights, "r+b") as f:  # in place, mtime restored: only the ctime tells
        f.seek(len(good) - 4)
        f.write(POISON)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    with pytest.raises(guard.ModelRefused, match=r"MODEL_FILES_CHANGED.*w\.safetensors"):
        _load(model, policy)

    replacement = tmp_path / "replacement"  # replaced by rename, same size and mtime
    replacement.write_bytes(poisoned)
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, weights)
    with pytest.raises(guard.ModelRefused, match=r"MODEL_FILES_CHANGED.*w\.safetensors"):
        _load(model, policy)

    weights.write_bytes(good)  # restored, then the time settles and a touch puts the mtime back
    time.sleep(0.1)
    value, again = _load(model, policy)
    assert value == 1.0 and again["fromStore"] == 2 and again["hashedBytes"] == len(good)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(0.1)
    value, touched = _load(model, policy)
    assert value == 1.0 and touched["fromStore"] == 2 and touched["hashedBytes"] == len(good)
    assert _load(model, policy)[1]["fromStore"] == 3


@pytest.mark.parametrize("how", ["write, mode restored", "write, mtime restored"])
def test_a_tampered_blob_is_not_used(
    tmp_path: Path, keypair: tuple[Path, Path], store: Path, how: str
) -> None:
    model, policy = _weights_model(tmp_path, keypair)
    _load(model, policy)
    blob = _blob(store, model)
    st = blob.stat()
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-4] + POISON)
    if how == "write, mode restored":
        blob.chmod(0o444)  # the mtime moved
    else:
        os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))  # the write bit is still there
    value, details = _load(model, policy)
    assert value == 1.0 and details["fromStore"] == 2 and details["hashedBytes"] == st.st_size
    assert blob.read_bytes() == (model / "w.safetensors").read_bytes()  # replaced by the fresh copy
    assert _load(model, policy)[1]["fromStore"] == 3  # and used again from then on


def test_a_store_others_can_write_is_not_used(
    tmp_path: Path, keypair: tuple[Path, Path], store: Path
) -> None:
    """Someone who can write into the store can plant a blob and an index entry that name the signed
    digest but hold other bytes; a store that is not private to this user is therefore ignored."""
    import hashlib

    model, policy = _weights_model(tmp_path, keypair)
    _load(model, policy)
    blob = _blob(store, model)
    planted = blob.read_bytes()[:-4] + POISON
    blob.chmod(0o644)
    blob.write_bytes(planted)
    blob.chmod(0o444)
    index = json.loads((store / "index.json").read_text())
    st = blob.stat()
    index["blobs"][blob.name][:3] = [st.st_ino, st.st_size, st.st_mtime_ns]  # a consistent forgery
    (store / "index.json").write_text(json.dumps(index))
    assert hashlib.sha256(planted).hexdigest() != blob.name

    store.chmod(0o777)
    value, details = _load(model, policy)
    assert value == 1.0 and details["fromStore"] == 0 and "writable by group or others" in details["store"]
    assert blob.read_bytes() == planted  # not touched: the store was not used at all
    # control: the same planted store, private again, is trusted and the planted bytes load. That is
    # the trust model (a private store is as trusted as the user's account) and why the mode is checked.
    store.chmod(0o700)
    value, details = _load(model, policy)
    assert details["fromStore"] == 3 and value == 1234.0


def test_a_corrupt_index_is_ignored_and_rewritten(
    tmp_path: Path, keypair: tuple[Path, Path], store: Path
) -> None:
    model, policy = _weights_model(tmp_path, keypair)
    _load(model, policy)
    index = store / "index.json"
    good = index.read_bytes()
    assert _load(model, policy)[1]["fromStore"] == 3  # control
    for corrupt in (
        good[: len(good) // 2],
        b"\x00garbage",
        b'{"version": 1, "sources": [], "blobs": {"x": 1}}',
    ):
        index.chmod(0o600)
        index.write_bytes(corrupt)
        value, details = _load(model, policy)
        assert value == 1.0 and details["fromStore"] == 0
        assert json.loads(index.read_bytes())["version"] == 1  # rewritten whole
        assert _load(model, policy)[1]["fromStore"] == 3


def test_the_store_is_bounded_least_recently_used_first(
    tmp_path: Path, keypair: tuple[Path, Path], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attest._guard_boot import store as guard_store

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, policy = _weights_model(tmp_path / "a", keypair, seed=1.0)
    b, _ = _weights_model(tmp_path / "b", keypair, seed=2.0)
    size = (a / "w.safetensors").stat().st_size
    monkeypatch.setenv("ATTEST_GUARD_STORE_MAX", str(size + size // 2))  # room for one model
    _load(a, policy)
    assert _load(a, policy)[1]["fromStore"] == 3
    _load(b, policy)  # b is newer: a's weights go
    assert not _blob(store, a).exists() and _blob(store, b).exists()
    blob_bytes = sum(p.stat().st_size for p in (store / "blobs").iterdir())
    assert blob_bytes <= size + size // 2
    assert _load(a, policy)[1]["fromStore"] < 3  # evicted: copied and hashed again
    monkeypatch.setenv("ATTEST_GUARD_STORE_MAX", "1K")  # a file larger than the bound is never stored
    _load(b, policy)
    assert not any(p.stat().st_size == size for p in (store / "blobs").iterdir())
    assert guard_store.max_bytes() == 1024


def test_racy_files_are_not_indexed(tmp_path: Path) -> None:
    """A file changed in the same clock tick as the copy's start could change again without a new
    ctime: such files are stored but not indexed (git's racy-clean rule)."""
    from attest._guard_boot.store import recordable

    f = tmp_path / "f"
    f.write_bytes(b"x")
    st = f.stat()
    assert not recordable(st, st, st.st_ctime_ns + 10_000_000)
    assert recordable(st, st, st.st_ctime_ns + 1_000_000_000)
    f.write_bytes(b"y")
    assert not recordable(st, f.stat(), st.st_ctime_ns + 1_000_000_000)  # changed during the copy


def test_snapshots_left_by_killed_programs_are_swept(
    tmp_path: Path, keypair: tuple[Path, Path], store: Path
) -> None:
    """A snapshot in the store's tmp/ that is an hour old and locked by no live process is removed at
    the next commit; one a live process holds (``hooks.hold``), or a recent one, stays."""
    model, policy = _weights_model(tmp_path, keypair)
    _load(model, policy)
    hour_ago = time.time() - 3700
    left, held, recent = (store / "tmp" / f"attest-verified-{n}" for n in ("left", "held", "recent"))
    for folder in (left, held, recent):
        folder.mkdir()
        (folder / "w.safetensors").write_bytes(b"x")
        (folder / "w.safetensors").chmod(0o444)
        if folder is not recent:
            os.utime(folder, (hour_ago, hour_ago))
    guard.hooks.hold(held)
    _load(model, policy)
    assert not left.exists() and held.exists() and recent.exists()
