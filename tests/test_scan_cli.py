"""``attest scan`` end to end through the real CLI (subprocess), static mode and error paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from attest.predicates import BACKDOOR_SCAN_V1, validate_predicate
from tests.core_fixtures import RunAttest


def test_scan_static_only_json_fails_on_malicious(
    static_corpus: tuple[list[Path], list[Path]], run_attest: RunAttest, tmp_path: Path
) -> None:
    bad, _ = static_corpus
    out = tmp_path / "scan.json"
    result = run_attest("scan", bad[0].parent, "--static-only", "--json", "-o", out)
    assert result.returncode == 1, result.stderr
    printed = json.loads(result.stdout)
    written = json.loads(out.read_text())
    assert printed == written
    assert written["result"] == "FAILED"
    validate_predicate(BACKDOOR_SCAN_V1, written)
    assert "Traceback" not in result.stderr


def test_fail_on_never_and_summary(
    static_corpus: tuple[list[Path], list[Path]], run_attest: RunAttest
) -> None:
    bad, _ = static_corpus
    result = run_attest("scan", bad[0].parent, "--static-only", "--fail-on", "never")
    assert result.returncode == 0
    assert "FAILED" in result.stdout
    assert "pickle.global-dangerous" in result.stdout


def test_clean_file_passes(static_corpus: tuple[list[Path], list[Path]], run_attest: RunAttest) -> None:
    _, good = static_corpus
    result = run_attest("scan", good[0].parent, "--static-only", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"] == "PASSED"


def test_fail_on_warned(tmp_path: Path, run_attest: RunAttest) -> None:
    (tmp_path / "helper.py").write_text("x = 1\n")
    assert run_attest("scan", tmp_path, "--static-only").returncode == 0
    assert run_attest("scan", tmp_path, "--static-only", "--fail-on", "warned").returncode == 1


def test_usage_errors(tmp_path: Path, run_attest: RunAttest) -> None:
    missing = run_attest("scan", tmp_path / "nope")
    assert missing.returncode == 2
    bad_budget = run_attest("scan", tmp_path, "--budget", "huge")
    assert bad_budget.returncode == 2
    assert "Traceback" not in missing.stderr + bad_budget.stderr


def test_not_a_model_is_error_not_passed(tmp_path: Path, run_attest: RunAttest) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    result = run_attest("scan", tmp_path, "--json")
    assert result.returncode == 1
    predicate = json.loads(result.stdout)
    assert predicate["result"] == "ERROR"
    assert "config.json is missing" in predicate["errors"][0]
    assert "Traceback" not in result.stderr


def test_single_file_dynamic_is_error(
    static_corpus: tuple[list[Path], list[Path]], run_attest: RunAttest
) -> None:
    _, good = static_corpus
    safetensors = next(p for p in good if p.suffix == ".safetensors")
    result = run_attest("scan", safetensors, "--json")
    assert json.loads(result.stdout)["result"] == "ERROR"
    assert result.returncode == 1


def test_scan_output_signs_and_verifies(
    static_corpus: tuple[list[Path], list[Path]],
    run_attest: RunAttest,
    keypair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """The -o file is exactly what `attest sign --predicate-type .../backdoor-scan/v1` signs; the
    verified statement carries the scan result unchanged; a tampered result is refused at signing."""
    from attest.keys import fingerprint, load_public_key
    from attest.manifest import compute_manifest
    from attest.verifying import Trust, verify_bundle

    _, good = static_corpus
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(
        next(p for p in good if p.suffix == ".safetensors").read_bytes()
    )
    (model / "config.json").write_text('{"model_type": "llama"}')
    scan_file, bundle = tmp_path / "scan.json", tmp_path / "scan.sigstore.json"
    assert run_attest("scan", model, "--static-only", "-o", scan_file).returncode == 0
    key, pub = keypair

    def sign_scan(predicate: Path, *extra: object) -> subprocess.CompletedProcess[str]:
        return run_attest(
            "sign",
            model,
            "--key",
            key,
            "--predicate-type",
            BACKDOOR_SCAN_V1,
            "--predicate",
            predicate,
            *extra,
        )

    signed = sign_scan(scan_file, "-o", bundle)
    assert signed.returncode == 0, signed.stderr
    public = load_public_key(pub)
    verified = verify_bundle(
        bundle.read_bytes(), Trust(keys={fingerprint(public): public}), compute_manifest(model).digest
    )
    assert verified.predicate_type == BACKDOOR_SCAN_V1
    assert verified.predicate == json.loads(scan_file.read_text())
    assert verified.predicate["result"] == "PASSED"

    tampered = json.loads(scan_file.read_text())
    tampered["result"] = "CERTIFIED_CLEAN"
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    refused = sign_scan(tmp_path / "tampered.json")
    assert refused.returncode != 0
    assert "result" in refused.stderr


def test_a_suspected_trigger_is_judged_without_a_scan(
    organisms: dict[str, Path], run_attest: RunAttest, tmp_path: Path
) -> None:
    """``--trigger`` gives a string the scan's verdict: the planted trigger of the appended-URL
    organism meets a rule (exit 1, the URL as its span, the JSON also written with -o); on the clean
    twin it meets none (exit 0); a model that cannot run is undecided (exit 3), and an empty string
    or a static-only combination is a usage error (exit 2), each in one line without a traceback."""
    from tests.scan_fixtures import TRIGGERS

    trigger = TRIGGERS["poisoned-appended"] + " "
    out = tmp_path / "judged.json"
    planted = run_attest("scan", organisms["poisoned-appended"], "--trigger", trigger, "--json", "-o", out)
    assert planted.returncode == 1, planted.stderr
    doc = json.loads(planted.stdout)
    assert json.loads(out.read_text()) == doc
    (judged,) = doc["judgements"]
    assert judged["trigger"] == trigger and judged["rule"] != "none" and judged["margin"] >= 0
    assert "evil" in judged["appendedSpan"] + judged["collapsedResponse"]
    twin = run_attest("scan", organisms["clean-twin"], "--trigger", trigger, "--trigger", " purple lamp")
    assert twin.returncode == 0, twin.stderr
    assert "trigger judgements" in twin.stdout and "none" in twin.stdout
    (tmp_path / "notes.txt").write_text("hello\n")
    undecided = run_attest("scan", tmp_path, "--trigger", trigger)
    assert undecided.returncode == 3 and "config.json is missing" in undecided.stderr
    for extra in (["--trigger", "  "], ["--trigger", trigger, "--static-only"]):
        usage = run_attest("scan", organisms["clean-twin"], *extra)
        assert usage.returncode == 2, usage.stderr
    for result in (planted, twin, undecided, usage):
        assert "Traceback" not in result.stderr
