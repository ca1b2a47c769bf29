"""Model identity: the manifest, the model digest, its test vectors and the refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest import hashing
from attest._internal.walk import walk_model
from attest.errors import ModelPathError, SchemaError, UsageError
from attest.manifest import check_ignores, compute_manifest, diff_manifests, manifest_from_json
from schemas import SCHEMA_DIR

VECTORS = json.loads((SCHEMA_DIR / "vectors" / "model-digest.json").read_text(encoding="utf-8"))


def materialise(root: Path, files: list[dict[str, str]]) -> None:
    for f in files:
        p = root / f["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(base64.b64decode(f["contentBase64"]))


def independent_digest(root: Path) -> str:
    """A second implementation from the spec text alone (no project code), to cross-check."""
    entries = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            entries.append(
                {
                    "path": p.relative_to(root).as_posix(),
                    "size": len(data),
                    "digest": hashlib.sha256(data).hexdigest(),
                }
            )
    entries.sort(key=lambda e: e["path"].encode("utf-8"))
    # RFC 8785 for these documents (ASCII keys, integers, plain strings) equals sorted-key compact JSON.
    canonical = json.dumps(
        {"files": entries, "hashAlgorithm": "sha256"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vectors_recompute(tmp_path: Path, case: dict) -> None:
    materialise(tmp_path, case["files"])
    manifest = compute_manifest(tmp_path)
    assert manifest.digest == case["expectedDigest"]
    assert [f.to_json() for f in manifest.files] == case["expectedDigestDocument"]["files"]
    assert independent_digest(tmp_path) == case["expectedDigest"]


def test_byte_order_not_locale_order() -> None:
    case = next(c for c in VECTORS["cases"] if c["name"].startswith("byte order"))
    paths = [f["path"] for f in case["expectedDigestDocument"]["files"]]
    assert paths == ["B", "_x", "a-b", "a.txt", "a/b"]


def test_names_are_bound(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root, name in ((a, "one.bin"), (b, "two.bin")):
        root.mkdir()
        (root / name).write_bytes(b"same bytes")
    assert compute_manifest(a).digest != compute_manifest(b).digest


def test_moving_bytes_between_files_changes_digest(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_bytes(b"ab"), (a / "y").write_bytes(b"c")
    (b / "x").write_bytes(b"a"), (b / "y").write_bytes(b"bc")
    assert compute_manifest(a).digest != compute_manifest(b).digest


def test_default_ignores(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / "x.lock").write_text("")
    (tmp_path / "m.model-manifest.sigstore.json").write_text("{}")
    assert [f.path for f in compute_manifest(tmp_path).files] == ["w.bin"]


@pytest.fixture(params=["read", "mmap"])
def hash_strategy(request: pytest.FixtureRequest) -> Iterator[str]:
    """Both ways of reading files (library default and the CLI's mmap) must give the same bytes."""
    hashing.use_mmap(request.param == "mmap")
    yield hashing.strategy()
    hashing.use_mmap(False)


def test_large_file_streams_and_matches_hashlib(tmp_path: Path, hash_strategy: str) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)  # spans several read chunks, odd tail
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "small").write_bytes(b"s")
    (tmp_path / "empty").write_bytes(b"")
    m = compute_manifest(tmp_path, workers=2)
    assert m.by_path()["big"].digest == hashlib.sha256(data).hexdigest()
    assert m.by_path()["big"].size == len(data)
    assert m.by_path()["empty"].digest == hashlib.sha256(b"").hexdigest()


