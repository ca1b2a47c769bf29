"""The registry attacked: cross-tenant writes, malformed input on every endpoint, floods, a corrupted
or truncated log, a full disk. On SQLite and a real PostgreSQL server (``database_url`` fixture).

Every case checks the answer (status, and a one-line JSON error) *and* that nothing changed: the
log's size and latest checkpoint are the same after a refused request as before it.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import rfc8785
from sqlalchemy import text

from attest.predicates import MODEL_MANIFEST_V1, REVOCATION_V1
from attest.statement import STATEMENT_TYPE
from tests.registry_fixtures import (
    REPO,
    LiveServer,
    RegistryWorld,
    auth,
    free_port,
    json_bytes,
    manifest_predicate,
    model_digest,
)


def _client(world: RegistryWorld, **settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from registry import create_app

    # a 500 must show up as a status to assert on, not as an exception inside the test
    return TestClient(create_app(world.settings(**settings)), raise_server_exceptions=False)


@pytest.fixture
def app(registry_world: RegistryWorld) -> Iterator[Any]:
    with _client(registry_world) as client:
        yield client


def _state(c: Any) -> tuple[int, str]:
    cp = c.get("/v1/log/checkpoint").json()
    return cp["treeSize"], cp["checkpoint"]


def _publish(c: Any, token: str, bundle: dict[str, Any]) -> Any:
    return c.post("/v1/attestations", content=json_bytes(bundle), headers=auth(token))


def _signed(world: RegistryWorld, subjects: list[dict[str, Any]], predicate_type: str, predicate: Any) -> Any:
    """Alice signs an arbitrary statement (malformed subjects included): the signature is valid."""
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return world.alice.signer.sign_statement(bytes(rfc8785.dumps(doc)))


def _manifest_about(world: RegistryWorld, name: str, digest_hex: str) -> Any:
    return _signed(
        world, [{"name": name, "digest": {"sha256": digest_hex}}], MODEL_MANIFEST_V1, manifest_predicate(name)
    )


def _revocation(digest: str, revoked_on: str = "2026-11-27T12:00:00Z") -> dict[str, Any]:
    return {"revokedDigest": digest, "reason": "withdrawn", "revokedOn": revoked_on}


def _policy(fingerprint: str) -> dict[str, Any]:
    return {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": fingerprint}]},
        "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}],
    }


# -- cross-tenant writes ---------------------------------------------------------------------------------


def test_another_tenant_cannot_revoke_a_model(registry_world: RegistryWorld, app: Any) -> None:
    """Mallory (a trusted signer with a token for ``evil``) tries to revoke acme's model every way."""
    c, w = app, registry_world
    digest = model_digest("acme/llama")
    assert _publish(c, w.acme_token, w.alice.bundle("acme/llama")).status_code == 201
    before = _state(c)
    attacks = [
        # under its own namespace, about acme's digest: the namespace never published that digest
        (
            "own namespace",
            w.evil_token,
            w.mallory.bundle("evil/llama", digest, REVOCATION_V1, _revocation(digest)),
        ),
        # naming acme's model: its token does not cover acme
        (
            "acme's name",
            w.evil_token,
            w.mallory.bundle("acme/llama", digest, REVOCATION_V1, _revocation(digest)),
        ),
        # acme's token (stolen) with mallory's signature: mallory is not bound to acme
        (
            "stolen token",
            w.acme_token,
            w.mallory.bundle("acme/llama", digest, REVOCATION_V1, _revocation(digest)),
        ),
    ]
    for what, token, bundle in attacks:
        r = _publish(c, token, bundle)
        assert r.status_code == 403, (what, r.status_code, r.text)
        assert _state(c) == before, what
    assert "has not published" in _publish(c, w.evil_token, attacks[0][2]).json()["error"]
    decision = c.post(
        "/v1/admission/evaluate", json={"modelDigest": digest, "policy": _policy(w.alice.fingerprint)}
    )
    assert decision.status_code == 200 and decision.json()["allowed"] is True, decision.text
    # the owner may revoke: same request shape, acme's token and signer
    own = _publish(c, w.acme_token, w.alice.bundle("acme/llama", digest, REVOCATION_V1, _revocation(digest)))
    assert own.status_code == 201, own.text


