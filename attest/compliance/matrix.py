"""The verification matrix: models x jurisdictions x releases per year, and which assessments exist.

The seed's cost model made computable: 5 models x 3 jurisdictions x 12 monthly releases = 180
compliance assessments a year. ``matrix_status`` then says, per (model, jurisdiction) cell, whether a
current assessment exists, is stale (older than one release period), failed (has a not-satisfied
finding for that jurisdiction) or is missing; the registry feeds it the predicates it stores.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest.compliance import _yaml
from attest.errors import UsageError

CADENCES = {"weekly": 52, "biweekly": 26, "monthly": 12, "quarterly": 4, "semiannual": 2, "yearly": 1}
MISSING, CURRENT, STALE, FAILED = "missing", "current", "stale", "failed"


@dataclass(frozen=True)
class Cell:
    model: str
    jurisdiction: str
    releases_per_year: int

    @property
    def period_days(self) -> float:
        """How long one assessment stays current: one release period."""
        return 365 / self.releases_per_year


@dataclass(frozen=True)
class Matrix:
    cells: tuple[Cell, ...]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(c.model for c in self.cells))

    @property
    def jurisdictions(self) -> list[str]:
        return list(dict.fromkeys(c.jurisdiction for c in self.cells))

    @property
    def assessments_per_year(self) -> int:
        return sum(c.releases_per_year for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return {
            "models": len(self.models),
            "jurisdictions": self.jurisdictions,
            "cells": len(self.cells),
            "assessmentsPerYear": self.assessments_per_year,
            "rows": [
                {"model": c.model, "jurisdiction": c.jurisdiction, "releasesPerYear": c.releases_per_year}
                for c in self.cells
            ],
        }


def _releases(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise UsageError(f"{where}: cadence must be one of {', '.join(CADENCES)} or a positive integer")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value in CADENCES:
        return CADENCES[value]
    raise UsageError(
        f"{where}: cadence must be one of {', '.join(CADENCES)} or a positive integer, not {value!r}"
    )


def parse_matrix(config: Any, where: str = "matrix config") -> Matrix:
    """Config: ``models`` (names, or ``{name, jurisdictions?, cadence?}``), ``jurisdictions``, ``cadence``.

    Per-model ``jurisdictions`` and ``cadence`` override the defaults; cadence is a name
    (weekly, monthly, quarterly, ...) or releases per year.
    """
    if not isinstance(config, dict) or not isinstance(config.get("models"), list) or not config["models"]:
        raise UsageError(f"{where}: needs a non-empty list 'models'")
    default_jurisdictions = config.get("jurisdictions", [])
    default_cadence = config.get("cadence", "monthly")
    cells: list[Cell] = []
    for index, entry in enumerate(config["models"]):
        model = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise UsageError(f"{where}: models[{index}] needs a name")
        jurisdictions = model.get("jurisdictions", default_jurisdictions)
        if (
            not isinstance(jurisdictions, list)
            or not jurisdictions
            or not all(isinstance(j, str) for j in jurisdictions)
        ):
            raise UsageError(f"{where}: model {model['name']} needs a non-empty list of jurisdictions")
        releases = _releases(model.get("cadence", default_cadence), f"{where}: model {model['name']}")
        cells.extend(Cell(model["name"], j, releases) for j in dict.fromkeys(jurisdictions))
    return Matrix(tuple(cells))


def load_matrix(path: Path) -> Matrix:
    return parse_matrix(_yaml.load_file(path, "matrix config"), f"matrix config {path}")


def _evaluated(predicate: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(predicate["evaluationDate"]).replace("Z", "+00:00")).astimezone(
        dt.UTC
    )


def matrix_status(
    matrix: Matrix,
    existing_assessments: list[tuple[str, dict[str, Any]]],
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Per cell: the newest assessment covering it and its state (current / stale / failed / missing).

    ``existing_assessments``: (model name, verified compliance-assessment/v1 predicate) pairs, e.g.
    from a registry query by subject name and predicate type. Only *verified* predicates belong here:
    this function trusts what it is given.
    """
    moment = now or dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    counts = dict.fromkeys((CURRENT, STALE, FAILED, MISSING), 0)
    for cell in matrix.cells:
        covering = [
            p
            for model, p in existing_assessments
            if model == cell.model
            and any(f.get("jurisdiction") == cell.jurisdiction for f in p.get("findings", []))
        ]
        row: dict[str, Any] = {"model": cell.model, "jurisdiction": cell.jurisdiction}
        if not covering:
            state = MISSING
        else:
            newest = max(covering, key=_evaluated)
            row["evaluationDate"] = newest["evaluationDate"]
            failing = [
                f["ruleId"]
                for f in newest["findings"]
                if f.get("jurisdiction") == cell.jurisdiction and f.get("status") == "not-satisfied"
            ]
            if failing:
                state = FAILED
                row["notSatisfied"] = failing
            elif (moment - _evaluated(newest)).total_seconds() > cell.period_days * 86400:
                state = STALE
            else:
                state = CURRENT
        row["state"] = state
        counts[state] += 1
        rows.append(row)
    return {**matrix.to_json(), "status": counts, "rows": rows}
