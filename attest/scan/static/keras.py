"""Keras model configs: the v3 ``.keras`` zip's ``config.json`` and the HDF5 ``model_config`` attribute.

Keras rebuilds a model by importing the ``module`` each config object names and calling its
``class_name``; a ``Lambda`` layer (or a ``__lambda__`` object) carries marshalled Python bytecode
that runs on load, and published bypasses of ``safe_mode`` (CVE-2025-1550) named functions such as
``keras.config.enable_unsafe_deserialization`` as objects. So every object of the config is checked:
modules outside the Keras packages, lambdas, safe-mode-disabling or downloading functions, and
custom objects (which need the user's own code). HDF5 is read with h5py, as a parser only, imported
lazily: without it an ``.h5`` file is ``format.unanalysed``.
"""

from __future__ import annotations

import io
import json
from typing import Any

from attest.scan.findings import Finding, dedupe, unanalysed
from attest.scan.static.pickle_scan import is_dangerous

ALLOWED_PACKAGES = frozenset({"keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras"})
LAMBDA_CLASSES = frozenset({"Lambda", "__lambda__"})
DANGEROUS_FUNCTIONS = frozenset(
    {"enable_unsafe_deserialization", "get_file", "load_model", "load_weights", "exec", "eval"}
)
MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_OBJECTS = 1_000_000


def parse_config(raw: bytes | str, rel: str) -> tuple[Any, list[Finding]]:
    """JSON-decode a config; a malformed or absurdly deep document is a finding, never a crash."""
    if len(raw) > MAX_CONFIG_BYTES:
        return None, [Finding("keras.config-too-large", "high", rel, f"config of {len(raw)} bytes")]
    try:
        return json.loads(raw), []
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return None, [
            Finding("keras.config-malformed", "high", rel, f"model config is not JSON: {reason}"[:300])
        ]


def check_config(doc: Any, rel: str) -> list[Finding]:
    """Walk every object of a Keras model config (iteratively: depth cannot crash the scanner)."""
    findings: list[Finding] = []
    stack: list[Any] = [doc]
    visited = 0
    while stack:
        node = stack.pop()
        visited += 1
        if visited > MAX_OBJECTS:
            findings.append(Finding("keras.config-too-large", "high", rel, f"over {MAX_OBJECTS} objects"))
            break
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        class_name = node.get("class_name")
        if not isinstance(class_name, str):
            continue
        findings.extend(_check_object(node, class_name, rel))
    return dedupe(findings)


def _check_object(node: dict[str, Any], class_name: str, rel: str) -> list[Finding]:
    out: list[Finding] = []
    module = node.get("module")
    if class_name in LAMBDA_CLASSES:
        out.append(
            Finding(
                "keras.lambda-layer",
                "high",
                rel,
                f"{class_name} object carries Python bytecode that runs on load",
                {"className": class_name},
            )
        )
    if class_name in DANGEROUS_FUNCTIONS:
        out.append(
            Finding(
                "keras.dangerous-function",
                "critical",
                rel,
                f"config object calls {module or ''}.{class_name} (disables safe mode, loads or downloads)",
                {"module": str(module), "className": class_name},
            )
        )
    if isinstance(module, str) and module.split(".")[0] not in ALLOWED_PACKAGES:
        out.append(
            Finding(
                "keras.module-not-allowed",
                "critical" if is_dangerous(module, class_name) else "high",
                rel,
                f"config imports {module}.{class_name}, outside the Keras packages",
                {"module": module, "className": class_name},
            )
        )
    registered = node.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        package = registered.split(">", 1)[0]
        if package not in ALLOWED_PACKAGES:
            out.append(
                Finding(
                    "keras.custom-object",
                    "medium",
                    rel,
                    f"custom object {registered!r}: loading needs the publisher's code",
                    {"registeredName": registered},
                )
            )
    return out


def scan_keras_config(raw: bytes | str, rel: str) -> list[Finding]:
    """Findings for the ``config.json`` of a ``.keras`` archive (``rel`` names the member)."""
    doc, findings = parse_config(raw, rel)
    return findings if doc is None else check_config(doc, rel)


def scan_hdf5(data: bytes | memoryview | None, path: str | None, rel: str) -> list[Finding]:
    """A Keras HDF5 file: its ``model_config`` and ``training_config`` attributes, read with h5py.

    ``path`` is used for files on disk (h5py maps them itself); ``data`` for archive members."""
    try:
        import h5py
    except ImportError:
        return [
            unanalysed(
                rel, "HDF5 file not analysed: install the 'formats' extra (h5py) to read its model config"
            )
        ]
    findings: list[Finding] = []
    try:
        source: Any = path if path is not None else io.BytesIO(bytes(data or b""))
        with h5py.File(source, "r") as handle:
            for attribute in ("model_config", "training_config"):
                if attribute not in handle.attrs:
                    continue
                value = handle.attrs[attribute]
                raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                doc, problems = parse_config(raw, f"{rel}#{attribute}")
                findings += problems if doc is None else check_config(doc, f"{rel}#{attribute}")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return [Finding("hdf5.malformed", "high", rel, f"unreadable HDF5 file: {exc}"[:300])]
    return findings
