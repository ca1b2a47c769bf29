"""The registry's OpenAPI document, used the way an outside team would: generate a client from it.

A real ``attest serve`` runs on loopback (SQLite, a server policy so verdicts are signed). Its
``/openapi.json`` goes through ``openapi-python-client`` (the pinned generator, with
``--fail-on-warning``: an endpoint the generator cannot express fails the test), and the generated
package is imported and driven: publish a signed bundle with the bearer token, query by digest, fetch
the entry, the checkpoint and inclusion and consistency proofs (checked with the library's own Merkle
and signed-note code, not the server's word), evaluate admission with a signed verdict, and answer a
Kubernetes AdmissionReview. Nothing here talks to the server except through the generated code.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from attest._internal import merkle
from attest.checkpoint import NoteVerifier, verify_checkpoint
from attest.constitution import digest_text
from attest.errors import VerificationError
from attest.keys import load_public_key
from attest.predicates import MODEL_MANIFEST_V1, VERIFICATION_SUMMARY_V1
from attest.verifying import Trust, verify_bundle
from tests.registry_fixtures import LiveServer, RegistryWorld, free_port, make_world, model_digest

PACKAGE = "model_attest_registry_client"  # the generated package's import name
ORIGIN = "registry.test/log"


@dataclass
class Generated:
    """The running server, what it documents, and the client package generated from that document."""

    url: str
    world: RegistryWorld
    spec: dict[str, Any]
    pkg: ModuleType

    def module(self, name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.{name}")

    def client(self, token: str | None = None) -> Any:
        """A generated client that raises on any status the document does not declare."""
        c = self.module("client")
        if token is None:
            return c.Client(base_url=self.url, raise_on_unexpected_status=True)
        return c.AuthenticatedClient(base_url=self.url, token=token, raise_on_unexpected_status=True)


def _policy(fingerprint: str) -> dict[str, Any]:
    return {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": fingerprint}]},
        "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}],
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    if importlib.util.find_spec("openapi_python_client") is None:
        pytest.fail("openapi-python-client is not installed: pip install -e '.[dev]'")
    root = tmp_path_factory.mktemp("openapi")
    world = make_world(root)
    policy = root / "policy.json"
    policy.write_text(json.dumps(_policy(world.alice.fingerprint)))
    server = LiveServer(world, free_port(), env={"ATTEST_REGISTRY_POLICY_FILE": str(policy)})
    server.start()
    try:
        spec = httpx.get(server.url + "/openapi.json", timeout=10).json()
        (root / "openapi.json").write_text(json.dumps(spec))
        (root / "config.json").write_text(json.dumps({"post_hooks": []}))  # no ruff run on the output
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "openapi_python_client",
                "generate",
                "--path",
                str(root / "openapi.json"),
                "--output-path",
                str(root / "gen" / PACKAGE),
                "--meta",
                "none",
                "--config",
                str(root / "config.json"),
                "--fail-on-warning",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"generator refused the document:\n{done.stdout}\n{done.stderr}"
        sys.path.insert(0, str(root / "gen"))
        try:
            yield Generated(server.url, world, spec, importlib.import_module(PACKAGE))
        finally:
            sys.path.remove(str(root / "gen"))
            for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
                del sys.modules[name]
    finally:
        server.stop()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_document_declares_bodies_answers_errors_and_auth(generated: Generated) -> None:
    spec = generated.spec
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    assert all("_" not in i for i in ids), ids  # explicit names, not FastAPI's path-derived ones
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for path, method, op in _operations(spec):
        params = op.get("parameters", [])
        assert not [p for p in params if p["name"].lower() == "authorization"], (path, method)
        for code, resp in op["responses"].items():
            if code.startswith(("4", "5")) and path != "/healthz":
                ref = resp["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", (path, method, code)
        if "429" in op["responses"]:
            assert "Retry-After" in op["responses"]["429"]["headers"], (path, method)
        if method in ("post", "delete") and not path.startswith("/v1/admission"):
            assert op["security"] == [{"bearer": []}], (path, method)

    def body_ref(path: str) -> str:
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        return str(content["application/json"]["schema"]["$ref"])

    assert body_ref("/v1/attestations").endswith("/SigstoreBundle")
    assert body_ref("/v1/admission/evaluate").endswith("/EvaluateRequest")
    assert body_ref("/v1/admission/review").endswith("/AdmissionReviewIn")
    assert body_ref("/v1/admission/review/{policy_name}").endswith("/AdmissionReviewIn")
    for name in (
        "SigstoreBundle",
        "DsseEnvelope",
        "EvaluateRequest",
        "AdmissionReviewIn",
        "AdmissionRequest",
    ):
        assert name in schemas, name  # body-only models reach the components
    evaluate = spec["paths"]["/v1/admission/evaluate"]["post"]["responses"]
    assert {"200", "400", "401", "409", "413", "422", "429", "503"} <= set(evaluate)
    assert evaluate["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/DecisionOut")
    review = spec["paths"]["/v1/admission/review"]["post"]["responses"]
    assert {"200", "400", "401", "413", "422", "429", "503"} <= set(review)
    assert review["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/AdmissionReviewOut")
    assert set(schemas["EvaluateRequest"]["properties"]) == {
        "modelDigest",
        "policy",
        "policyName",
        "emitVsa",
        "modelName",
    }
    # text answers are text, so a generated client reads .text instead of parsing JSON
    for path in ("/v1/constitutions/{digest}", "/metrics"):
        assert list(spec["paths"][path]["get"]["responses"]["200"]["content"]) == ["text/plain"], path


def test_generated_client_publishes_queries_and_proves(generated: Generated) -> None:
    g, w = generated, generated.world
    models = g.module("models")
    publish = g.module("api.attestations.publish_attestation")
    query = g.module("api.attestations.query_attestations")
    get_entry = g.module("api.attestations.get_attestation")
    checkpoint = g.module("api.log.get_checkpoint")
    log_key = g.module("api.log.get_log_key")
    inclusion = g.module("api.log.get_inclusion_proof")
    consistency = g.module("api.log.get_consistency_proof")
    writer, reader = g.client(w.acme_token), g.client()

    bundles = [w.alice.bundle(name) for name in ("acme/openapi-one", "acme/openapi-two")]
    refused = publish.sync_detailed(
        client=g.client("mat_not-a-token"), body=models.SigstoreBundle.from_dict(bundles[0])
    )
    assert refused.status_code == 401 and isinstance(refused.parsed, models.ErrorBody)
    assert checkpoint.sync(client=reader).tree_size == 0  # the refusal appended nothing

    published = []
    for bundle in bundles:
        answer = publish.sync_detailed(client=writer, body=models.SigstoreBundle.from_dict(bundle))
        assert answer.status_code == 201, answer.content
        assert isinstance(answer.parsed, models.PublishedOut)
        published.append(answer.parsed)
    assert [p.log_index for p in published] == [0, 1]
    again = publish.sync_detailed(client=writer, body=models.SigstoreBundle.from_dict(bundles[0]))
    assert again.status_code == 200 and again.parsed.log_index == 0  # stored once

    digest = model_digest("acme/openapi-one")
    page = query.sync(client=reader, subject_digest=digest)
    assert isinstance(page, models.QueryPage)
    assert [(e.log_index, e.bundle_digest) for e in page.entries] == [(0, published[0].bundle_digest)]
    assert page.entries[0].subjects[0].name == "acme/openapi-one"
    assert page.entries[0].signer.key_fingerprint == w.alice.fingerprint

    entry = get_entry.sync(client=reader, log_index=0)
    assert isinstance(entry, models.EntryOut)
    assert entry.bundle.to_dict() == bundles[0]  # the typed bundle round-trips byte for byte in JSON
    trust = Trust()
    trust.add_key(load_public_key(w.alice.public_pem))
    assert (
        verify_bundle(entry.bundle.to_dict(), trust, expected_digest=digest).bundle_digest
        == entry.bundle_digest
    )

    # the checkpoint is signed by the log key, and the proofs lead to its root
    key = log_key.sync(client=reader)
    cp = checkpoint.sync(client=reader)
    signed = verify_checkpoint(cp.checkpoint, [NoteVerifier.from_vkey(key.vkey)], origin=ORIGIN)
    assert (signed.size, signed.root_hash.hex()) == (cp.tree_size, cp.root_hash) == (2, cp.root_hash)
    proof = inclusion.sync(client=reader, log_index=0, tree_size=cp.tree_size)
    leaf = bytes.fromhex(proof.leaf_hash)
    assert leaf == merkle.leaf_hash(entry.leaf.encode())
    path = [bytes.fromhex(h) for h in proof.hashes]
    merkle.verify_inclusion(leaf, 0, cp.tree_size, path, signed.root_hash)
    with pytest.raises(VerificationError):  # the check bites: another leaf does not prove
        merkle.verify_inclusion(merkle.leaf_hash(b"forged"), 0, cp.tree_size, path, signed.root_hash)
    first = checkpoint.sync(client=reader)  # size 2; now grow the log and prove it only appended
    third = publish.sync_detailed(
        client=writer, body=models.SigstoreBundle.from_dict(w.alice.bundle("acme/openapi-three"))
    )
    assert third.status_code == 201 and third.parsed.log_index == 2
    grown = consistency.sync(client=reader, first_size=first.tree_size)
    assert (grown.first_size, grown.last_size) == (2, 3)
    last = verify_checkpoint(grown.checkpoint, [NoteVerifier.from_vkey(key.vkey)], origin=ORIGIN)
    merkle.verify_consistency(
        2, 3, [bytes.fromhex(h) for h in grown.hashes], bytes.fromhex(first.root_hash), last.root_hash
    )

    bad = query.sync_detailed(client=reader, subject_digest="sha256:zzzz")
    assert bad.status_code == 400 and bad.parsed.type_ == "UsageError"


def test_generated_client_stores_and_reads_constitution_text(generated: Generated) -> None:
    """The raw-bytes upload and the text/plain answer, as the document declares them."""
    g, w = generated, generated.world
    store = g.module("api.constitutions.store_constitution")
    fetch = g.module("api.constitutions.get_constitution")
    types = g.module("types")
    raw = b"# Principles\r\n\r\nBe  helpful.\r\n## Safety\nAvoid harm.\n\n"
    canonical = digest_text(raw)
    digest = f"sha256:{canonical.canonical_sha256}"
    stored = store.sync(
        client=g.client(w.acme_token), digest=digest, body=types.File(payload=io.BytesIO(raw))
    )
    assert stored.section_root == canonical.section_root and stored.section_count == canonical.section_count
    assert fetch.sync(client=g.client(), digest=digest) == canonical.canonical
    wrong = store.sync_detailed(
        client=g.client(w.acme_token), digest=f"sha256:{'0' * 64}", body=types.File(payload=io.BytesIO(raw))
    )
    assert wrong.status_code == 422 and "canonical digest" in wrong.parsed.error


def test_generated_client_decides_admission(generated: Generated) -> None:
    g, w = generated, generated.world
    models = g.module("models")
    publish = g.module("api.attestations.publish_attestation")
    evaluate = g.module("api.admission.evaluate_admission")
    verifier_key = g.module("api.admission.get_verifier_key")
    review = g.module("api.admission.review_admission")
    reader = g.client()

    name = "acme/openapi-admitted"
    stored = publish.sync(
        client=g.client(w.acme_token), body=models.SigstoreBundle.from_dict(w.alice.bundle(name))
    )
    assert isinstance(stored, models.PublishedOut)
    digest = model_digest(name)

    decision = evaluate.sync(client=reader, body=models.EvaluateRequest(model_digest=digest, emit_vsa=True))
    assert isinstance(decision, models.DecisionOut)
    assert decision.allowed and decision.decision == models.DecisionOutDecision.ALLOWED
    assert [e.bundle_digest for e in decision.evidence] == [stored.bundle_digest]
    assert [e.log_index for e in decision.log_entries] == [stored.log_index]
    assert decision.model_names == [name] and decision.attestations.evidence == 1
    # the signed verdict verifies under the key the registry publishes, about this model
    key = verifier_key.sync(client=reader)
    trust = Trust()
    assert trust.add_key(load_pem_public_key(key.public_key.encode())) == key.fingerprint
    vsa = verify_bundle(decision.verification_summary.to_dict(), trust, expected_digest=digest)
    assert vsa.predicate_type == VERIFICATION_SUMMARY_V1
    assert vsa.predicate["verificationResult"] == "PASSED"

    unknown = model_digest("acme/never-published")
    denied = evaluate.sync(client=reader, body=models.EvaluateRequest(model_digest=unknown))
    assert not denied.allowed and "UNKNOWN_MODEL" in {r.code for r in denied.reasons}
    refused = evaluate.sync_detailed(
        client=reader, body=models.EvaluateRequest(model_digest=unknown, emit_vsa=True)
    )
    assert refused.status_code == 409 and isinstance(refused.parsed, models.ErrorBody)  # no verdict to sign
    malformed = evaluate.sync_detailed(client=reader, body=models.EvaluateRequest(model_digest="sha256:zz"))
    assert malformed.status_code == 400 and isinstance(malformed.parsed, models.ErrorBody)

    def admission(uid: str, annotation: str) -> Any:
        pod = {
            "kind": "Pod",
            "metadata": {"name": uid, "annotations": {"model-attest.dev/models": annotation}},
        }
        request = models.AdmissionRequest(uid=uid, object_=models.AdmissionRequestObjectType0.from_dict(pod))
        body = models.AdmissionReviewIn(
            api_version="admission.k8s.io/v1", kind="AdmissionReview", request=request
        )
        answer = review.sync(client=reader, body=body)
        assert isinstance(answer, models.AdmissionReviewOut)
        assert answer.response.uid == uid
        return answer.response

    allowed = admission("pod-ok", f"{name}@{digest}")
    assert allowed.allowed and allowed.audit_annotations["decision"] == "allowed"
    rejected = admission("pod-bad", f"acme/never-published@{unknown}")
    assert not rejected.allowed and rejected.status.code == 403
    assert "UNKNOWN_MODEL" in rejected.status.message
