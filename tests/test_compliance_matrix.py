"""The verification matrix: counting assessments due and the state of each (model, jurisdiction) cell."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from attest.compliance.matrix import matrix_status, parse_matrix
from attest.errors import UsageError
from tests.core_fixtures import RunAttest

SEED = {
    "models": [f"org/model-{i}" for i in range(5)],
    "jurisdictions": ["EU", "CN", "US"],
    "cadence": "monthly",
}
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


def predicate(day: str, statuses: dict[str, str]) -> dict[str, Any]:
    return {
        "evaluationDate": f"{day}T00:00:00Z",
        "findings": [{"ruleId": f"R-{j}", "jurisdiction": j, "status": s} for j, s in statuses.items()],
    }


def test_seed_example_is_180_a_year() -> None:
    matrix = parse_matrix(SEED)
    assert matrix.assessments_per_year == 180
    assert len(matrix.cells) == 15


def test_per_model_overrides_and_numeric_cadence() -> None:
    config = {
        "jurisdictions": ["EU", "US"],
        "cadence": "quarterly",
        "models": [
            "a",
            {"name": "b", "cadence": 26},
            {"name": "c", "jurisdictions": ["CN"], "cadence": "weekly"},
        ],
    }
    assert parse_matrix(config).assessments_per_year == 2 * 4 + 2 * 26 + 1 * 52


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"models": []},
        {"models": ["a"]},
        {"models": ["a"], "jurisdictions": ["EU"], "cadence": "hourly"},
        {"models": ["a"], "jurisdictions": ["EU"], "cadence": 0},
        {"models": [{"id": "x"}], "jurisdictions": ["EU"]},
    ],
)
def test_bad_configs_are_usage_errors(config: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        parse_matrix(config)


def test_status_current_stale_failed_missing() -> None:
    matrix = parse_matrix({"models": ["m1", "m2"], "jurisdictions": ["EU", "CN"], "cadence": "monthly"})
    existing = [
        ("m1", predicate("2026-11-20", {"EU": "satisfied", "CN": "not-satisfied"})),
        ("m1", predicate("2026-09-01", {"EU": "not-satisfied"})),  # older, superseded
        ("m2", predicate("2026-09-01", {"EU": "satisfied"})),  # older than one month
        ("other", predicate("2026-11-26", {"CN": "satisfied"})),  # another model
    ]
    result = matrix_status(matrix, existing, now=NOW)
    states = {(r["model"], r["jurisdiction"]): r["state"] for r in result["rows"]}
    assert states == {
        ("m1", "EU"): "current",
        ("m1", "CN"): "failed",
        ("m2", "EU"): "stale",
        ("m2", "CN"): "missing",
    }
    assert result["status"] == {"current": 1, "stale": 1, "failed": 1, "missing": 1}
    assert result["assessmentsPerYear"] == 48
    assert next(r for r in result["rows"] if r["state"] == "failed")["notSatisfied"] == ["R-CN"]


def test_cli_matrix(run_attest: RunAttest, tmp_path: Path) -> None:
    config = tmp_path / "matrix.yaml"
    config.write_text(
        "models: [org/a, org/b, org/c, org/d, org/e]\njurisdictions: [EU, CN, US]\ncadence: monthly\n"
    )
    out = run_attest("matrix", config, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["assessmentsPerYear"] == 180
    text = run_attest("matrix", config)
    assert "180 assessments a year" in text.stdout
    today = dt.datetime.now(dt.UTC).date().isoformat()
    pred = tmp_path / "a.json"
    pred.write_text(json.dumps(predicate(today, {"EU": "satisfied"})))
    status = run_attest("matrix", config, "--assessment", f"org/a={pred}", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == {"current": 1, "stale": 0, "failed": 0, "missing": 14}
    bad = run_attest("matrix", config, "--assessment", "no-equals-sign")
    assert bad.returncode == 2 and "MODEL=FILE" in bad.stderr
