"""Installed on ``PYTHONPATH`` by ``attest run``: puts the verify-before-load guard in place before the
program's own code runs. Configuration comes from ATTEST_POLICY / ATTEST_REGISTRY."""

import os

if os.environ.get("ATTEST_GUARD") == "1":
    from attest import guard

    guard.install()
