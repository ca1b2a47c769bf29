"""The client trusts the server for nothing: checkpoints, consistency, inclusion, bundle-leaf binding, forks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attest.errors import VerificationError
from attest.predicates import MODEL_MANIFEST_V1
from attest.registry_client import (
    CheckpointStore,
    LogForkError,
    RegistryClient,
    RegistryError,
    fetch_logged_bundles,
    fetch_verified_attestations,
)
from attest.verifying import Trust
from tests.registry_fixtures import RegistryWorld, manifest_predicate, model_digest

URL = "http://testserver"


def _client(app_client: Any, store: CheckpointStore, token: str | None = None, **kw: Any) -> RegistryClient:
    return RegistryClient(URL, token=token, store=store, http=app_client, **kw)


def test_publish_query_and_fetch(registry_world: RegistryWorld, registry_app: Any, tmp_path: Path) -> None:
    w = registry_world
    store = CheckpointStore(tmp_path / "cps")
    client = _client(registry_app, store, w.acme_token)
    for i, name in enumerate(("acme/a", "acme/b", "acme/a")):  # distinct statements (one per signer is kept)
        entry = client.publish(
            w.alice.bundle(name, model_digest(name), MODEL_MANIFEST_V1, manifest_predicate(f"{name}#{i}"))
        )
    assert entry["logIndex"] == 2
    saved = store.load(URL)
    assert saved is not None and saved["treeSize"] == 3 and saved["vkey"].startswith("registry.test/log+")

    entries = list(client.query(include_bundle=True, page_size=1, name="acme/a"))
    assert [e.log_index for e in entries] == [0, 2]
    trust = Trust()
    trust.add_key(w.alice.signer.public_key)
    atts = fetch_verified_attestations(
        URL, model_digest("acme/a"), trust, client=None, http=registry_app, store=store
    )
    assert len(atts) == 2 and all(a.predicate_type.endswith("model-manifest/v1") for a in atts)
    assert len(fetch_logged_bundles(URL, "acme/a", http=registry_app, store=store)) == 2
    # a bundle signed by a key the caller does not trust is left out
    assert (
        fetch_verified_attestations(URL, model_digest("acme/a"), Trust(), http=registry_app, store=store)
        == []
    )


def test_publish_refusal_is_an_error(
    registry_world: RegistryWorld, registry_app: Any, tmp_path: Path
) -> None:
    client = _client(registry_app, CheckpointStore(tmp_path), registry_world.evil_token)
    with pytest.raises(RegistryError) as info:
        client.publish(registry_world.alice.bundle("acme/a"))
    assert info.value.status == 403


def test_fork_is_detected(registry_world: RegistryWorld, registry_app: Any, tmp_path: Path) -> None:
    """A second database signed with the same log key (a rewritten history) fails loudly."""
    from registry import create_app

    w = registry_world
    store = CheckpointStore(tmp_path / "cps")
    honest = _client(registry_app, store, w.acme_token)
    honest.publish(w.alice.bundle("acme/a"))
    honest.publish(w.alice.bundle("acme/b"))
    before = store.load(URL)

    forked_app = create_app(
        w.settings(data_dir=tmp_path / "fork", database_url=None, log_key_path=w.data_dir / "log-key.pem")
    )
    with TestClient(forked_app) as forked_http:
        forked_http.headers["Authorization"] = "x"
        from registry.auth import bind_signer, create_token

        with forked_app.state.registry.db.write_session() as s:
            token, _ = create_token(s, "publisher", ["acme"])
            bind_signer(s, "acme", w.alice.fingerprint)
        # same key, different history: b is replaced by c, then the log grows past the honest size
        liar = _client(forked_http, CheckpointStore(tmp_path / "liar-cps"), token)
        for name in ("acme/a", "acme/c", "acme/d"):
            liar.publish(w.alice.bundle(name))
        victim = _client(forked_http, store)
        with pytest.raises(LogForkError, match="forked"):
            victim.sync()
        with pytest.raises(LogForkError):
            list(victim.query(name="acme/a"))
    assert store.load(URL) == before  # the stored checkpoint never moves onto the fork


def test_tampered_answers_are_rejected(
    registry_world: RegistryWorld, registry_app: Any, tmp_path: Path
) -> None:
    w = registry_world
    client = _client(registry_app, CheckpointStore(tmp_path), w.acme_token)
    client.publish(w.alice.bundle("acme/a"))
    client.publish(w.alice.bundle("acme/b"))
    doc = registry_app.get("/v1/attestations", params={"includeBundle": "true"}).json()["entries"][0]
    client.prove_entry(doc)

    swapped = json.loads(json.dumps(doc))
    swapped["bundle"] = registry_app.get("/v1/attestations/1").json()["bundle"]
    with pytest.raises(VerificationError, match="different bundle"):
        client.prove_entry(swapped)
    bad_proof = json.loads(json.dumps(doc))
    bad_proof["inclusionProof"]["hashes"] = [("00" * 32)]
    with pytest.raises(VerificationError):
        client.prove_entry(bad_proof)
    moved = json.loads(json.dumps(doc))
    moved["logIndex"] = moved["inclusionProof"]["logIndex"] = 1
    with pytest.raises(VerificationError):
        client.prove_entry(moved)
    forged_cp = json.loads(json.dumps(doc))
    forged_cp["inclusionProof"]["checkpoint"] = doc["inclusionProof"]["checkpoint"].replace("\n2\n", "\n3\n")
    with pytest.raises(VerificationError):
        client.prove_entry(forged_cp)


def test_pinned_log_key_mismatch(registry_world: RegistryWorld, registry_app: Any, tmp_path: Path) -> None:
    from attest.checkpoint import generate_signer

    other = generate_signer("registry.test/log").verifier.vkey()
    client = _client(registry_app, CheckpointStore(tmp_path), log_key=other)
    with pytest.raises(VerificationError, match=r"trusted log key|invalid"):
        client.sync()