def test_one_statement_from_one_signer_is_stored_once(registry_world: RegistryWorld, app: Any) -> None:
    """Extra signatures riding along change the bundle's digest, not what it says: stored once."""
    c, w = app, registry_world
    bundle = w.alice.bundle("acme/dup")
    first = _publish(c, w.acme_token, bundle)
    assert first.status_code == 201
    before = _state(c)
    padded = json.loads(json.dumps(bundle))
    junk = base64.b64encode(os.urandom(64)).decode()
    padded["dsseEnvelope"]["signatures"].append({"keyid": "", "sig": junk})
    resigned = w.alice.bundle("acme/dup")  # ECDSA: a fresh signature over the same statement
    assert resigned != bundle
    for what, doc in (("extra signature", padded), ("re-signed", resigned)):
        r = _publish(c, w.acme_token, doc)
        assert r.status_code == 200, (what, r.text)
        assert r.json()["logIndex"] == first.json()["logIndex"], what
        assert _state(c) == before, what
    # another signer's copy of the same statement is a different attestation
    assert (
        c.post(
            "/v1/namespaces/acme/signers", json={"signer": w.mallory.fingerprint}, headers=auth(w.admin_token)
        ).status_code
        == 201
    )
    assert _publish(c, w.acme_token, w.mallory.bundle("acme/dup")).status_code == 201


# -- malformed input on every endpoint -------------------------------------------------------------------


