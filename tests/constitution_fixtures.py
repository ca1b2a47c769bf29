"""Fixtures for constitution and compliance tests: the vectors file and a real ``attest`` runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def constitution_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "schemas" / "constitution-vectors.json").read_text("utf-8"))
    return data


@pytest.fixture()
def attest_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``attest`` entry point in a subprocess (exit codes and stderr as a user sees them)."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=cwd or REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        )

    return run