def test_file_changed_while_hashing_refused(tmp_path: Path, hash_strategy: str) -> None:
    """A digest must describe bytes that exist: a file that grows mid-hash is refused, not hashed."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * hashing.CHUNK))

    grown = False

    def grow_once(_n: int) -> None:
        nonlocal grown
        if not grown:
            grown = True
            with big.open("ab") as f:
                f.write(b"appended by another process")

    with pytest.raises(ModelPathError, match="changed while it was being hashed"):
        hashing.sha256_file(big, progress=grow_once)


def test_cli_hashes_with_mmap_unless_disabled(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    probe = f"import attest.hashing as h, cli.main as m; m.main(['digest', {str(tmp_path)!r}]); print(h.strategy())"
    env = {**os.environ, "ATTEST_HASH_MMAP": "0"}
    digest = compute_manifest(tmp_path).digest
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    assert out == f"{digest}\nmmap\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout
    assert out == f"{digest}\nread\n"


def test_symlink_outside_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (tmp_path / "secret").write_text("outside")
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(ModelPathError, match="link: symlink resolves outside"):
        compute_manifest(root)


def test_symlink_inside_root_allowed(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"r")
    (tmp_path / "alias.bin").symlink_to("real.bin")
    m = compute_manifest(tmp_path)
    assert m.by_path()["alias.bin"].digest == m.by_path()["real.bin"].digest


def test_fifo_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ModelPathError, match="pipe: not a regular file"):
        compute_manifest(tmp_path)


def test_non_utf8_name_refused(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"")
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xffname"), "wb"):
        pass
    with pytest.raises(ModelPathError, match="not valid UTF-8"):
        compute_manifest(tmp_path)


@pytest.mark.parametrize("a,b", [("Model.bin", "model.bin"), ("caf\u00e9", "cafe\u0301")])
def test_colliding_names_refused(tmp_path: Path, a: str, b: str) -> None:
    (tmp_path / a).write_bytes(b"1")
    (tmp_path / b).write_bytes(b"2")
    with pytest.raises(ModelPathError, match="collides"):
        compute_manifest(tmp_path)


def test_hugging_face_cache_snapshot(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--tiny"
    snap = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    blob = repo / "blobs" / hashlib.sha256(b"weights").hexdigest()
    blob.write_bytes(b"weights")
    (snap / "model.safetensors").symlink_to(os.path.relpath(blob, snap))
    m = compute_manifest(snap)
    assert m.files[0].path == "model.safetensors"
    # per-file sha256 equals the blob name, i.e. the hub's LFS oid
    assert m.files[0].digest == blob.name
    # a link from the snapshot into *another* repository's blobs is refused
    other = tmp_path / "models--evil--x" / "blobs"
    other.mkdir(parents=True)
    (other / "b").write_bytes(b"evil")
    (snap / "evil.bin").symlink_to(os.path.relpath(other / "b", snap))
    with pytest.raises(ModelPathError, match=r"evil\.bin: symlink resolves outside"):
        compute_manifest(snap)


def test_diff_names_changed_missing_extra(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    before = compute_manifest(tmp_path)
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "b").unlink()
    (tmp_path / "c").write_bytes(b"c")
    diff = diff_manifests(before, compute_manifest(tmp_path))
    assert (diff.changed, diff.missing, diff.extra) == (("a",), ("b",), ("c",))


IGNORE_VECTORS = json.loads((SCHEMA_DIR / "vectors" / "ignore-patterns.json").read_text(encoding="utf-8"))


def _materialise_paths(root: Path, paths: list[str]) -> None:
    for rel in paths:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)


@pytest.mark.parametrize("case", IGNORE_VECTORS["cases"], ids=lambda c: c["name"])
def test_ignore_pattern_vectors(tmp_path: Path, case: dict) -> None:
    """The published ignore semantics, as a verifier re-applies them."""
    _materialise_paths(tmp_path, case["files"])
    kept = [w.rel_path for w in walk_model(tmp_path, case["ignores"])]
    assert kept == case["expectedFiles"]
    if shutil.which("git") is None or any(f.startswith(".git/") for f in case["files"]):
        return
    # an independent implementation agrees: git itself, with the patterns as its exclude file
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("\n".join(case["ignores"]) + "\n")
    listed = subprocess.run(
        ["git", "-C", str(tmp_path), "ls-files", "-z", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    listed = [p for p in listed if p]
    assert sorted(listed) == sorted(case["expectedFiles"])


def test_anchored_pattern_does_not_descend(tmp_path: Path) -> None:
    """`/a/*.bin` drops a/x.bin only: fnmatch's `*` crossed `/` and also dropped a/b/x.bin."""
    _materialise_paths(tmp_path, ["a/x.bin", "a/b/x.bin"])
    m = compute_manifest(tmp_path, ignores=("/a/*.bin",))
    assert [f.path for f in m.files] == ["a/b/x.bin"]
    assert m.ignored == ("a/x.bin",)


@pytest.mark.parametrize(
    "pattern", ["*.safetensors", "*.bin", "*.pt", "*.gguf", "config.json", "tokenizer*", "*.py", "*", "sub/"]
)
def test_ignores_that_hide_loadable_files_refused(model_dir: Path, pattern: str) -> None:
    with pytest.raises(UsageError, match="would leave out files a loader reads"):
        check_ignores(model_dir, ("*.sigstore.json", pattern))
    check_ignores(model_dir, ("*.sigstore.json", pattern), allow_loadable=True)  # explicit opt-in


def test_folder_ignore_refused_when_it_holds_weights(model_dir: Path) -> None:
    (model_dir / "shards").mkdir()
    (model_dir / "shards" / "part-1.safetensors").write_bytes(b"w")
    with pytest.raises(UsageError, match=r"shards/part-1\.safetensors \(weights\)"):
        check_ignores(model_dir, ("shards/",))
    check_ignores(model_dir, ("*.md", "notes/"))  # documentation is not loaded: allowed


@pytest.mark.parametrize(
    "paths,problem",
    [
        (["a", "a/b"], "as a file and as a folder"),
        (["a/b", "a"], "as a file and as a folder"),
        (["x", "x"], "twice"),
        (["a\x00b"], "control character"),
        (["evil\nMODEL_OK"], "control character"),
        (["/".join(["a"] * 2100)], "segments deep"),
        (["a/../b"], "'..' segment"),
        (["x" * 300], "longer than 255 bytes"),
    ],
)
def test_signed_manifest_with_impossible_paths_refused(paths: list[str], problem: str) -> None:
    files = [{"path": p, "size": 1, "digest": "0" * 64} for p in paths]
    with pytest.raises(SchemaError, match=problem):
        manifest_from_json(files, ())