def _cursor(after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def _cases(w: RegistryWorld) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(what, method, path, httpx request arguments): each must get a 4xx and change nothing."""
    acme, admin = auth(w.acme_token), auth(w.admin_token)
    good_hex = model_digest("acme/base").removeprefix("sha256:")
    huge = str(10**30)
    nested = b"[" * 100_000 + b"]" * 100_000
    deep_ok_json = b'{"a":' * 200 + b"1" + b"}" * 200  # parses, but nests deeper than any real body
    pub = "/v1/attestations"

    def bundle(doc: Any) -> dict[str, Any]:
        return {"content": json_bytes(doc), "headers": acme}

    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        # publish: digests, names, dates, bodies
        ("digest zzzz", "POST", pub, bundle(_manifest_about(w, "acme/x", "zzzz"))),
        ("digest upper-case", "POST", pub, bundle(_manifest_about(w, "acme/x", good_hex.upper()))),
        ("digest too short", "POST", pub, bundle(_manifest_about(w, "acme/x", good_hex[:63]))),
        ("digest too long", "POST", pub, bundle(_manifest_about(w, "acme/x", good_hex + "0"))),
        ("NUL in name", "POST", pub, bundle(_manifest_about(w, "acme/x\x00y", good_hex))),
        ("newline in name", "POST", pub, bundle(_manifest_about(w, "acme/x\ny", good_hex))),
        ("bidi override in name", "POST", pub, bundle(_manifest_about(w, "acme/\u202egnp.exe", good_hex))),
        ("dot-dot in name", "POST", pub, bundle(_manifest_about(w, "acme/../evil", good_hex))),
        ("name too long", "POST", pub, bundle(_manifest_about(w, "acme/" + "x" * 600, good_hex))),
        (
            "date not RFC 3339",
            "POST",
            pub,
            bundle(
                w.alice.bundle(
                    "acme/base", None, REVOCATION_V1, _revocation("sha256:" + good_hex, "yesterday")
                )
            ),
        ),
        (
            "date past year 9999 in UTC",
            "POST",
            pub,
            bundle(
                w.alice.bundle(
                    "acme/base",
                    None,
                    REVOCATION_V1,
                    _revocation("sha256:" + good_hex, "9999-12-31T23:59:59-23:59"),
                )
            ),
        ),
        ("malformed JSON", "POST", pub, {"content": b'{"mediaType": ', "headers": acme}),
        ("deeply nested JSON", "POST", pub, {"content": nested, "headers": acme}),
        ("JSON array", "POST", pub, {"content": b"[1, 2]", "headers": acme}),
        ("JSON string", "POST", pub, {"content": b'"bundle"', "headers": acme}),
        ("oversized body", "POST", pub, {"content": b" " * 2_500_000, "headers": acme}),
        ("oversized chunked body", "POST", pub, {"content": iter([b" " * 600_000] * 5), "headers": acme}),
        # queries
        ("query digest zzzz", "GET", pub, {"params": {"subjectDigest": "sha256:zzzz"}}),
        ("query NUL in name", "GET", pub, {"params": {"name": "acme/\x00"}}),
        ("query bidi in name", "GET", pub, {"params": {"name": "acme/\u202ex"}}),
        ("query long predicateType", "GET", pub, {"params": {"predicateType": "x" * 10_000}}),
        ("query NUL in signer", "GET", pub, {"params": {"signer": "sha256:\x00"}}),
        ("query huge since", "GET", pub, {"params": {"since": "9" * 40}}),
        ("query since past 9999", "GET", pub, {"params": {"since": "9999-12-31T23:59:59-23:59"}}),
        ("query since without offset", "GET", pub, {"params": {"since": "2026-01-01T00:00:00"}}),
        ("query garbage until", "GET", pub, {"params": {"until": "tomorrow"}}),
        ("cursor garbage", "GET", pub, {"params": {"cursor": "garbage!"}}),
        ("cursor huge int", "GET", pub, {"params": {"cursor": _cursor(10**30)}}),
        ("cursor bool", "GET", pub, {"params": {"cursor": _cursor(True)}}),
        ("cursor string", "GET", pub, {"params": {"cursor": _cursor("1")}}),
        ("cursor long", "GET", pub, {"params": {"cursor": "A" * 5000}}),
        ("limit huge", "GET", pub, {"params": {"limit": huge}}),
        ("limit negative", "GET", pub, {"params": {"limit": "-1"}}),
        ("limit not a number", "GET", pub, {"params": {"limit": "ten"}}),
        ("entry huge index", "GET", f"{pub}/{huge}", {}),
        ("entry negative index", "GET", f"{pub}/-1", {}),
        ("entry max index", "GET", f"{pub}/{2**63 - 1}", {}),
        # log
        ("checkpoint huge size", "GET", f"/v1/log/checkpoints/{huge}", {}),
        ("inclusion huge index", "GET", "/v1/log/proof/inclusion", {"params": {"logIndex": huge}}),
        (
            "inclusion max tree",
            "GET",
            "/v1/log/proof/inclusion",
            {"params": {"logIndex": 0, "treeSize": 2**63 - 1}},
        ),
        ("inclusion negative", "GET", "/v1/log/proof/inclusion", {"params": {"logIndex": -5}}),
        ("consistency huge", "GET", "/v1/log/proof/consistency", {"params": {"firstSize": huge}}),
        (
            "consistency max",
            "GET",
            "/v1/log/proof/consistency",
            {"params": {"firstSize": 0, "lastSize": 2**63 - 1}},
        ),
        # models and namespaces
        ("model NUL", "GET", "/v1/models/acme/x%00y", {}),
        ("model bidi", "GET", "/v1/models/acme/%E2%80%AEx", {}),
        ("model long name", "GET", "/v1/models/acme/" + "x" * 3000, {}),
        ("model lone surrogate", "GET", "/v1/models/acme/%ED%A0%80", {}),
        ("signers NUL namespace", "GET", "/v1/namespaces/ac%00me/signers", {}),
        ("signers long namespace", "GET", "/v1/namespaces/" + "n" * 3000 + "/signers", {}),
        (
            "bind NUL signer",
            "POST",
            "/v1/namespaces/acme/signers",
            {"json": {"signer": "sha256:\x00"}, "headers": admin},
        ),
        (
            "bind long signer",
            "POST",
            "/v1/namespaces/acme/signers",
            {"json": {"signer": "s" * 5000}, "headers": admin},
        ),
        (
            "bind NUL namespace",
            "POST",
            "/v1/namespaces/ac%00me/signers",
            {"json": {"signer": "sha256:ab"}, "headers": admin},
        ),
        (
            "bind long namespace",
            "POST",
            "/v1/namespaces/" + "n" * 300 + "/signers",
            {"json": {"signer": "sha256:ab"}, "headers": admin},
        ),
        ("bind wrong type", "POST", "/v1/namespaces/acme/signers", {"json": {"signer": 5}, "headers": admin}),
        ("bind malformed", "POST", "/v1/namespaces/acme/signers", {"content": b"{", "headers": admin}),
        ("bind nested", "POST", "/v1/namespaces/acme/signers", {"content": nested, "headers": admin}),
        (
            "unbind NUL",
            "DELETE",
            "/v1/namespaces/ac%00me/signers",
            {"json": {"signer": "sha256:ab"}, "headers": admin},
        ),
        # tokens
        (
            "token NUL namespace",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["ac\x00me"]}, "headers": admin},
        ),
        (
            "token bidi namespace",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["\u202eacme"]}, "headers": admin},
        ),
        (
            "token long namespace",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["n" * 300]}, "headers": admin},
        ),
        (
            "token long description",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["a"], "description": "d" * 10_000}, "headers": admin},
        ),
        ("token role", "POST", "/v1/tokens", {"json": {"role": "root"}, "headers": admin}),
        (
            "token wrong types",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": "acme", "role": 1}, "headers": admin},
        ),
        (
            "token expiry garbage",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["a"], "expires": "soon"}, "headers": admin},
        ),
        (
            "token expiry past",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["a"], "expires": "1999-01-01"}, "headers": admin},
        ),
        (
            "token expiry overflow",
            "POST",
            "/v1/tokens",
            {"json": {"namespaces": ["a"], "expires": "999999w"}, "headers": admin},
        ),
        ("token nested", "POST", "/v1/tokens", {"content": deep_ok_json, "headers": admin}),
        ("revoke huge id", "DELETE", f"/v1/tokens/{huge}", {"headers": admin}),
        ("revoke max id", "DELETE", f"/v1/tokens/{2**63 - 1}", {"headers": admin}),
        ("token header NUL", "GET", "/v1/tokens", {"headers": {"Authorization": "Bearer mat_\x00"}}),
        ("token header huge", "GET", "/v1/tokens", {"headers": {"Authorization": "Bearer " + "x" * 6000}}),
        # constitutions
        ("constitution digest zzzz", "GET", "/v1/constitutions/sha256:zzzz", {}),
        (
            "constitution digest NUL",
            "POST",
            "/v1/constitutions/sha256:%00",
            {"content": b"x", "headers": acme},
        ),
        (
            "constitution oversized",
            "POST",
            f"/v1/constitutions/sha256:{good_hex}",
            {"content": b"x" * 2_500_000, "headers": acme},
        ),
        (
            "constitution not UTF-8",
            "POST",
            f"/v1/constitutions/sha256:{good_hex}",
            {"content": b"\xff\xfe", "headers": acme},
        ),
        # admission (its own limits are the admission module's; the status rule holds everywhere)
        ("evaluate digest zzzz", "POST", "/v1/admission/evaluate", {"json": {"modelDigest": "sha256:zzzz"}}),
        ("evaluate wrong type", "POST", "/v1/admission/evaluate", {"json": {"modelDigest": 5}}),
        (
            "evaluate malformed",
            "POST",
            "/v1/admission/evaluate",
            {"content": b"{", "headers": {"content-type": "application/json"}},
        ),
        (
            "evaluate nested",
            "POST",
            "/v1/admission/evaluate",
            {"content": nested, "headers": {"content-type": "application/json"}},
        ),
        (
            "evaluate oversized",
            "POST",
            "/v1/admission/evaluate",
            {"content": b" " * 2_500_000, "headers": {"content-type": "application/json"}},
        ),
        (
            "evaluate bad policy",
            "POST",
            "/v1/admission/evaluate",
            {"json": {"modelDigest": "sha256:" + good_hex, "policy": {"require": 5}}},
        ),
        ("review not a review", "POST", "/v1/admission/review", {"json": {"kind": "Pod"}}),
        (
            "review nested",
            "POST",
            "/v1/admission/review",
            {"content": nested, "headers": {"content-type": "application/json"}},
        ),
        ("review wrong type", "POST", "/v1/admission/review", {"json": [1, 2, 3]}),
    ]
    return cases


def test_malformed_requests_get_4xx_and_change_nothing(registry_world: RegistryWorld, app: Any) -> None:
    c, w = app, registry_world
    assert _publish(c, w.acme_token, w.alice.bundle("acme/base")).status_code == 201
    before = _state(c)
    tokens_before = len(c.get("/v1/tokens", headers=auth(w.admin_token)).json()["tokens"])
    failures = []
    for what, method, path, kwargs in _cases(w):
        r = c.request(method, path, **kwargs)
        ok = 400 <= r.status_code < 500
        try:
            error = r.json().get("error")
        except ValueError:
            error = None
        if not ok or not isinstance(error, str) or "\n" in error:
            failures.append((what, r.status_code, r.text[:200]))
        if _state(c) != before:
            failures.append((what, "log changed", _state(c)))
    assert failures == []
    assert len(c.get("/v1/tokens", headers=auth(w.admin_token)).json()["tokens"]) == tokens_before


# -- bounded cost -----------------------------------------------------------------------------------------


def test_rate_limits_per_client_and_per_token(registry_world: RegistryWorld) -> None:
    w = registry_world
    with _client(w, rate_limit_per_client=0.001, rate_limit_per_client_burst=3) as c:
        codes = [c.get("/v1/log/checkpoint").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/log/checkpoint")
        assert (
            r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "rate limit" in r.json()["error"]
        )
        assert c.get("/healthz").status_code == 200  # liveness is never throttled
    with _client(w, rate_limit_per_token=0.001, rate_limit_per_token_burst=2) as c:
        assert [c.get("/v1/log/checkpoint", headers=auth(w.acme_token)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert c.get("/v1/log/checkpoint", headers=auth(w.evil_token)).status_code == 200  # other token
        assert c.get("/v1/log/checkpoint").status_code == 200  # no token: the client limit only
        assert 'registry_rate_limited_total{by="token"} 1.0' in c.get("/metrics").text


def test_namespace_publish_quota(registry_world: RegistryWorld) -> None:
    w = registry_world
    with _client(w, namespace_publish_quota=2, namespace_quota_window_s=3600) as c:
        for i in range(2):
            assert _publish(c, w.acme_token, w.alice.bundle(f"acme/q{i}")).status_code == 201
        before = _state(c)
        r = _publish(c, w.acme_token, w.alice.bundle("acme/q2"))
        assert r.status_code == 429 and "quota" in r.json()["error"]
        assert 3500 <= int(r.headers["Retry-After"]) <= 3601
        assert _state(c) == before
        assert _publish(c, w.evil_token, w.mallory.bundle("evil/q")).status_code == 201  # per namespace
        assert "registry_quota_refused_total 1.0" in c.get("/metrics").text


# -- log integrity ----------------------------------------------------------------------------------------


def _publish_n(w: RegistryWorld, n: int) -> None:
    with _client(w) as c:
        for i in range(n):
            assert _publish(c, w.acme_token, w.alice.bundle(f"acme/i{i}")).status_code == 201


def _sql(w: RegistryWorld, statement: str, **params: Any) -> None:
    from registry.db import Database

    db = Database(w.settings())
    with db.write.begin() as conn:
        conn.execute(text(statement), params)
    db.dispose()


def _fsck(w: RegistryWorld, *extra: str) -> subprocess.CompletedProcess[str]:
    db = ["--data-dir", str(w.data_dir)] + (["--database-url", w.database_url] if w.database_url else [])
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "registry", "fsck", *db, *extra],
        cwd=REPO,
        env=w.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_refuses(c: Any, w: RegistryWorld, problem: str) -> None:
    """Proofs and writes get 503 naming the problem; the checkpoint stays what was signed."""
    before = c.get("/v1/log/checkpoint").json()
    for r in (
        c.get("/v1/attestations"),
        c.get("/v1/attestations/0"),
        c.get("/v1/log/proof/inclusion", params={"logIndex": 0}),
        c.get("/v1/log/proof/consistency", params={"firstSize": 1}),
        _publish(c, w.acme_token, w.alice.bundle("acme/after")),
    ):
        assert r.status_code == 503, (r.request.url, r.status_code, r.text)
        assert problem in r.json()["error"] and "integrity" in r.json()["error"]
    assert c.get("/v1/log/checkpoint").json() == before  # nothing signed
    assert c.get("/healthz").status_code == 503
    assert "registry_log_integrity_ok 0.0" in c.get("/metrics").text


@pytest.mark.parametrize(
    ("what", "statement", "problem"),
    [
        pytest.param(
            "leaf node",
            "UPDATE tree_node SET hash = :h WHERE level = 0 AND idx = 2",
            "level 0 index 2",
            id="leaf-node",
        ),
        pytest.param(
            "inner node",
            "UPDATE tree_node SET hash = :h WHERE level = 1 AND idx = 0",
            "level 1 index 0",
            id="inner-node",
        ),
        pytest.param(
            "leaf record",
            "UPDATE entry SET leaf = replace(leaf, 'acme/i1', 'acme/XX') WHERE log_index = 1",
            "entry 1",
            id="leaf-record",
        ),
        pytest.param(
            "truncated",
            "DELETE FROM entry_subject WHERE log_index >= 4; DELETE FROM entry WHERE log_index >= 4",
            "truncated",
            id="truncated",
        ),
    ],
)
def test_corrupted_log_refuses_proofs_and_writes(
    registry_world: RegistryWorld, what: str, statement: str, problem: str
) -> None:
    w = registry_world
    _publish_n(w, 6)
    assert _fsck(w).returncode == 0
    for part in statement.split(";"):
        _sql(w, part, h=b"\x01" * 32)
    with _client(w) as c:  # the startup check finds it
        _assert_refuses(c, w, problem)
    done = _fsck(w)
    assert done.returncode == 1 and problem in done.stdout + done.stderr, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_corruption_found_while_serving(registry_world: RegistryWorld) -> None:
    """With the O(log n) startup check, a corrupted node off the tip is caught by the proof check:
    the wrong proof is never served, and the next publish does not sign on top of it."""
    w = registry_world
    _publish_n(w, 5)
    _sql(w, "UPDATE tree_node SET hash = :h WHERE level = 0 AND idx = 1", h=b"\x02" * 32)
    with _client(w, startup_check="tip") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/attestations/3").status_code == 200  # its proof does not pass the bad node
        r = c.get("/v1/attestations/0")
        assert r.status_code == 503 and "integrity" in r.json()["error"]
        _assert_refuses(c, w, "entry 0")


def test_full_disk_is_507_or_503_with_the_reason(registry_world: RegistryWorld) -> None:
    """A real server whose files may not grow past 1.5 MB (RLIMIT_FSIZE: writes fail with EFBIG)."""
    w = registry_world
    if w.database_url:
        pytest.skip("the file-size limit applies to the SQLite files; PostgreSQL's disk is its server's")
    limit = 1_500_000

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    server = LiveServer(w, free_port(), preexec=small_disk)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            statuses = []
            for i in range(400):
                size = http.get("/v1/log/checkpoint").json()["treeSize"]
                r = http.post(
                    "/v1/attestations",
                    content=json_bytes(w.alice.bundle(f"acme/full{i}")),
                    headers=auth(w.acme_token),
                )
                statuses.append(r.status_code)
                if r.status_code != 201:
                    break
            assert statuses[-1] in (503, 507), statuses[-5:]
            assert any(k in r.json()["error"] for k in ("disk", "full", "storage")), r.text
            assert http.get("/v1/log/checkpoint").json()["treeSize"] == size  # nothing half-written
            assert http.get("/healthz").status_code in (200, 503)
    finally:
        server.stop()


def test_database_full_is_507(registry_world: RegistryWorld, app: Any) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL, here from ``max_page_count``, as an
    exhausted disk reports it): 507 with the reason, the log unchanged, and the metric counted."""
    from sqlalchemy import event

    w = registry_world
    if w.database_url:
        pytest.skip("max_page_count is SQLite's")
    reg = app.app.state.registry
    assert _publish(app, w.acme_token, w.alice.bundle("acme/before-full")).status_code == 201
    before = _state(app)

    @event.listens_for(reg.db.write, "connect")
    def _cap(dbapi_conn: Any, _record: Any) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    reg.db.write.dispose()  # new connections get the cap
    r = _publish(app, w.acme_token, w.alice.bundle("acme/full", predicate=manifest_predicate("x" * 300_000)))
    assert r.status_code == 507 and "database or disk is full" in r.json()["error"], r.text
    assert _state(app) == before
    assert 'registry_storage_errors_total{status="507"} 1.0' in app.get("/metrics").text


# -- operations --------------------------------------------------------------------------------------------


def test_files_are_private(registry_world: RegistryWorld, app: Any) -> None:
    w = registry_world
    assert _publish(app, w.acme_token, w.alice.bundle("acme/p")).status_code == 201
    private = ["log-key.pem", "verifier.key"] + ([] if w.database_url else ["registry.db", "registry.db-wal"])
    for name in private:
        mode = stat.S_IMODE((w.data_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))


def test_tokens_expire(registry_world: RegistryWorld, app: Any) -> None:
    c, w = app, registry_world
    made = c.post("/v1/tokens", json={"namespaces": ["acme"], "expires": "30d"}, headers=auth(w.admin_token))
    assert made.status_code == 201 and made.json()["expiresAt"]
    secret, token_id = made.json()["token"], made.json()["id"]
    assert _publish(c, secret, w.alice.bundle("acme/e1")).status_code == 201
    past: Any = datetime(2000, 1, 1, tzinfo=UTC) if w.database_url else "2000-01-01 00:00:00.000000"
    _sql(w, "UPDATE token SET expires_at = :t WHERE id = :i", t=past, i=token_id)
    r = _publish(c, secret, w.alice.bundle("acme/e2"))
    assert r.status_code == 401 and "expired" in r.json()["error"]


def test_cli_token_expires(registry_world: RegistryWorld) -> None:
    from datetime import timedelta

    w = registry_world
    db = ["--data-dir", str(w.data_dir)] + (["--database-url", w.database_url] if w.database_url else [])
    run = [sys.executable, "-m", "cli.main", "registry", "token", "create", "--namespace", "acme"]
    done = subprocess.run(
        [*run, "--expires", "30d", "--json", *db], cwd=REPO, env=w.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    expires = datetime.fromisoformat(json.loads(done.stdout)["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    bad = subprocess.run(
        [*run, "--expires", "soonish", *db], cwd=REPO, env=w.env(), capture_output=True, text=True
    )
    assert bad.returncode == 2 and "expiry" in bad.stderr and "Traceback" not in bad.stderr


def test_metrics_need_a_token_when_reads_do(registry_world: RegistryWorld) -> None:
    w = registry_world
    with _client(w, read_token_required=True) as c:
        assert c.get("/metrics").status_code == 401
        assert "registry_requests_total" in c.get("/metrics", headers=auth(w.acme_token)).text
