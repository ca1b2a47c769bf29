"""A registry, an admission controller or a verifier must not need torch or transformers (the [scan]
extra): their import paths are checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from tests.core_fixtures import REPO


def test_registry_and_verifier_do_not_import_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys\n"
        "from registry import create_app\n"
        "from registry.settings import Settings\n"
        f"create_app(Settings(data_dir={str(tmp_path)!r}))\n"
        "import attest.model_verification, attest.pull, attest.guard, attest.registry_client, cli.verify, cli.pull\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
