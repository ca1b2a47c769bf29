"""Publishing from CI with an ambient identity, and policies naming Sigstore identities per role."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from attest.manifest import compute_manifest
from tests.core_fixtures import RunAttest, make_model
from tests.jsverify import js_verify
from tests.sigstore_fixtures import SIGNER_IDENTITY, RunningDomain, SignedSet


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS"}}
    return {**env, **extra}


def test_github_actions_ambient_identity(
    sigstore_domain: RunningDomain, run_attest: RunAttest, tmp_path: Path, js_verifier: None
) -> None:
    """`attest sign` in a GitHub Actions job (id-token: write) needs no token option at all."""
    domain = sigstore_domain.domain
    model = make_model(tmp_path / "model")
    bundle = tmp_path / "ci.sigstore.json"
    tc = sigstore_domain.trust_configs["rekor2-tsa"]
    result = run_attest(
        "sign", model, "--trust-config", tc, "-o", bundle, env=_clean_env(**domain.actions_env())
    )
    assert result.returncode == 0, result.stderr
    result = run_attest(
        "verify", model, "--bundle", bundle, "--trust-config", tc, "--json",
        "--identity", domain.actions_workflow, "--issuer", domain.issuer,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["evidence"][0]["signer"]["identity"] == domain.actions_workflow
    js = js_verify(bundle, sigstore_domain.trusted_root, domain.actions_workflow, domain.issuer)
    assert js["subjectAlternativeName"] == domain.actions_workflow


def test_github_actions_without_permission_is_a_clear_error(
    sigstore_domain: RunningDomain, run_attest: RunAttest, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    env = _clean_env(GITHUB_ACTIONS="true")
    env.pop("ACTIONS_ID_TOKEN_REQUEST_TOKEN", None)
    tc = sigstore_domain.trust_configs["rekor1-set"]
    result = run_attest("sign", model, "--trust-config", tc, "-o", tmp_path / "b.json", env=env)
    assert result.returncode == 1
    assert "error: ambient OIDC credential detection failed" in result.stderr
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" in result.stderr
    assert not (tmp_path / "b.json").exists()


def _policy(path: Path, publisher: dict[str, str]) -> Path:
    doc = {
        "apiVersion": "model-attest.dev/policy/v1",
        "name": "sigstore-publisher",
        "signers": {"publisher": [publisher]},
        "require": [
            {"predicateType": "https://model-attest.dev/model-manifest/v1", "signedBy": ["publisher"]}
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_policy_names_sigstore_identity_per_role(
    keyless_signed: SignedSet, sigstore_domain: RunningDomain, run_attest: RunAttest, tmp_path: Path
) -> None:
    issuer = sigstore_domain.issuer
    base = ("verify", keyless_signed.model, "--bundle", keyless_signed.bundles["rekor1-tsa"])
    base += ("--trust-config", sigstore_domain.trusted_root, "--json")

    exact = _policy(tmp_path / "exact.yaml", {"identity": SIGNER_IDENTITY, "issuer": issuer})
    result = run_attest(*base, "--policy", exact)
    assert result.returncode == 0, result.stdout + result.stderr
    decision = json.loads(result.stdout)
    assert decision["modelDigest"] == compute_manifest(keyless_signed.model).digest

    regex = _policy(tmp_path / "regex.yaml", {"identityRegex": r"[a-z]+@example\.test", "issuer": issuer})
    assert run_attest(*base, "--policy", regex).returncode == 0

    other = _policy(tmp_path / "other.yaml", {"identity": "release-bot@example.test", "issuer": issuer})
    result = run_attest(*base, "--policy", other)
    assert result.returncode == 1
    assert "release-bot@example.test" in result.stdout

    wrong_issuer = _policy(
        tmp_path / "iss.yaml", {"identity": SIGNER_IDENTITY, "issuer": "https://oidc.other.test"}
    )
    result = run_attest(*base, "--policy", wrong_issuer)
    assert result.returncode == 1
    assert json.loads(result.stdout)["allowed"] is False
