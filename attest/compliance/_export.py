"""Helpers shared by the SARIF and OSCAL exports."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from importlib import metadata
from typing import Any

import rfc8785

TOOL_NAME = "model-attest comply"
INFORMATION_URI = "https://model-attest.dev"
# Namespace for the deterministic UUIDs of exported documents: the same predicate exports the same ids.
_NAMESPACE = uuid.UUID("5b0f6d55-43f4-4b0a-9d5e-6a1f1c3f7d2a")


def tool_version() -> str:
    try:
        return metadata.version("model-attest")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def predicate_digest(predicate: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(predicate)).hexdigest()


def stable_uuid(predicate_sha256: str, *parts: str) -> str:
    """A UUID (v5, which OSCAL's pattern accepts as it requires v4 or v5) derived from the predicate."""
    return str(uuid.uuid5(_NAMESPACE, "/".join((predicate_sha256, *parts))))


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
