"""Static stage: judge every file of a model without deserialising anything.

``scan_static(path)`` walks the model folder (or one file), classifies each file by its magic bytes,
validates safetensors headers, analyses every pickle against a default-deny allowlist, and reports
code-bearing content and config <-> weights inconsistencies. It needs neither torch nor numpy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest.scan.findings import Finding
from attest.scan.static.config_checks import code_bearing, consistency, load_config
from attest.scan.static.containers import scan_path
from attest.scan.static.safetensors_header import SafetensorsHeader

_IGNORED_DIRS = (".git", ".cache/huggingface")

__all__ = ["StaticResult", "list_files", "scan_static"]


@dataclass
class StaticResult:
    """Findings plus what the dynamic stage and the predicate's coverage need."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    pickles: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    safetensors: dict[str, SafetensorsHeader] = field(default_factory=dict)
    config: dict[str, Any] | None = None


def list_files(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files to scan, sorted by UTF-8 bytes, ignores applied."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [
            d
            for d in dirnames
            if (f"{rel_dir}/{d}" if rel_dir != "." else d).lstrip("./") not in _IGNORED_DIRS
        ]
        for name in filenames:
            out.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return sorted(out, key=lambda p: p.encode("utf-8", "surrogateescape"))


def scan_static(path: str | Path) -> StaticResult:
    """Run every static check over a model folder or a single file."""
    root = Path(path)
    result = StaticResult()
    if root.is_file():
        _scan_one(root, root.name, result)
        return result
    rel_paths = list_files(root)
    resolved_root = root.resolve()
    for rel in rel_paths:
        file_path = root / rel
        if file_path.is_symlink():
            target = file_path.resolve()
            if not target.is_relative_to(resolved_root) and "blobs" not in target.parts:
                result.findings.append(Finding("path.symlink-escape", "high", rel, f"symlink to {target}"))
                continue
        if not file_path.is_file():
            result.findings.append(Finding("path.special-file", "high", rel, "not a regular file"))
            continue
        _scan_one(file_path, rel, result)
    result.config = load_config(root, result.findings)
    result.findings.extend(code_bearing(root, rel_paths, result.config))
    result.findings.extend(consistency(result.config, result.safetensors, root))
    return result


def _scan_one(file_path: Path, rel: str, result: StaticResult) -> None:
    scanned = scan_path(file_path, rel)
    result.files += 1
    result.pickles += scanned.pickles
    result.formats[rel] = scanned.format
    result.findings.extend(scanned.findings)
    if scanned.safetensors is not None:
        result.safetensors[rel] = scanned.safetensors
