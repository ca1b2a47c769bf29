"""Query-string times: RFC 3339 (``2026-11-27T13:00:00Z``) or Unix seconds, bounded to what
``datetime`` and a 64-bit column can hold (year 1970 to 9999)."""

from __future__ import annotations

from datetime import UTC, datetime

from attest.errors import UsageError
from registry.validation import MAX_UNIX_SECONDS, check_rfc3339


def parse_time_param(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if value.isascii() and value.isdigit():
        if len(value) > 12 or int(value) > MAX_UNIX_SECONDS:
            raise UsageError(f"{what}: {value[:40]!r} is after the year 9999")
        return int(value)
    if len(value) > 40 or not check_rfc3339(value):
        raise UsageError(f"{what}: {value[:40]!r} is not an RFC 3339 time (with offset) or Unix seconds")
    parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
    return max(0, int(parsed.timestamp()))
