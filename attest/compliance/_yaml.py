"""YAML reading for rule packs, deployment profiles and matrix configs.

PyYAML's safe loader follows YAML 1.1, which turns ``2026-07-15`` into a ``datetime.date`` (not JSON,
so neither schema-valid nor hashable with RFC 8785) and reads ``1e25`` as a *string*. Both are wrong
for legal dates and compute thresholds, so this loader keeps dates as strings and reads exponents as
numbers, the way YAML 1.2 and JSON do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from attest.errors import UsageError


class _Loader(yaml.SafeLoader):
    """Safe loader without the timestamp resolver and with YAML 1.2 floats."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def loads(text: str, what: str) -> Any:
    """Parse YAML text; a syntax error is a ``UsageError`` naming ``what``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"{what} is not valid YAML{where}") from None


def load_file(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    return loads(text, f"{what} {path}")
