"""Fixtures for the foundation: tiny model folders, key pairs, and running the real CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real signed material made by other projects on real Sigstore instances (see its README).
REAL_FIXTURES = REPO / "tests" / "data" / "real"

RunAttest = Callable[..., subprocess.CompletedProcess[str]]


def make_model(root: Path) -> Path:
    """A small model-shaped folder: weights, config, tokenizer, a nested file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}\n')
    (root / "model.safetensors").write_bytes(
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)) * 8
    )
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (root / "extra").mkdir(exist_ok=True)
    (root / "extra" / "README.md").write_text("# tiny\n")
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_model(tmp_path / "tiny-model")


@pytest.fixture
def run_attest() -> RunAttest:
    """Run the installed CLI in a subprocess, as a user would, capturing text output."""

    def run(
        *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd or REPO,
            env=env,
            timeout=600,
        )

    return run


@pytest.fixture
def keypair(tmp_path: Path, run_attest: RunAttest) -> tuple[Path, Path]:
    prefix = tmp_path / "keys" / "publisher"
    prefix.parent.mkdir()
    result = run_attest("keygen", "--out", prefix)
    assert result.returncode == 0, result.stderr
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture(autouse=True)
def _isolated_checkpoint_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own client checkpoint store: registries on reused loopback ports are
    different logs, and must not look like a fork of each other."""
    monkeypatch.setenv("ATTEST_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("checkpoints")))
