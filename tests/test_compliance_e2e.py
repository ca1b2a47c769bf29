"""Both predicates signed with a key, verified and enforced by a policy through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from attest.constitution import digest_text
from tests.compliance_fixtures import MakeProfile
from tests.core_fixtures import RunAttest

COMPLIANCE = "https://model-attest.dev/compliance-assessment/v1"
CONSTITUTION = "https://model-attest.dev/constitution-binding/v1"
TEXT = "# Constitution\n\n## Honesty\nBe honest.\n\n## Care\nBe kind.\n"


def _sign(run_attest: RunAttest, model: Path, key: Path, out: Path, *extra: str) -> Path:
    result = run_attest("sign", model, "--key", key, "--name", "org/tiny", "-o", out, *extra)
    assert result.returncode == 0, result.stderr
    return out


def _policy(path: Path, pub: Path, approved: str) -> Path:
    shutil.copy(pub, path.parent / "publisher.pub")
    path.write_text(
        "apiVersion: model-attest.dev/policy/v1\n"
        "signers:\n  publisher:\n    - keyFile: publisher.pub\n"
        "require:\n"
        "  - predicateType: https://model-attest.dev/model-manifest/v1\n    signedBy: [publisher]\n"
        f"  - predicateType: {COMPLIANCE}\n    signedBy: [publisher]\n    jurisdictions: [EU]\n    maxAgeDays: 30\n"
        f"  - predicateType: {CONSTITUTION}\n    signedBy: [publisher]\n"
        f"    approvedConstitutions: ['sha256:{approved}']\n    relationships: [trained-with]\n"
    )
    return path


@pytest.mark.slow
def test_sign_verify_and_enforce_compliance_and_constitution(
    tmp_path: Path,
    model_dir: Path,
    keypair: tuple[Path, Path],
    run_attest: RunAttest,
    make_profile: MakeProfile,
) -> None:
    key, pub = keypair
    manifest = _sign(run_attest, model_dir, key, tmp_path / "manifest.sigstore.json")

    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(make_profile().document))
    good = tmp_path / "compliance.json"
    assert run_attest("comply", "--profile", profile, "-o", good).returncode == 0
    compliance = _sign(
        run_attest,
        model_dir,
        key,
        tmp_path / "compliance.sigstore.json",
        "--predicate-type",
        COMPLIANCE,
        "--predicate",
        good,
    )

    text = tmp_path / "constitution.md"
    text.write_bytes(TEXT.replace("\n", "\r\n").encode())  # the CRLF copy binds to the same canonical digest
    binding = tmp_path / "binding.json"
    result = run_attest(
        "constitution", "bind", model_dir, text, "--relationship", "trained-with", "-o", binding
    )
    assert result.returncode == 0, result.stderr
    bound = _sign(
        run_attest,
        model_dir,
        key,
        tmp_path / "binding.sigstore.json",
        "--predicate-type",
        CONSTITUTION,
        "--predicate",
        binding,
    )

    approved = digest_text(TEXT.encode()).canonical_sha256
    policy = _policy(tmp_path / "policy.yaml", pub, approved)

    def verify(*bundles: Path, pol: Path = policy) -> tuple[int, set[str]]:
        args: list[str | Path] = ["verify", model_dir, "--policy", pol, "--json"]
        for b in bundles:
            args += ["--bundle", b]
        out = run_attest(*args)
        assert "Traceback" not in out.stderr, out.stderr
        data = json.loads(out.stdout)
        return out.returncode, {r["code"] for r in data["reasons"]}

    code, reasons = verify(manifest, compliance, bound)
    assert code == 0, reasons

    # a not-satisfied EU finding denies
    bad_profile = tmp_path / "bad-profile.json"
    bad_profile.write_text(json.dumps(make_profile(controls__aiLiteracy=False).document))
    bad = tmp_path / "bad-compliance.json"
    assert run_attest("comply", "--profile", bad_profile, "-o", bad).returncode == 0
    failing = _sign(
        run_attest,
        model_dir,
        key,
        tmp_path / "bad.sigstore.json",
        "--predicate-type",
        COMPLIANCE,
        "--predicate",
        bad,
    )
    code, reasons = verify(manifest, failing, bound)
    assert code == 1 and "COMPLIANCE_NOT_SATISFIED" in reasons

    # a binding to a constitution that is not approved denies
    (tmp_path / "other").mkdir()
    other = _policy(tmp_path / "other" / "policy.yaml", pub, "ee" * 32)
    code, reasons = verify(manifest, compliance, bound, pol=other)
    assert code == 1 and "CONSTITUTION_NOT_APPROVED" in reasons
