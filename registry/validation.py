"""Strict checks on everything a caller can put in front of the registry's database.

Why one module: the same string reaches SQLite and PostgreSQL, and the two disagree on what they
accept (PostgreSQL refuses NUL and over-long ``VARCHAR`` values with an error, SQLite stores both; a
lone surrogate cannot even be encoded; a Python int over 2**63 overflows SQLite's binding). Each check
here turns such input into a one-line 400/422 *before* any query runs, so both databases give the same
answer and nothing malformed is ever stored or logged.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from attest.errors import UsageError, VerificationError

# RFC 3339 times: one checker, in the predicate validator (``format: date-time``); query times use it too.
from attest.predicates import check_rfc3339 as check_rfc3339

# The largest integer any path or query parameter may carry: fits a signed 64-bit column everywhere.
MAX_INT = 2**63 - 1
# Unix seconds of 9999-12-31T23:59:59Z: the last instant ``datetime`` can represent.
MAX_UNIX_SECONDS = 253_402_300_799
# Column widths (registry.models): a value over them is refused, never truncated or left to the DB.
MAX_NAME = 512
MAX_NAMESPACE = 255
MAX_PREDICATE_TYPE = 512
MAX_SIGNER = 1024
MAX_DESCRIPTION = 255
MAX_JSON_DEPTH = 64

# Digest lengths (hex characters) of the algorithms in-toto's DigestSet names most often.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40, "gitCommit": 40}
_HEX = re.compile(r"^[0-9a-f]+$")
# Bidirectional formatting characters: they make a name display differently from what it is.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_text(value: str, what: str, max_len: int) -> str:
    """A free-text value (query filter, signer, description): bounded, printable, encodable.

    Refuses NUL and every other control character, bidi overrides and lone surrogates.
    """
    if len(value) > max_len:
        raise UsageError(f"{what} is {len(value)} characters, the limit is {max_len}")
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cc" or ch in _BIDI:
            raise UsageError(f"{what} contains the control or bidi character U+{ord(ch):04X}")
        if cat == "Cs":
            raise UsageError(f"{what} contains an unpaired surrogate U+{ord(ch):04X}")
    return value


def check_name(value: str, what: str = "name", max_len: int = MAX_NAME) -> str:
    """A model name or namespace: ``check_text`` plus no empty, ``.`` or ``..`` path segments."""
    check_text(value, what, max_len)
    if not value:
        raise UsageError(f"{what} is empty")
    if any(seg in ("", ".", "..") for seg in value.split("/")):
        raise UsageError(f"{what} {value!r} has an empty, '.' or '..' segment")
    if value != value.strip():
        raise UsageError(f"{what} {value!r} has leading or trailing whitespace")
    return value


def check_digest_set(digest: dict[str, str], what: str = "subject digest") -> None:
    """An in-toto DigestSet: known algorithms must be lowercase hex of their exact length."""
    if not digest:
        raise VerificationError(f"{what} is empty")
    for alg, value in digest.items():
        want = DIGEST_HEX_LENGTHS.get(alg)
        if want is None:
            try:
                check_text(alg, f"{what} algorithm", 64)
                check_text(value, f"{what} {alg}", 256)
            except UsageError as exc:
                raise VerificationError(exc.message) from None
            continue
        if len(value) != want or not _HEX.match(value):
            raise VerificationError(f"{what} {alg}:{value[:80]!r} is not {want} lowercase hex characters")


def check_int(value: int, what: str, low: int = 0, high: int = MAX_INT) -> int:
    if not low <= value <= high:
        raise UsageError(f"{what} must be between {low} and {high}")
    return value


def json_depth_ok(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``doc`` nests at most ``limit`` deep (iterative: a deep document cannot overflow it)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return False
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return True


def parse_json(raw: bytes, what: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a request body: 400 for anything that is not UTF-8 JSON of bounded depth."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise UsageError(f"{what} is nested more than {max_depth} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    if not json_depth_ok(doc, max_depth):
        raise UsageError(f"{what} is nested more than {max_depth} levels deep")
    return doc
