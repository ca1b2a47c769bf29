"""The SARIF 2.1.0 pieces every export shares: the schema URI, severity -> level, and the log shell.

SARIF requires ``level`` ``none`` for every result ``kind`` except ``fail``, and a run without
``invocations[].executionSuccessful`` looks clean even when it was degraded: both rules live here so
the compliance export and the scan export cannot drift apart.
"""

from __future__ import annotations

from typing import Any

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SEVERITY_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def result_level(kind: str, severity: str) -> str:
    """The SARIF ``level`` of a result: from the severity for ``fail``, else ``none``."""
    return SEVERITY_LEVEL[severity] if kind == "fail" else "none"


def sarif_log(
    driver: dict[str, Any], results: list[dict[str, Any]], invocation: dict[str, Any], **run: Any
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run; extra keyword arguments become run members."""
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "invocations": [invocation], "results": results, **run}],
    }
