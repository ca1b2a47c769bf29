"""Static stage: judge every file of a model without deserialising anything.

``scan_static(path)`` walks the model folder (or one file), classifies each file by its magic bytes,
validates safetensors headers, analyses every pickle against a default-deny allowlist, and reports
code-bearing content and config <-> weights inconsistencies. It needs neither torch nor numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest._internal.walk import DEFAULT_IGNORES, walk_model
from attest.errors import ModelPathError
from attest.scan.findings import UNANALYSED, Finding
from attest.scan.static.config_checks import code_bearing, consistency, load_config
from attest.scan.static.containers import scan_path
from attest.scan.static.safetensors_header import SafetensorsHeader

__all__ = ["StaticResult", "scan_static"]


@dataclass
class StaticResult:
    """Findings plus what the dynamic stage and the predicate's coverage need."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    pickles: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    safetensors: dict[str, SafetensorsHeader] = field(default_factory=dict)
    config: dict[str, Any] | None = None


def scan_static(path: str | Path) -> StaticResult:
    """Run every static check over a model folder or a single file."""
    root = Path(path)
    result = StaticResult()
    try:
        # The manifest's own walk: same ignores, same refusals (escaping symlinks, special files,
        # non-UTF-8 or colliding names), HF cache snapshot links resolved into their blobs/.
        walked = walk_model(root, DEFAULT_IGNORES)
    except ModelPathError as exc:
        result.findings.append(Finding("path.rejected", "high", root.name, exc.message))
        return result
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError on 3.11), unreadable folder
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        result.findings.append(
            Finding("path.rejected", "high", root.name, f"cannot walk the model: {reason}")
        )
        return result
    references: set[str] = set()
    for entry in walked:
        references |= _scan_one(entry.real_path, entry.rel_path, result)
    # Files another file loads as raw data (ONNX external data) are known data, not unanalysed.
    result.findings = [f for f in result.findings if not (f.rule_id == UNANALYSED and f.file in references)]
    if root.is_file():
        return result
    rel_paths = [entry.rel_path for entry in walked]
    result.config = load_config(root, result.findings)
    result.findings.extend(code_bearing(root, rel_paths, result.config))
    result.findings.extend(consistency(result.config, result.safetensors, root))
    return result


def _scan_one(file_path: Path, rel: str, result: StaticResult) -> set[str]:
    """Scan one file into ``result``; return the files it references as data."""
    try:
        scanned = scan_path(file_path, rel)
    except OSError as exc:  # unreadable file: fail closed, never a traceback
        result.files += 1
        result.findings.append(Finding("file.unreadable", "high", rel, f"cannot read: {exc.strerror or exc}"))
        return set()
    result.files += 1
    result.pickles += scanned.pickles
    result.formats[rel] = scanned.format
    result.findings.extend(scanned.findings)
    if scanned.safetensors is not None:
        result.safetensors[rel] = scanned.safetensors
    return scanned.references
