"""Golden keyless bundles from a (since discarded) local trust domain keep verifying.

They were made by ``python -m tests.sigstore_domain.golden tests/golden/sigstore``. Their 10-minute
Fulcio certificates expired long ago: verification must take the signing time from the SET or the
RFC 3161 timestamp, never from the clock. A sigstore-python (or sigstore-js) upgrade that breaks the
bundle format, or starts using the current time, fails here.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509

from attest.verifying import verify_bundle
from tests.core_fixtures import RunAttest
from tests.jsverify import js_verify
from tests.sigstore_domain import VARIANTS
from tests.sigstore_fixtures import keyless_trust

GOLDEN = Path(__file__).resolve().parent / "golden" / "sigstore"
META = json.loads((GOLDEN / "identity.json").read_text())


def _leaf(doc: dict[str, object]) -> x509.Certificate:
    vm = doc["verificationMaterial"]
    assert isinstance(vm, dict)
    return x509.load_der_x509_certificate(base64.b64decode(vm["certificate"]["rawBytes"]))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_golden_bundle_verifies_after_certificate_expiry(variant: str, js_verifier: None) -> None:
    path = GOLDEN / f"{variant}.sigstore.json"
    doc = json.loads(path.read_text())
    assert _leaf(doc).not_valid_after_utc < dt.datetime.now(dt.UTC), "golden certificate should have expired"
    trust = keyless_trust(GOLDEN / "trusted_root.json", identity=META["identity"], issuer=META["issuer"])
    att = verify_bundle(path.read_bytes(), trust, expected_digest=META["modelDigest"])
    assert att.signer.identity == META["identity"]
    assert att.statement.subjects[0].name == "golden/tiny"
    js = js_verify(path, GOLDEN / "trusted_root.json", META["identity"], META["issuer"])
    assert js["subjectAlternativeName"] == META["identity"]


def test_golden_model_verifies_through_cli(run_attest: RunAttest) -> None:
    args = ["verify", GOLDEN / "model", "--trust-config", GOLDEN / "trusted_root.json"]
    for variant in VARIANTS:
        args += ["--bundle", GOLDEN / f"{variant}.sigstore.json"]
    result = run_attest(*args, "--identity", META["identity"], "--issuer", META["issuer"], "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    decision = json.loads(result.stdout)
    assert decision["modelDigest"] == META["modelDigest"]
    assert len(decision["evidence"]) >= 1
