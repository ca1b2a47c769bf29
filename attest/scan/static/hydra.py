"""YAML configs instantiated by Hydra (NeMo ``.nemo`` archives, ``model_config.yaml``): ``_target_``.

``hydra.utils.instantiate`` imports and calls whatever dotted path ``_target_`` names, so a NeMo
checkpoint whose config says ``_target_: os.system`` runs it on restore. Targets must sit under the
frameworks a NeMo model is built from; anything else is a finding. YAML is read with ``safe_load``
(no YAML tags are constructed) and with a size bound; depth errors are findings.
"""

from __future__ import annotations

from typing import Any

import yaml

from attest.scan.findings import Finding
from attest.scan.static.pickle_scan import is_dangerous

ALLOWED_TARGET_PREFIXES = (
    "nemo.",
    "megatron.core.",
    "torch.nn.",
    "torch.optim.",
    "torch.utils.data.",
    "pytorch_lightning.",
    "lightning.pytorch.",
    "transformers.",
    "omegaconf.",
)
MAX_YAML_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000


def scan_yaml(raw: bytes, rel: str) -> list[Finding]:
    """Findings for one YAML document: malformed YAML, and every ``_target_`` outside the allowlist."""
    if len(raw) > MAX_YAML_BYTES:
        return [Finding("hydra.config-too-large", "medium", rel, f"YAML of {len(raw)} bytes not analysed")]
    try:
        docs = list(yaml.safe_load_all(raw))
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        return [Finding("hydra.config-malformed", "high", rel, f"unreadable YAML: {reason}"[:300])]
    findings: list[Finding] = []
    stack: list[Any] = list(docs)
    visited = 0
    while stack and visited < MAX_NODES:
        node = stack.pop()
        visited += 1
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
            target = node.get("_target_")
            if target is not None:
                findings.extend(_check_target(str(target), rel))
    return findings


def _check_target(target: str, rel: str) -> list[Finding]:
    if target.startswith(ALLOWED_TARGET_PREFIXES):
        return []
    module, _, name = target.rpartition(".")
    dangerous = is_dangerous(module or target, name)
    return [
        Finding(
            "hydra.target-not-allowed",
            "critical" if dangerous else "high",
            rel,
            f"Hydra _target_ {target!r} is imported and called on load",
            {"target": target},
        )
    ]
