"""Query-string times: RFC 3339 (``2026-11-27T13:00:00Z``) or Unix seconds."""

from __future__ import annotations

from datetime import UTC, datetime

from attest.errors import UsageError


def parse_time_param(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what}: {value!r} is not an RFC 3339 time or Unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())
