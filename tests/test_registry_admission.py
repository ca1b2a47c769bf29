"""Admission over stored attestations: decisions, revocation, caching, Kubernetes AdmissionReview."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from attest.predicates import MODEL_MANIFEST_V1, REVOCATION_V1
from tests.registry_fixtures import RegistryWorld, auth, json_bytes, model_digest


def policy_doc(fingerprint: str) -> dict[str, Any]:
    return {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": fingerprint}]},
        "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}],
    }


@pytest.fixture
def admission_app(registry_world: RegistryWorld, tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from registry import create_app

    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(registry_world.alice.fingerprint)))
    with TestClient(create_app(registry_world.settings(policy_file=policy))) as client:
        yield client


def _review(uid: str, annotation: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "inference", "namespace": "ml"}
    if annotation is not None:
        meta["annotations"] = {"model-attest.dev/models": annotation}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ml",
            "operation": "CREATE",
            "userInfo": {"username": "dev"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": []}},
        },
    }


def test_evaluate_allow_deny_revoke_and_cache(registry_world: RegistryWorld, admission_app: Any) -> None:
    c, w = admission_app, registry_world
    digest = model_digest("acme/llama")
    policy = policy_doc(w.alice.fingerprint)

    unknown = c.post("/v1/admission/evaluate", json={"modelDigest": digest, "policy": policy}).json()
    assert unknown["allowed"] is False and "UNKNOWN_MODEL" in {r["code"] for r in unknown["reasons"]}

    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    first = c.post("/v1/admission/evaluate", json={"modelDigest": digest, "policy": policy}).json()
    assert first["allowed"] is True and first["cached"] is False
    assert (
        first["logEntries"][0]["logIndex"] == 0 and first["logEntries"][0]["inclusionProof"]["treeSize"] == 1
    )
    again = c.post("/v1/admission/evaluate", json={"modelDigest": digest, "policy": policy}).json()
    assert again["allowed"] is True and again["cached"] is True
    # the server's configured policy is used when the request names none
    assert c.post("/v1/admission/evaluate", json={"modelDigest": digest}).json()["allowed"] is True
    # a policy trusting someone else denies the same model
    other = c.post(
        "/v1/admission/evaluate", json={"modelDigest": digest, "policy": policy_doc(w.mallory.fingerprint)}
    ).json()
    assert other["allowed"] is False

    revocation = {
        "revokedDigest": digest,
        "reason": "weights leaked a backdoor",
        "revokedOn": "2026-11-27T12:00:00Z",
    }
    rb = w.alice.bundle("acme/llama", predicate_type=REVOCATION_V1, predicate=revocation)
    assert c.post("/v1/attestations", content=json_bytes(rb), headers=auth(w.acme_token)).status_code == 201
    revoked = c.post("/v1/admission/evaluate", json={"modelDigest": digest, "policy": policy}).json()
    assert revoked["allowed"] is False and revoked["cached"] is False
    reason = next(r for r in revoked["reasons"] if r["code"] == "REVOKED")
    assert "weights leaked a backdoor" in reason["message"]


def test_revocation_by_another_namespace_is_refused(
    registry_world: RegistryWorld, admission_app: Any
) -> None:
    c, w = admission_app, registry_world
    digest = model_digest("acme/llama")
    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    revocation = {"revokedDigest": digest, "reason": "griefing", "revokedOn": "2026-11-27T12:00:00Z"}
    rb = w.mallory.bundle("acme/llama", predicate_type=REVOCATION_V1, predicate=revocation)
    assert c.post("/v1/attestations", content=json_bytes(rb), headers=auth(w.evil_token)).status_code == 403
    assert c.post("/v1/admission/evaluate", json={"modelDigest": digest}).json()["allowed"] is True


def test_request_policy_cannot_read_server_files(admission_app: Any) -> None:
    policy = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"p": [{"keyFile": "/etc/passwd"}]},
        "require": [{"predicateType": MODEL_MANIFEST_V1}],
    }
    r = admission_app.post(
        "/v1/admission/evaluate", json={"modelDigest": model_digest("x"), "policy": policy}
    )
    assert r.status_code == 400 and "keyFile" in r.json()["error"]


def test_admission_review(registry_world: RegistryWorld, admission_app: Any) -> None:
    c, w = admission_app, registry_world
    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    good = f"acme/llama@{model_digest('acme/llama')}"
    r = c.post("/v1/admission/review", json=_review("uid-1", good)).json()
    assert r["kind"] == "AdmissionReview" and r["apiVersion"] == "admission.k8s.io/v1"
    assert r["response"]["uid"] == "uid-1" and r["response"]["allowed"] is True
    assert r["response"]["auditAnnotations"]["model-attest.dev/policy"].startswith("sha256:")

    unknown = f"acme/other@{model_digest('acme/other')}"
    r = c.post("/v1/admission/review", json=_review("uid-2", f"{good},{unknown}")).json()["response"]
    assert r["uid"] == "uid-2" and r["allowed"] is False and r["status"]["code"] == 403
    assert "acme/other" in r["status"]["message"] and "UNKNOWN_MODEL" in r["status"]["message"]

    r = c.post("/v1/admission/review", json=_review("uid-3", "acme/llama:latest")).json()["response"]
    assert r["allowed"] is False and "not org/name@sha256" in r["status"]["message"]

    r = c.post("/v1/admission/review", json=_review("uid-4", None)).json()["response"]
    assert r["allowed"] is True and r["warnings"]

    assert c.post("/v1/admission/review", json={"kind": "Nope"}).status_code == 400


def test_review_without_server_policy_denies(registry_world: RegistryWorld, registry_app: Any) -> None:
    c, w = registry_app, registry_world
    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    ref = f"acme/llama@{model_digest('acme/llama')}"
    r = c.post("/v1/admission/review", json=_review("u", ref)).json()["response"]
    assert r["allowed"] is False and "no policy" in r["status"]["message"]
