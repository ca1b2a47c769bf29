"""``format: date-time`` is asserted by the one predicate validator, so signing refuses exactly what
the registry refuses at publish, while the verifier leaves sloppy times to the policy engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest.errors import SchemaError
from attest.keys import load_public_key
from attest.manifest import compute_manifest
from attest.predicates import REVOCATION_V1, check_rfc3339, validate_predicate
from attest.signing import sign_attestation
from attest.statement import build_statement
from attest.verifying import Trust, verify_bundle
from tests.registry_fixtures import auth, make_world, model_digest

GOOD_TIMES = [
    "2026-11-29T22:00:00Z",
    "2026-11-29t22:00:00z",  # RFC 3339 5.6 allows lower case
    "2026-11-29T22:00:00.123456789Z",
    "2026-11-29T22:00:00+05:30",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
]
BAD_TIMES = [
    "yesterday",
    "2026-11-29",  # a date is not a date-time
    "2026-11-29T22:00:00",  # no offset: which instant?
    "2026-11-29 22:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-29T24:00:00Z",
    "2026-11-29T22:00:00.1234567890Z",
    "9999-12-31T23:59:59-23:59",  # after year 9999 in UTC
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "２０２６-11-29T22:00:00Z",  # fullwidth digits
    "",
]


def _revocation(when: str) -> dict[str, object]:
    return {"revokedDigest": model_digest("acme/old"), "reason": "superseded", "revokedOn": when}


@pytest.mark.parametrize("value", GOOD_TIMES)
def test_rfc3339_accepts(value: str) -> None:
    assert check_rfc3339(value)
    validate_predicate(REVOCATION_V1, _revocation(value))


@pytest.mark.parametrize("value", BAD_TIMES)
def test_rfc3339_refuses(value: str) -> None:
    assert not check_rfc3339(value)
    with pytest.raises(SchemaError, match=r"revokedOn.*date-time"):
        validate_predicate(REVOCATION_V1, _revocation(value))
    validate_predicate(REVOCATION_V1, _revocation(value), check_formats=False)  # the verifier's view


def test_signing_refuses_what_the_registry_refuses(tmp_path: Path) -> None:
    """For each time: the signer signs it if and only if the registry stores it."""
    from fastapi.testclient import TestClient

    from registry import create_app

    world = make_world(tmp_path / "world")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00" * 16)
    manifest = compute_manifest(model)
    signer = world.alice.signer
    with TestClient(create_app(world.settings())) as client:
        # the revoked digest must be one the namespace published: publish its manifest first
        first = client.post(
            "/v1/attestations",
            content=json.dumps(sign_attestation(signer, manifest, "acme/old")).encode(),
            headers=auth(world.acme_token),
        )
        assert first.status_code == 201, first.text
        for value in [
            "2026-11-29T22:00:00Z",
            "yesterday",
            "2026-11-29T22:00:00",
            "9999-12-31T23:59:59-23:59",
        ]:
            predicate = {"revokedDigest": manifest.digest, "reason": "superseded", "revokedOn": value}
            try:
                bundle = sign_attestation(signer, manifest, "acme/old", REVOCATION_V1, predicate)
                signed = True
            except SchemaError:
                # what a careless tool could still produce: the same statement, signed unchecked
                bundle = signer.sign_statement(
                    build_statement("acme/old", manifest.digest, REVOCATION_V1, predicate)
                )
                signed = False
            before = client.get("/v1/log/checkpoint").json()["treeSize"]
            r = client.post(
                "/v1/attestations", content=json.dumps(bundle).encode(), headers=auth(world.acme_token)
            )
            assert (r.status_code == 201) is signed, (value, r.status_code, r.text)
            if not signed:
                assert r.status_code == 422 and "revokedOn" in r.json()["error"], r.text
                assert client.get("/v1/log/checkpoint").json()["treeSize"] == before  # nothing stored
                # the verifier itself stays lenient: the policy engine judges the time
                trust = Trust()
                trust.add_key(load_public_key(world.alice.public_pem))
                assert verify_bundle(bundle, trust).predicate["revokedOn"] == value
