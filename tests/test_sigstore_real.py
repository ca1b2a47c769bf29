"""Real bundles from the world (``tests/data/real``): the project interoperates, not only with itself.

- An OpenSSF model-signing v1.0 signature made on the production public-good instance (Rekor v1)
  verifies offline through ``attest verify`` with its signer's identity, and fails with another
  identity or a changed file.
- A staging DSSE bundle (Rekor v2 + TSA) passes the signature check but is refused because its
  subject is not the file it sits beside.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from attest._sigstore import verify_keyless_bundle
from attest.errors import VerificationError
from attest.verifying import IdentityRule, Trust, verify_bundle
from tests.core_fixtures import RunAttest
from tests.jsverify import js_verify

OMS_IDENTITY = "stefanb@us.ibm.com"
OMS_ISSUER = "https://sigstore.verify.ibm.com/oauth2"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def oms_model(shared_fixtures: Path, tmp_path: Path) -> Path:
    model = tmp_path / "v1.1.0-sigstore"
    shutil.copytree(shared_fixtures / "oms-real" / "v1.1.0-sigstore", model)
    for p in model.iterdir():
        p.chmod(0o644)
    return model


def _verify_oms(
    run_attest: RunAttest, model: Path, identity: str = OMS_IDENTITY
) -> tuple[int, dict[str, object]]:
    result = run_attest(
        "verify", model, "--bundle", model / "model.sig", "--identity", identity, "--issuer", OMS_ISSUER,
        "--offline", "--json",
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_production_oms_signature_verifies_offline(run_attest: RunAttest, oms_model: Path) -> None:
    rc, decision = _verify_oms(run_attest, oms_model)
    assert rc == 0, decision
    assert decision["allowed"] is True
    signer = decision["evidence"][0]["signer"]  # type: ignore[index]
    assert signer == {"kind": "sigstore", "identity": OMS_IDENTITY, "issuer": OMS_ISSUER}


def test_production_oms_signature_wrong_identity(run_attest: RunAttest, oms_model: Path) -> None:
    rc, decision = _verify_oms(run_attest, oms_model, identity="someone-else@us.ibm.com")
    assert rc == 1
    assert decision["allowed"] is False
    # the bundle is reported as rejected (it does not count as evidence), with sigstore's reason
    assert "SANs do not match someone-else@us.ibm.com" in json.dumps(decision["rejected"])


def test_production_oms_signature_changed_file(run_attest: RunAttest, oms_model: Path) -> None:
    data = bytearray((oms_model / "signme-1").read_bytes())
    data[0] ^= 0x01
    (oms_model / "signme-1").write_bytes(bytes(data))
    rc, decision = _verify_oms(run_attest, oms_model)
    assert rc == 1, decision
    assert "MODEL_FILES_CHANGED" in json.dumps(decision["reasons"])
    assert "signme-1" in json.dumps(decision["reasons"])


def test_production_oms_signature_ignored_file_may_change(run_attest: RunAttest, oms_model: Path) -> None:
    """``ignore-me`` was excluded by the signer; the verifier re-applies the recorded ignores."""
    (oms_model / "ignore-me").write_text("changed after signing\n")
    rc, decision = _verify_oms(run_attest, oms_model)
    assert rc == 0, decision


def test_production_oms_signature_verifies_in_sigstore_js(shared_fixtures: Path, js_verifier: None) -> None:
    """sigstore-js agrees, with the production trust root embedded in sigstore-python."""
    import sigstore

    root = (
        Path(sigstore.__file__).parent
        / "_store"
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        / "trusted_root.json"
    )
    js_verify(shared_fixtures / "oms-real" / "v1.1.0-sigstore" / "model.sig", root, OMS_IDENTITY, OMS_ISSUER)


def test_staging_dsse_bundle_signature_ok_but_subject_refused(shared_fixtures: Path) -> None:
    folder = shared_fixtures / "sigstore-real"
    raw = (folder / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    trust = Trust(identities=[IdentityRule(GITHUB_ISSUER, identity=BEACON)], staging=True, offline=True)
    payload, signer = verify_keyless_bundle(json.loads(raw), trust)  # the signature check passes
    assert signer.identity == BEACON
    assert json.loads(payload)["subject"][0]["name"] == "a.txt"
    file_digest = "sha256:" + hashlib.sha256((folder / "a.txt").read_bytes()).hexdigest()
    with pytest.raises(VerificationError, match=r"subject digest sha256:a0cfc712.* is not the model digest"):
        verify_bundle(raw, trust, expected_digest=file_digest)


def test_staging_dsse_bundle_wrong_identity(shared_fixtures: Path) -> None:
    raw = (shared_fixtures / "sigstore-real" / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    trust = Trust(
        identities=[IdentityRule(GITHUB_ISSUER, identity_regex=r"https://github\.com/evil/.*")],
        staging=True,
        offline=True,
    )
    with pytest.raises(VerificationError, match="matches"):
        verify_keyless_bundle(json.loads(raw), trust)
