"""SARIF 2.1.0 and OSCAL assessment-results exports validate against the vendored official schemas."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import regex
from jsonschema import Draft4Validator, Draft7Validator, validators
from jsonschema.exceptions import ValidationError

from attest.compliance import assess
from attest.compliance.oscal import to_oscal
from attest.compliance.sarif import to_sarif
from tests.compliance_fixtures import MakeProfile

VENDORED = Path(__file__).resolve().parent / "data" / "vendored"
START = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 27, 12, 0, 1, tzinfo=dt.UTC)


def _unicode_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """``pattern`` with the ``regex`` package: OSCAL uses ``\\p{L}``/``\\p{N}``, which ``re`` rejects."""
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


OscalValidator = validators.extend(Draft7Validator, {"pattern": _unicode_pattern})


def sarif_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((VENDORED / "sarif-schema-2.1.0.json").read_text())
    return [e.message for e in Draft4Validator(schema).iter_errors(doc)]


def oscal_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((VENDORED / "oscal_assessment-results_schema.json").read_text())
    validator = OscalValidator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.fixture()
def mixed(make_profile: MakeProfile, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """An assessment with all four statuses and an evidence problem."""
    (tmp_path / "prohibited-practices-review.txt").write_text("tampered\n")
    profile = make_profile(
        controls__aiLiteracy=False, controls__rmfMap=None, model__placedOnMarket="2025-01-01"
    )
    assessment = assess(profile, date=dt.date(2026, 11, 27))
    return assessment, assessment.to_predicate(START)


def test_mixed_assessment_has_every_status(mixed: tuple[Any, dict[str, Any]]) -> None:
    _, predicate = mixed
    assert {f["status"] for f in predicate["findings"]} == {
        "satisfied",
        "not-satisfied",
        "not-applicable",
        "insufficient-evidence",
    }
    assert predicate["evidenceProblems"]


def test_sarif_validates_and_maps_statuses(mixed: tuple[Any, dict[str, Any]]) -> None:
    assessment, predicate = mixed
    sarif = to_sarif(assessment, predicate, START, END)
    assert sarif_errors(sarif) == []
    run = sarif["runs"][0]
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["invocations"][0]["toolExecutionNotifications"][0]["level"] == "warning"
    kinds = {r["ruleId"]: (r["kind"], r["level"]) for r in run["results"]}
    assert kinds["EU-AIA-ART4"] == ("fail", "note")  # declared not implemented, low severity
    assert kinds["EU-AIA-ART5"] == ("fail", "error")  # tampered evidence, critical severity
    assert kinds["US-NIST-RMF-MAP"] == ("open", "none")
    assert kinds["EU-AIA-ART53-1A"] == ("notApplicable", "none")  # legacy GPAI model: from 2027
    assert kinds["US-NIST-RMF-GOVERN"] == ("pass", "none")
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r["ruleId"] for r in run["results"]]
    assert all(run["results"][i]["ruleIndex"] == i for i in range(len(rules)))
    assert rules[0]["helpUri"] == "https://eur-lex.europa.eu/eli/reg/2024/1689/oj"


def test_sarif_validator_catches_a_broken_log(mixed: tuple[Any, dict[str, Any]]) -> None:
    assessment, predicate = mixed
    sarif = to_sarif(assessment, predicate, START, END)
    sarif["runs"][0]["results"][0]["kind"] = "passed"
    assert sarif_errors(sarif)
    del sarif["version"]
    assert sarif_errors(sarif)


def test_oscal_validates_and_never_reports_insufficient_as_satisfied(
    mixed: tuple[Any, dict[str, Any]],
) -> None:
    assessment, predicate = mixed
    oscal = to_oscal(assessment, predicate, START, END)
    assert oscal_errors(oscal) == []
    result = oscal["assessment-results"]["results"][0]
    states = {f["target"]["target-id"]: f["target"]["status"] for f in result["findings"]}
    assert states["US-NIST-RMF-MAP"] == {"state": "not-satisfied", "reason": "insufficient-evidence"}
    assert states["EU-AIA-ART4"] == {"state": "not-satisfied"}
    assert states["US-NIST-RMF-GOVERN"] == {"state": "satisfied"}
    assert "EU-AIA-ART53-1A" not in states  # not applicable: an observation only
    observations = {o["uuid"]: o for o in result["observations"]}
    assert len(observations) == len(predicate["findings"])
    for finding in result["findings"]:
        assert finding["related-observations"][0]["observation-uuid"] in observations
    evidence = [e for o in result["observations"] for e in o.get("relevant-evidence", [])]
    assert any("sha256" in e["description"] for e in evidence)
    # reproducible: the same predicate exports the same document
    assert to_oscal(assessment, predicate, START, END) == oscal


def test_oscal_validator_catches_a_broken_document(mixed: tuple[Any, dict[str, Any]]) -> None:
    assessment, predicate = mixed
    oscal = to_oscal(assessment, predicate, START, END)
    finding = oscal["assessment-results"]["results"][0]["findings"][0]
    finding["target"]["status"]["state"] = "compliant"
    assert oscal_errors(oscal)
    finding["target"]["status"]["state"] = "satisfied"
    finding["target"]["target-id"] = "9 not a token"  # checked through the \p{L} pattern
    assert oscal_errors(oscal)


def test_cli_comply_writes_predicate_sarif_oscal(
    run_attest: Any, make_profile: MakeProfile, tmp_path: Path
) -> None:
    profile_file = tmp_path / "profile.json"
    profile_file.write_text(json.dumps(make_profile(controls__aiLiteracy=False).document))
    out, sarif, oscal = tmp_path / "pred.json", tmp_path / "out.sarif", tmp_path / "oscal.json"
    result = run_attest(
        "comply",
        "--profile",
        profile_file,
        "--date",
        "2026-11-27",
        "-o",
        out,
        "--sarif",
        sarif,
        "--oscal",
        oscal,
    )
    assert result.returncode == 0, result.stderr
    assert "EU-AIA-ART4" in result.stdout and "not-satisfied" in result.stdout
    assert "not legal advice" in result.stdout
    predicate = json.loads(out.read_text())
    assert predicate["evaluationDate"] == "2026-11-27T00:00:00Z"
    assert predicate["summary"]["not-satisfied"] == 1
    assert sarif_errors(json.loads(sarif.read_text())) == []
    assert oscal_errors(json.loads(oscal.read_text())) == []
    as_json = run_attest("comply", "--profile", profile_file, "--date", "2026-07-14", "--json")
    assert as_json.returncode == 0, as_json.stderr
    findings = {f["ruleId"]: f for f in json.loads(as_json.stdout)["findings"]}
    assert findings["CN-ANTHRO-SECASSESS"]["status"] == "not-applicable"
    assert "applies from 2026-07-15" in findings["CN-ANTHRO-SECASSESS"]["reason"]


def test_cli_comply_bad_input(run_attest: Any, tmp_path: Path) -> None:
    missing = run_attest("comply", "--profile", tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    profile = tmp_path / "p.yaml"
    profile.write_text("name: x\njurisdictions: [EU]\n")
    bad_date = run_attest("comply", "--profile", profile, "--date", "27/11/2026")
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr
    profile.write_text("name: x\njurisdictions: EU\n")
    invalid = run_attest("comply", "--profile", profile)
    assert invalid.returncode == 1 and "invalid at jurisdictions" in invalid.stderr
    profile.write_text("name: [x\n")
    broken = run_attest("comply", "--profile", profile)
    assert broken.returncode == 2 and "not valid YAML" in broken.stderr
    profile.write_text("name: x\njurisdictions: [BR]\n")
    no_pack = run_attest("comply", "--profile", profile)
    assert no_pack.returncode == 2 and "no rule pack" in no_pack.stderr
    for result in (missing, bad_date, invalid, broken, no_pack):
        assert "Traceback" not in result.stderr
