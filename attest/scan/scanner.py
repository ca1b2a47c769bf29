"""``scan_model``: static stage, then (unless static-only) the dynamic stage, then the predicate.

The dynamic stage is imported only when it runs, so a static-only scan needs neither torch nor
transformers. Any failure of the dynamic stage becomes an ERROR result with its message, never an
exception and never PASSED.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest.errors import UsageError
from attest.scan.dynamic.outcome import DynamicOutcome
from attest.scan.options import ScanOptions
from attest.scan.predicate import build_predicate
from attest.scan.static import scan_static

Progress = Callable[[str, int, int], None]


def scan_model(
    path: str | Path, options: ScanOptions | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Scan a model folder (or a single weights file) and return the ``backdoor-scan/v1`` predicate."""
    options = options or ScanOptions()
    root = Path(path)
    if not root.exists():
        raise UsageError(f"no such file or directory: {root}")
    report = progress or (lambda stage, done, total: None)
    started = datetime.now(UTC)
    report("static", 0, 1)
    static = scan_static(root)
    report("static", 1, 1)
    errors: list[str] = []
    dynamic: DynamicOutcome | None = None
    if not options.static_only:
        if root.is_file():
            errors.append(
                "dynamic stage needs a model folder (config, weights, tokenizer), got a single file"
            )
        else:
            from attest.scan.dynamic import run_dynamic

            dynamic = run_dynamic(root, options, static, report)
    finished = datetime.now(UTC)
    static_coverage = {
        "files": static.files,
        "pickles": static.pickles,
        "safetensors": len(static.safetensors),
        # How many top-level files of each detected format (so "PASSED" shows what was looked at).
        "formats": dict(sorted(Counter(static.formats.values()).items())),
    }
    return build_predicate(
        options=options,
        findings=static.findings,
        static_coverage=static_coverage,
        dynamic=dynamic,
        errors=errors,
        started=started,
        finished=finished,
    )
