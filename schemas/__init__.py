"""JSON Schemas and test vectors of model-attest, shipped as package data.

The folder is a package so installed copies find their schemas without a source tree.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>.schema.json`` (cached: schemas are immutable package data)."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
