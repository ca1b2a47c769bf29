"""The stored log: batch appends, roots and proofs from stored subtrees, bulk loading, migrations."""

from __future__ import annotations

from typing import Any

from attest._internal import merkle
from attest.bundle import bundle_digest, envelope_digest, parse_bundle
from attest.statement import parse_statement
from attest.verifying import SignerIdentity, VerifiedAttestation
from tests.registry_fixtures import RegistryWorld


def test_batches_give_the_reference_tree(registry_world: RegistryWorld) -> None:
    from registry.state import Registry

    reg = Registry(registry_world.settings())
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(150)]
    done = 0
    for batch in (1, 2, 5, 1, 17, 31, 64, 29):  # awkward batch boundaries across subtree edges
        with reg.db.sequencer_session() as s:
            first, cp = reg.log.append_many(s, leaves[done : done + batch])
        assert first == done and cp.size == done + batch
        done += batch
    assert done == 150
    with reg.db.read_session() as s:
        for size in (1, 3, 64, 65, 100, 150):
            assert reg.log.root(s, size) == merkle.root_from_leaf_hashes(leaves[:size])
            for index in range(0, size, 11):
                assert reg.log.inclusion_proof(s, index, size) == merkle.inclusion_proof(index, leaves[:size])
            for size1 in range(0, size + 1, 13):
                assert reg.log.consistency_proof(s, size1, size) == merkle.consistency_proof(
                    size1, leaves[:size]
                )
    reg.close()


def _unverified(doc: dict[str, Any], fingerprint: str) -> VerifiedAttestation:
    parsed = parse_bundle(__import__("json").dumps(doc))
    return VerifiedAttestation(
        parse_statement(parsed.payload),
        SignerIdentity(key_fingerprint=fingerprint),
        bundle_digest(doc),
        envelope_digest(doc),
        doc,
    )


def test_bulk_load_then_serve(registry_world: RegistryWorld, registry_app: Any) -> None:
    from registry.bulk import bulk_load

    w = registry_world
    reg = registry_app.app.state.registry
    atts = [_unverified(w.alice.bundle(f"acme/bulk{i % 40}"), w.alice.fingerprint) for i in range(300)]
    assert bulk_load(reg, atts, batch=64) == 300
    page = registry_app.get("/v1/attestations", params={"name": "acme/bulk7", "includeBundle": "true"}).json()
    assert [e["logIndex"] for e in page["entries"]] == list(range(7, 300, 40))
    root = bytes.fromhex(page["entries"][0]["inclusionProof"]["rootHash"])
    for e in page["entries"]:
        p = e["inclusionProof"]
        merkle.verify_inclusion(
            merkle.leaf_hash(e["leaf"].encode()),
            p["logIndex"],
            300,
            [bytes.fromhex(h) for h in p["hashes"]],
            root,
        )


def test_migrations_match_the_models(registry_world: RegistryWorld) -> None:
    """The Alembic head creates exactly the SQLModel tables and indexes (no autogenerate diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from registry.db import Database
    from registry.models import SQLModel

    db = Database(registry_world.settings())
    with db.write.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    db.dispose()
    assert diff == []


def test_migration_0002_backfills_statement_digests(database_url: str | None, tmp_path: Any) -> None:
    """A database made by 0001 with entries in it upgrades in place: each entry gets the digest of
    its signed statement, which is what keeps one statement from one signer stored once."""
    import base64
    import hashlib
    import json

    from sqlalchemy import text

    from registry.db import Database
    from registry.migrate import upgrade
    from registry.settings import Settings
    from tests.registry_fixtures import Publisher

    db = Database(Settings(data_dir=tmp_path / "old", database_url=database_url))  # a fresh database
    upgrade(db.write, "0001")
    bundle = Publisher("alice", tmp_path).bundle("acme/old")
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    with db.write.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO entry (log_index, bundle_digest, envelope_digest, predicate_type, signer,"
                " namespace, integrated_time, envelope_size, leaf, leaf_hash, bundle) VALUES"
                " (0, 'sha256:b', 'sha256:e', 'p', 's', 'acme', 0, 1, '{}', :h, :b)"
            ),
            {"h": b"\x00" * 32, "b": json.dumps(bundle)},
        )
    upgrade(db.write)
    with db.read.connect() as conn:
        got = conn.execute(text("SELECT statement_digest FROM entry WHERE log_index = 0")).scalar_one()
        assert conn.execute(text("SELECT expires_at FROM token")).fetchall() == []
    db.dispose()
    assert got == "sha256:" + hashlib.sha256(payload).hexdigest()
