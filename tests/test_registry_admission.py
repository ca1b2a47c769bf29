"""Admission over stored attestations: decisions, revocation, caching, Kubernetes AdmissionReview."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from attest.predicates import MODEL_MANIFEST_V1, REVOCATION_V1
from tests.registry_fixtures import RegistryWorld, auth, json_bytes, model_digest


def policy_doc(fingerprint: str, **extra: Any) -> dict[str, Any]:
    """A manifest from the key ``fingerprint``; ``extra`` adds top-level fields (e.g. denyRevoked)."""
    return {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": fingerprint}]},
        "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}],
        **extra,
    }


def _meta(name: str, annotation: str | None) -> dict[str, Any]:
    """Object metadata, with the model-pinning annotation when ``annotation`` is given."""
    meta: dict[str, Any] = {"name": name, "namespace": "ml"}
    if annotation is not None:
        meta["annotations"] = {"model-attest.dev/models": annotation}
    return meta


@pytest.fixture
def admission_app(registry_world: RegistryWorld, tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from registry import create_app

    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(registry_world.alice.fingerprint)))
    with TestClient(create_app(registry_world.settings(policy_file=policy))) as client:
        yield client


def _review(uid: str, annotation: str | None) -> dict[str, Any]:
    meta = _meta("inference", annotation)
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
    assert r["response"]["auditAnnotations"]["policy"].startswith("default sha256:")

    unknown = f"acme/other@{model_digest('acme/other')}"
    r = c.post("/v1/admission/review", json=_review("uid-2", f"{good},{unknown}")).json()["response"]
    assert r["uid"] == "uid-2" and r["allowed"] is False and r["status"]["code"] == 403
    assert "acme/other" in r["status"]["message"] and "UNKNOWN_MODEL" in r["status"]["message"]

    r = c.post("/v1/admission/review", json=_review("uid-3", "acme/llama:latest")).json()["response"]
    assert r["allowed"] is False and "not org/name@sha256" in r["status"]["message"]

    # a pod that references no model is allowed silently: no warning, no audit annotations
    r = c.post("/v1/admission/review", json=_review("uid-4", None)).json()["response"]
    assert r["allowed"] is True and "warnings" not in r and "auditAnnotations" not in r

    assert c.post("/v1/admission/review", json={"kind": "Nope"}).status_code == 400


def test_review_without_server_policy_denies(registry_world: RegistryWorld, registry_app: Any) -> None:
    c, w = registry_app, registry_world
    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    ref = f"acme/llama@{model_digest('acme/llama')}"
    r = c.post("/v1/admission/review", json=_review("u", ref)).json()["response"]
    assert r["allowed"] is False and "no policy" in r["status"]["message"]


def _object_review(uid: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": uid, "operation": "CREATE", "object": obj},
    }


def _inference_service(storage: dict[str, Any], annotation: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta("llama", annotation),
        "spec": {"predictor": storage},
    }


def _image_volume_pod(
    reference: str, annotation: str | None = None, template: bool = False
) -> dict[str, Any]:
    pod_spec = {
        "containers": [{"name": "server", "image": "vllm/vllm-openai:v0.9.0"}],
        "volumes": [{"name": "model", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}],
    }
    meta = _meta("inference", annotation)
    if template:
        return {"kind": "Deployment", "metadata": meta, "spec": {"template": {"spec": pod_spec}}}
    return {"kind": "Pod", "metadata": meta, "spec": pod_spec}


def test_storage_references_are_model_references() -> None:
    from registry.admission import model_refs, storage_refs

    isvc = _inference_service(
        {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": "hf://acme/llama:3f2a9c"}}
    )
    assert [(s.where, s.name) for s in storage_refs(isvc)] == [
        ("spec.predictor.model.storageUri", "acme/llama")
    ]
    legacy = _inference_service({"sklearn": {"storageUri": "s3://bucket/models/acme/llama"}})
    assert [(s.where, s.name) for s in storage_refs(legacy)] == [
        ("spec.predictor.sklearn.storageUri", "acme/llama")
    ]
    oci = _inference_service({"model": {"storageUri": "oci://ghcr.io/acme/llama:v1"}})
    assert storage_refs(oci)[0].name == "acme/llama"
    pod = _image_volume_pod("registry.example:5000/acme/llama@sha256:" + "1" * 64)
    assert [(s.where, s.name) for s in storage_refs(pod)] == [
        ("spec.volumes[0].image.reference", "acme/llama")
    ]
    deploy = _image_volume_pod("ghcr.io/acme/llama:v2", template=True)
    assert storage_refs(deploy)[0].where == "spec.template.spec.volumes[0].image.reference"
    # an unpinned storage reference is a problem; a pinned one is a model reference to check
    refs, problems, references = model_refs(_object_review("u", isvc))
    assert refs == [] and references and "acme/llama" in problems[0] and "not pinned" in problems[0]
    pinned = _inference_service(isvc["spec"]["predictor"], f"acme/llama@{model_digest('acme/llama')}")
    refs, problems, _ = model_refs(_object_review("u", pinned))
    assert refs == [("acme/llama", model_digest("acme/llama"))] and problems == []
    # a pod with no model at all references nothing
    assert model_refs(_object_review("u", {"kind": "Pod", "spec": {"containers": []}})) == ([], [], False)


@pytest.mark.parametrize(
    "obj_for",
    [
        lambda ann: _inference_service({"model": {"storageUri": "hf://acme/llama"}}, ann),
        lambda ann: _inference_service({"pytorch": {"storageUri": "gs://b/acme/llama"}}, ann),
        lambda ann: _image_volume_pod("ghcr.io/acme/llama:v1", ann),
        lambda ann: _image_volume_pod("ghcr.io/acme/llama:v1", ann, template=True),
    ],
    ids=["kserve-model", "kserve-framework", "image-volume", "deployment-image-volume"],
)
def test_review_of_objects_that_load_models(
    registry_world: RegistryWorld, admission_app: Any, obj_for: Any
) -> None:
    c, w = admission_app, registry_world
    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    unpinned = c.post("/v1/admission/review", json=_object_review("a", obj_for(None))).json()["response"]
    assert unpinned["allowed"] is False and "not pinned" in unpinned["status"]["message"]
    good = obj_for(f"acme/llama@{model_digest('acme/llama')}")
    allowed = c.post("/v1/admission/review", json=_object_review("b", good)).json()["response"]
    assert allowed["allowed"] is True, allowed
    # pinned to a digest nobody attested: denied, naming the model
    bad = obj_for(f"acme/llama@{model_digest('acme/evil')}")
    denied = c.post("/v1/admission/review", json=_object_review("c", bad)).json()["response"]
    assert denied["allowed"] is False and "UNKNOWN_MODEL" in denied["status"]["message"]


def test_audit_annotation_keys_are_valid_for_kube_apiserver(
    registry_world: RegistryWorld, admission_app: Any
) -> None:
    """kube-apiserver prefixes each key with the webhook name and drops keys that are not bare
    qualified names (no '/', at most 63 characters)."""
    import re

    c, w = admission_app, registry_world
    c.post("/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token))
    refs = f"acme/llama@{model_digest('acme/llama')} acme/gone@{model_digest('acme/gone')}"
    r = c.post("/v1/admission/review", json=_review("k", refs)).json()["response"]
    keys = set(r["auditAnnotations"])
    assert {"decision", "policy"} <= keys and len(keys) == 4
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", key) and len(key) <= 63, key
    assert r["auditAnnotations"]["decision"] == "denied"


def test_review_chooses_a_named_server_policy(registry_world: RegistryWorld, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from registry import create_app

    w = registry_world
    mallory_policy = tmp_path / "mallory.yaml"
    mallory_policy.write_text(yaml.safe_dump(policy_doc(w.mallory.fingerprint)))
    alice_policy = tmp_path / "alice.yaml"
    alice_policy.write_text(yaml.safe_dump(policy_doc(w.alice.fingerprint)))
    settings = w.settings(policies={"alice": alice_policy, "mallory": mallory_policy})
    with TestClient(create_app(settings)) as c:
        c.post(
            "/v1/attestations", content=json_bytes(w.alice.bundle("acme/llama")), headers=auth(w.acme_token)
        )
        ref = f"acme/llama@{model_digest('acme/llama')}"
        ok = c.post("/v1/admission/review?policy=alice", json=_review("1", ref)).json()["response"]
        assert ok["allowed"] is True and ok["auditAnnotations"]["policy"].startswith("alice sha256:")
        no = c.post("/v1/admission/review/mallory", json=_review("2", ref)).json()["response"]
        assert no["allowed"] is False
        # two policies and none named default: the webhook URL must say which
        r = c.post("/v1/admission/review", json=_review("3", ref)).json()["response"]
        assert r["allowed"] is False and "name a policy" in r["status"]["message"]
        r = c.post("/v1/admission/review?policy=nope", json=_review("4", ref)).json()["response"]
        assert r["allowed"] is False and "no policy named" in r["status"]["message"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 / localhost (what a webhook's caBundle trusts)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model-attest-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_over_tls_for_a_webhook(registry_world: RegistryWorld, tmp_path: Path) -> None:
    """`attest serve --tls-cert --tls-key`: an AdmissionReview over HTTPS from a client that trusts only
    the webhook's certificate (as kube-apiserver trusts only the caBundle)."""
    import ssl
    import subprocess
    import sys
    import time

    import httpx

    from tests.registry_fixtures import REPO, free_port

    w = registry_world
    cert, key = _self_signed(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(w.alice.fingerprint)))
    port = free_port()
    serve = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--data-dir", str(w.data_dir)]
    # a certificate without its key is a one-line usage error, before anything starts
    half = subprocess.run(
        [*serve, "--tls-cert", str(cert)], cwd=REPO, env=w.env(), capture_output=True, text=True
    )
    assert half.returncode == 2 and "--tls-key" in half.stderr and "Traceback" not in half.stderr
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [*serve, "--policy", str(policy), "--tls-cert", str(cert), "--tls-key", str(key)],
        cwd=REPO,
        env=w.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    trusting = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=trusting, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                try:
                    if client.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            bundle = json_bytes(w.alice.bundle("acme/llama"))
            assert (
                client.post(url + "/v1/attestations", content=bundle, headers=auth(w.acme_token)).status_code
                == 201
            )
            ref = f"acme/llama@{model_digest('acme/llama')}"
            r = client.post(url + "/v1/admission/review", json=_review("tls-1", ref))
            assert r.status_code == 200 and r.json()["response"]["allowed"] is True
        # a client that does not trust the certificate is refused, and plain HTTP gets no answer
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/healthz", timeout=5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--policy", "missing.yaml"], "not a readable file"),
        (["--policy", "bad/name=policy.yaml"], "policy name 'bad/name'"),
        (["--policy", "a=policy.yaml", "--policy", "a=policy.yaml"], "two policies named 'a'"),
        (["--policy", "broken.yaml"], "broken.yaml is invalid"),
        (["--tls-key", "policy.yaml"], "go together"),
        (["--tls-cert", "policy.yaml", "--tls-key", "policy.yaml"], "cannot load the certificate"),
    ],
)
def test_serve_refuses_bad_policies_and_tls_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """Checked before uvicorn starts: exit 2 and one line, not a server worker's traceback."""
    from cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy_doc("sha256:" + "0" * 64)))
    (tmp_path / "broken.yaml").write_text("apiVersion: model-attest.dev/policy/v1\nsigners: {}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--data-dir", str(tmp_path / "data"), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
