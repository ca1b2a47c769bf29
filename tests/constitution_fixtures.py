"""Fixtures for constitution tests: the published canonicalisation vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def constitution_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "schemas" / "constitution-vectors.json").read_text("utf-8"))
    return data
