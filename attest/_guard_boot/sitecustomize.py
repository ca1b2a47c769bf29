"""Installed on ``PYTHONPATH`` by ``attest run``: puts the verify-before-load guard in place before the
program's own code runs. Configuration comes from ATTEST_POLICY / ATTEST_REGISTRY."""

import os

if os.environ.get("ATTEST_GUARD") == "1":
    import sys

    from attest import guard

    guard.install()
    _default_hook = sys.excepthook

    def _refusal_hook(kind, value, tb):
        # A refusal is the guard working, not a crash: one line, exit status 1.
        if isinstance(value, guard.ModelRefused):
            print(f"attest: {value}", file=sys.stderr)
        else:
            _default_hook(kind, value, tb)

    sys.excepthook = _refusal_hook
