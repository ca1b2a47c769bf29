"""Compliance engine: every rule both ways, date boundaries, thresholds, evidence integrity, predicate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from attest.compliance import (
    DeploymentProfile,
    Options,
    RulePack,
    assess,
    builtin_pack,
    load_pack,
    parse_pack,
)
from attest.compliance.conditions import fields
from attest.compliance.engine import (
    INSUFFICIENT,
    NOT_APPLICABLE,
    NOT_SATISFIED,
    SATISFIED,
    Finding,
    evaluate_rule,
)
from attest.compliance.rules import Rule
from attest.errors import SchemaError, UsageError
from attest.predicates import COMPLIANCE_ASSESSMENT_V1, validate_predicate
from tests.compliance_fixtures import MakeProfile

DRAFTS = Options(include_drafts=True)


def in_force_day(rule: Rule) -> dt.date:
    """A day on which the rule is in force for the full profile (placed on the market after 2 Aug 2025)."""
    return dt.date.fromisoformat(rule["effectiveFrom"])


def find(packs: list[RulePack], rule_id: str) -> tuple[Rule, RulePack]:
    for pack in packs:
        for rule in pack.rules:
            if rule.id == rule_id:
                return rule, pack
    raise KeyError(rule_id)


def status(
    rule_id: str, packs: list[RulePack], profile: DeploymentProfile, day: str, options: Options = DRAFTS
) -> Finding:
    rule, pack = find(packs, rule_id)
    return evaluate_rule(rule, pack, profile, dt.date.fromisoformat(day), options)


def test_packs_cover_the_required_regimes(all_packs: list[RulePack]) -> None:
    ids = {r.id for p in all_packs for r in p.rules}
    for required in (
        "EU-AIA-ART53-1A",
        "EU-AIA-ART53-1D",
        "EU-AIA-ART52",
        "EU-AIA-ART55-1A",
        "EU-AIA-ART50-1",
        "EU-AIA-ART9",
        "EU-AIA-ART73",
        "CN-GAI-ART17",
        "CN-LABEL-EXPLICIT",
        "CN-LABEL-IMPLICIT",
        "CN-ANTHRO-DRAFT-SECASSESS",
        "CN-ANTHRO-SECASSESS",
        "US-NIST-RMF-GOVERN",
        "US-NIST-RMF-MANAGE",
        "US-NIST-600-1-CBRN",
        "US-NIST-600-1-VALUE-CHAIN",
    ):
        assert required in ids
    assert len([i for i in ids if i.startswith("US-NIST-600-1-")]) == 12
    for pack in all_packs:
        for rule in pack.rules:
            assert rule["source"]["title"] and rule["instrument"] and rule["article"], rule.id
            if pack.jurisdiction == "US":
                assert rule["obligation"] == "voluntary"
        assert "not legal advice" in pack.disclaimer


@pytest.mark.parametrize(
    "rule_id", [r.id for n in ("eu-ai-act", "cn-cac", "us-nist-ai-rmf") for r in builtin_pack(n).rules]
)
def test_every_rule_satisfied_and_not_satisfied(
    rule_id: str, all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    rule, pack = find(all_packs, rule_id)
    day = in_force_day(rule)
    ok = evaluate_rule(rule, pack, make_profile(), day, DRAFTS)
    assert ok.status == SATISFIED, ok.reason
    assert {e["state"] for e in ok.to_json()["evidence"]} == {"verified"}
    # the deployer declares a required control as not implemented
    control = fields(rule["satisfiedWhen"])[0]
    off = evaluate_rule(rule, pack, make_profile(**{control.replace(".", "__"): False}), day, DRAFTS)
    assert off.status == NOT_SATISFIED and "declared not implemented" in off.reason
    # the control is not declared at all
    unknown = evaluate_rule(rule, pack, make_profile(**{control.replace(".", "__"): None}), day, DRAFTS)
    assert unknown.status == INSUFFICIENT
    # the day before it applies
    before = evaluate_rule(rule, pack, make_profile(), day - dt.timedelta(days=1), DRAFTS)
    assert before.status == NOT_APPLICABLE and f"applies from {rule['effectiveFrom']}" in before.reason


def test_evidence_digest_mismatch_is_not_satisfied(
    all_packs: list[RulePack], make_profile: MakeProfile, tmp_path: Path
) -> None:
    (tmp_path / "technical-documentation.txt").write_text("swapped after hashing\n")
    result = status("EU-AIA-ART53-1A", all_packs, make_profile(), "2026-11-27")
    assert result.status == NOT_SATISFIED
    assert "does not match the declared" in result.reason
    assert result.to_json()["evidence"][0]["state"] == "digest-mismatch"


def test_missing_or_unreferenced_evidence_is_insufficient(
    all_packs: list[RulePack], make_profile: MakeProfile, tmp_path: Path
) -> None:
    (tmp_path / "copyright-policy.txt").unlink()
    gone = status("EU-AIA-ART53-1C", all_packs, make_profile(), "2026-11-27")
    assert gone.status == INSUFFICIENT and "cannot be read" in gone.reason
    none = status("EU-AIA-ART53-1D", all_packs, make_profile(evidence=[]), "2026-11-27")
    assert none.status == INSUFFICIENT and "training-content-summary" in none.reason


def test_uri_evidence_with_declared_digest_counts_as_declared(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    evidence = [{"kind": "copyright-policy", "uri": "https://example.org/policy.pdf", "sha256": "ab" * 32}]
    result = status("EU-AIA-ART53-1C", all_packs, make_profile(evidence=evidence), "2026-11-27")
    assert result.status == SATISFIED
    assert result.to_json()["evidence"] == [
        {
            "kind": "copyright-policy",
            "location": "https://example.org/policy.pdf",
            "state": "declared",
            "digest": {"sha256": "ab" * 32},
        }
    ]


@pytest.mark.parametrize(
    "rule_id", ["CN-ANTHRO-DISCLOSE", "CN-ANTHRO-REMINDER", "CN-ANTHRO-MINORS", "CN-ANTHRO-SECASSESS"]
)
def test_cn_anthropomorphic_final_measures_from_15_july_2026(
    rule_id: str, all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    before = status(rule_id, all_packs, make_profile(), "2026-07-14")
    assert before.status == NOT_APPLICABLE
    assert before.reason.startswith("not yet in force: applies from 2026-07-15")
    assert status(rule_id, all_packs, make_profile(), "2026-07-15").status == SATISFIED


def test_cn_anthropomorphic_draft_until_final_takes_effect(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    profile = make_profile()
    default = status("CN-ANTHRO-DRAFT-SECASSESS", all_packs, profile, "2026-07-14", Options())
    assert default.status == NOT_APPLICABLE and "draft" in default.reason
    assert status("CN-ANTHRO-DRAFT-SECASSESS", all_packs, profile, "2026-07-14").status == SATISFIED
    after = status("CN-ANTHRO-DRAFT-SECASSESS", all_packs, profile, "2026-07-15")
    assert after.status == NOT_APPLICABLE and "no longer in force" in after.reason
    assert status("CN-ANTHRO-DRAFT-SECASSESS", all_packs, profile, "2025-12-26").status == NOT_APPLICABLE


def test_final_measures_scope_is_emotional_companionship(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    assistant = make_profile(features__emotionalCompanionship=False)
    assert status("CN-ANTHRO-DISCLOSE", all_packs, assistant, "2026-08-01").status == NOT_APPLICABLE
    # the draft's broader scope (any human-like interaction) still covered it
    assert status("CN-ANTHRO-DRAFT-DISCLOSE", all_packs, assistant, "2026-01-10").status == SATISFIED


@pytest.mark.parametrize(
    ("registered", "mau", "expected"),
    [
        (999_999, 99_999, NOT_APPLICABLE),
        (1_000_000, 0, SATISFIED),
        (1_000_001, 0, SATISFIED),
        (0, 99_999, NOT_APPLICABLE),
        (0, 100_000, SATISFIED),
        (0, 100_001, SATISFIED),
        (999_999, 100_000, SATISFIED),
    ],
)
@pytest.mark.parametrize(
    ("rule_id", "day"), [("CN-ANTHRO-SECASSESS", "2026-08-01"), ("CN-ANTHRO-DRAFT-SECASSESS", "2026-02-01")]
)
def test_cn_security_assessment_thresholds(
    registered: int,
    mau: int,
    expected: str,
    rule_id: str,
    day: str,
    all_packs: list[RulePack],
    make_profile: MakeProfile,
) -> None:
    profile = make_profile(users__registered=registered, users__monthlyActive=mau)
    result = status(rule_id, all_packs, profile, day)
    assert result.status == expected, result.reason


def test_thresholds_unknown_users_is_insufficient_and_material_change_triggers(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    unknown = status("CN-ANTHRO-SECASSESS", all_packs, make_profile(users=None), "2026-08-01")
    assert unknown.status == INSUFFICIENT and "users.registered" in unknown.reason
    small = make_profile(users__registered=10, users__monthlyActive=10, features__materialChange=True)
    assert status("CN-ANTHRO-SECASSESS", all_packs, small, "2026-08-01").status == SATISFIED


@pytest.mark.parametrize(
    ("flop", "expected"), [(1.0e25, NOT_APPLICABLE), (1.01e25, SATISFIED), (9e24, NOT_APPLICABLE)]
)
def test_eu_systemic_risk_threshold_is_greater_than_1e25(
    flop: float, expected: str, all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    profile = make_profile(model__trainingComputeFlop=flop)
    assert status("EU-AIA-ART55-1A", all_packs, profile, "2026-11-27").status == expected
    assert status("EU-AIA-ART52", all_packs, profile, "2026-11-27").status == expected


def test_eu_designated_systemic_risk_and_open_source_exemption(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    small_open = make_profile(model__trainingComputeFlop=1e23, model__openSource=True)
    assert status("EU-AIA-ART53-1A", all_packs, small_open, "2026-11-27").status == NOT_APPLICABLE
    assert status("EU-AIA-ART53-1C", all_packs, small_open, "2026-11-27").status == SATISFIED  # never exempt
    designated = make_profile(
        model__trainingComputeFlop=1e23, model__openSource=True, model__systemicRiskDesignated=True
    )
    assert status("EU-AIA-ART53-1A", all_packs, designated, "2026-11-27").status == SATISFIED
    unknown = make_profile(model__trainingComputeFlop=1e23, model__systemicRiskDesignated=None)
    assert status("EU-AIA-ART55-1A", all_packs, unknown, "2026-11-27").status == INSUFFICIENT


def test_gpai_placed_on_market_before_august_2025_has_until_2027(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    legacy = make_profile(model__placedOnMarket="2025-03-01")
    early = status("EU-AIA-ART53-1A", all_packs, legacy, "2026-11-27")
    assert early.status == NOT_APPLICABLE and "applies from 2027-08-02" in early.reason
    assert status("EU-AIA-ART53-1A", all_packs, legacy, "2027-08-02").status == SATISFIED


def test_digital_omnibus_dates_only_on_request(all_packs: list[RulePack], make_profile: MakeProfile) -> None:
    profile = make_profile()
    in_force = status("EU-AIA-ART9", all_packs, profile, "2027-01-15", Options())
    assert in_force.status == SATISFIED
    provisional = status(
        "EU-AIA-ART9", all_packs, profile, "2027-01-15", Options(apply_pending_amendments=True)
    )
    assert provisional.status == NOT_APPLICABLE and "applies from 2027-12-02" in provisional.reason
    before = status("EU-AIA-ART9", all_packs, profile, "2026-08-01", Options())
    assert (
        "Digital Omnibus" in before.reason
        and "2027-12-02" in before.reason
        and "not yet law" in before.reason
    )
    annex_i = status(
        "EU-AIA-ANNEXI", all_packs, profile, "2028-01-01", Options(apply_pending_amendments=True)
    )
    assert annex_i.status == NOT_APPLICABLE and "2028-08-02" in annex_i.reason


def test_no_annex_iii_use_case_means_high_risk_rules_do_not_apply(
    all_packs: list[RulePack], make_profile: MakeProfile
) -> None:
    profile = make_profile(useCases=[{"id": "chat"}])
    result = status("EU-AIA-ART14", all_packs, profile, "2026-11-27")
    assert result.status == NOT_APPLICABLE and "annexIIIAreas" in result.reason


def test_assessment_predicate_validates_and_keeps_policy_fields(make_profile: MakeProfile) -> None:
    assessment = assess(make_profile(), date=dt.date(2026, 11, 27))
    predicate = assessment.to_predicate(dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC))
    validate_predicate(COMPLIANCE_ASSESSMENT_V1, predicate)
    assert predicate["evaluationDate"] == "2026-11-27T00:00:00Z"
    assert predicate["assessedOn"] == "2026-11-27T12:00:00Z"
    assert {p["name"] for p in predicate["rulePack"]} == {"eu-ai-act", "cn-cac", "us-nist-ai-rmf"}
    assert all(p["digest"] == builtin_pack(p["name"]).digest for p in predicate["rulePack"])
    assert predicate["deploymentProfile"]["digest"] == make_profile().digest
    assert {f["jurisdiction"] for f in predicate["findings"]} == {"EU", "CN", "US"}
    assert (
        predicate["summary"]["total"]
        == len(predicate["findings"])
        == sum(predicate["summary"][s] for s in (SATISFIED, NOT_SATISFIED, NOT_APPLICABLE, INSUFFICIENT))
    )
    assert predicate["summary"][NOT_SATISFIED] == 0
    assert "not legal advice" in predicate["disclaimer"]
    broken = json.loads(json.dumps(predicate))
    broken["findings"][0]["status"] = "compliant"
    with pytest.raises(SchemaError):
        validate_predicate(COMPLIANCE_ASSESSMENT_V1, broken)


def test_profile_digest_changes_with_any_declared_fact(make_profile: MakeProfile) -> None:
    assert make_profile().digest == make_profile().digest
    assert make_profile().digest != make_profile(users__registered=2_000_001).digest


def test_pack_digest_is_over_parsed_content_not_formatting(tmp_path: Path) -> None:
    pack = builtin_pack("cn-cac")
    as_json = tmp_path / "cn.json"
    as_json.write_text(json.dumps(pack.document, indent=4, sort_keys=True))
    assert load_pack(as_json).digest == pack.digest
    changed = json.loads(json.dumps(pack.document))
    changed["rules"][0]["effectiveFrom"] = "2023-08-16"
    assert parse_pack(changed, "changed").digest != pack.digest


def test_malformed_packs_and_profiles_are_rejected(tmp_path: Path, make_profile: MakeProfile) -> None:
    doc = json.loads(json.dumps(builtin_pack("us-nist-ai-rmf").document))
    bad_op = json.loads(json.dumps(doc))
    bad_op["rules"][0]["applicability"] = {"field": "users.registered", "approximately": 3}
    with pytest.raises(SchemaError):
        parse_pack(bad_op, "bad")
    dup = json.loads(json.dumps(doc))
    dup["rules"].append(dup["rules"][0])
    with pytest.raises(SchemaError, match="duplicate rule ids"):
        parse_pack(dup, "dup")
    no_source = json.loads(json.dumps(doc))
    del no_source["rules"][0]["source"]
    with pytest.raises(SchemaError):
        parse_pack(no_source, "no source")
    with pytest.raises(UsageError, match="no built-in rule pack"):
        builtin_pack("../../etc/passwd")
    with pytest.raises(SchemaError):
        make_profile(users__registered="many")
    with pytest.raises(SchemaError):
        make_profile(evidence=[{"kind": "x", "uri": "https://example.org/no-digest"}])


def test_condition_evaluator_is_three_valued_and_explains() -> None:
    from attest.compliance.conditions import evaluate, why_false

    ctx = {"users": {"registered": 5}, "roles": ["deployer"], "flag": True, "day": "2026-07-15"}
    assert evaluate({"field": "users.registered", "gte": 5}, ctx) is True
    assert evaluate({"field": "users.monthlyActive", "gte": 5}, ctx) is None
    assert evaluate({"any": [{"field": "users.monthlyActive", "gte": 5}, {"field": "flag", "eq": True}]}, ctx)
    assert (
        evaluate({"all": [{"field": "users.monthlyActive", "gte": 5}, {"field": "flag", "eq": False}]}, ctx)
        is False
    )
    assert evaluate({"not": {"field": "nothing", "eq": 1}}, ctx) is None
    assert evaluate({"field": "nothing", "exists": False}, ctx) is True
    assert evaluate({"field": "flag", "eq": 1}, ctx) is False  # a boolean is not the number 1
    assert evaluate({"field": "flag", "gte": 0}, ctx) is None  # wrong type: unknown, not false
    assert evaluate({"field": "day", "lt": "2026-07-16"}, ctx) is True
    assert evaluate({"field": "roles", "intersects": ["provider", "deployer"]}, ctx) is True
    assert evaluate({"field": "users.__class__", "exists": True}, ctx) is False  # plain lookups, nothing else
    explained = why_false(
        {"all": [{"field": "flag", "eq": True}, {"field": "users.registered", "gt": 9}]}, ctx
    )
    assert explained == "users.registered > 9 is false (profile: 5)"


def test_yaml_dates_stay_strings_and_exponents_are_numbers() -> None:
    from attest.compliance._yaml import loads

    doc = loads("d: 2026-07-15\nf: 1e25\ng: 1.0e+25\nh: 7\n", "test")
    assert doc == {"d": "2026-07-15", "f": 1e25, "g": 1e25, "h": 7}
    with pytest.raises(UsageError, match="not valid YAML"):
        loads("a: [1\n", "test")


def test_rule_dates_and_rule_id_clashes_are_checked(make_profile: MakeProfile) -> None:
    doc = json.loads(json.dumps(builtin_pack("cn-cac").document))
    draft = next(r for r in doc["rules"] if "effectiveUntil" in r)
    draft["effectiveUntil"] = draft["effectiveFrom"]
    with pytest.raises(SchemaError, match="ends"):
        parse_pack(doc, "backwards")
    pack = builtin_pack("us-nist-ai-rmf")
    with pytest.raises(UsageError, match="more than one pack"):
        assess(make_profile(), [pack, pack], dt.date(2026, 11, 27))
