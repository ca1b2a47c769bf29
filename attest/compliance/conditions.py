"""A tiny, safe evaluator for applicability conditions written as data.

Rule packs say when a rule applies with small declarative conditions such as
``{all: [{field: users.registered, gte: 1000000}, {field: features.emotionalCompanionship, eq: true}]}``
instead of code, so a pack can be reviewed by a lawyer, diffed, hashed and shipped as data. Nothing is
ever passed to ``eval``.

Evaluation is three-valued: ``True``, ``False`` or ``None`` (unknown) when a field the answer depends
on is absent from the deployment profile. Unknown is how the engine turns "the profile does not say"
into an explicit *insufficient-evidence* finding instead of a silent pass or fail.

Grammar (validated by ``schemas/rule-pack.schema.json``):
  condition := {all: [condition, ...]} | {any: [condition, ...]} | {not: condition}
             | {always: true} | {field: "a.b.c", <op>: value}
  op        := eq | ne | gt | gte | lt | lte | in | contains | intersects | exists
``gt``/``gte``/``lt``/``lte`` compare numbers with numbers and strings with strings (ISO dates
compare correctly as strings); ``in``: the field's value is one of a list; ``contains``: the field is a
list holding the value; ``intersects``: the field is a list sharing an element with the given list;
``exists``: whether the field is present (never unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attest.errors import SchemaError

Tri = bool | None
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "intersects", "exists")
_MISSING = object()


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` in nested mappings, or ``_MISSING``."""
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: str, left: Any, right: Any) -> Tri:
    if op == "eq":
        return bool(
            (left == right and type(left) is type(right))
            or (_number(left) and _number(right) and left == right)
        )
    if op == "ne":
        return not _compare("eq", left, right)
    if op in ("gt", "gte", "lt", "lte"):
        comparable = (_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))
        if not comparable:
            return None  # a value of the wrong type says nothing: unknown, never a silent False
        return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
    if op == "in":
        return left in right
    if op == "contains":
        return isinstance(left, list) and right in left
    if op == "intersects":
        return isinstance(left, list) and any(item in left for item in right)
    raise SchemaError(f"unknown condition operator {op!r}")


def evaluate(condition: Mapping[str, Any], context: Mapping[str, Any]) -> Tri:
    """Evaluate ``condition`` over ``context`` (Kleene logic: unknown propagates unless decided)."""
    if "all" in condition:
        results = [evaluate(c, context) for c in condition["all"]]
        if False in results:
            return False
        return None if None in results else True
    if "any" in condition:
        results = [evaluate(c, context) for c in condition["any"]]
        if True in results:
            return True
        return None if None in results else False
    if "not" in condition:
        inner = evaluate(condition["not"], context)
        return None if inner is None else not inner
    if "always" in condition:
        return bool(condition["always"])
    path = condition.get("field")
    ops = [op for op in OPERATORS if op in condition]
    if not isinstance(path, str) or len(ops) != 1:
        raise SchemaError(f"malformed condition {dict(condition)!r}: need one field and one operator")
    op = ops[0]
    value = lookup(context, path)
    if op == "exists":
        return (value is not _MISSING) == bool(condition["exists"])
    if value is _MISSING or value is None:
        return None
    return _compare(op, value, condition[op])


def fields(condition: Mapping[str, Any]) -> list[str]:
    """Every field a condition reads, in order (for messages such as "profile does not state X")."""
    found: list[str] = []
    for key in ("all", "any"):
        for sub in condition.get(key, []):
            found.extend(fields(sub))
    if "not" in condition:
        found.extend(fields(condition["not"]))
    if isinstance(condition.get("field"), str):
        found.append(condition["field"])
    return list(dict.fromkeys(found))


def unknown_fields(condition: Mapping[str, Any], context: Mapping[str, Any]) -> list[str]:
    """The fields of ``condition`` that the context does not state."""
    return [f for f in fields(condition) if lookup(context, f) in (_MISSING, None)]


def describe(condition: Mapping[str, Any]) -> str:
    """A short human-readable rendering, used in not-applicable reasons."""
    if "all" in condition:
        return "(" + " and ".join(describe(c) for c in condition["all"]) + ")"
    if "any" in condition:
        return "(" + " or ".join(describe(c) for c in condition["any"]) + ")"
    if "not" in condition:
        return "not " + describe(condition["not"])
    if "always" in condition:
        return "always" if condition["always"] else "never"
    symbols = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
    for op in OPERATORS:
        if op in condition:
            return f"{condition['field']} {symbols.get(op, op)} {condition[op]!r}"
    return repr(dict(condition))


def _flatten_any(condition: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alternatives of nested ``any`` conditions, as one list (any(a, any(b, c)) = any(a, b, c))."""
    flat: list[Mapping[str, Any]] = []
    for sub in condition["any"]:
        flat.extend(_flatten_any(sub) if "any" in sub else [sub])
    return flat


def why_false(condition: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The smallest part of a false condition that makes it false, with the values the profile gave.

    Used for not-applicable reasons: "features.emotionalCompanionship = True is false (profile: False)"
    says more than the whole applicability expression.
    """
    if "all" in condition:
        failing = [c for c in condition["all"] if evaluate(c, context) is False]
        return "; ".join(why_false(c, context) for c in failing)
    if "any" in condition:
        alternatives = _flatten_any(condition)
        return "none of (" + "; ".join(why_false(c, context) for c in alternatives) + ")"
    if "not" in condition:
        return f"{describe(condition['not'])} holds"
    if "field" in condition:
        value = lookup(context, condition["field"])
        shown = "absent" if value is _MISSING else repr(value)
        return f"{describe(condition)} is false (profile: {shown})"
    return f"{describe(condition)} is false"
