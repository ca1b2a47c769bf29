"""Publisher release and verified download, end to end through the CLI against a live registry.

One registry serves the whole module and one release of ``acme/tiny@1.0`` is shared by the tests that
only read it (starting a registry and releasing cost ~8 s per test on a 2-core runner). So tests
never assume an empty log: they compare log sizes before and after, and a test that publishes uses a
model name, version or content of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785

from tests.core_fixtures import REPO, RunAttest, make_model
from tests.e2e_fixtures import E2ERegistry, server_policy, start_registry

MANIFEST_POLICY = """apiVersion: model-attest.dev/policy/v1
signers:
  publisher:
    - keyFile: {pub}
require:
  - predicateType: https://model-attest.dev/model-manifest/v1
    signedBy: [publisher]
"""
SCAN_POLICY = (
    MANIFEST_POLICY
    + """  - predicateType: https://model-attest.dev/backdoor-scan/v1
    signedBy: [publisher]
"""
)


@dataclass
class FileServer:
    """A loopback HTTP server over a folder that records every request: a mirror, or a fake hub.

    It can misbehave the way real mirrors do: drip bytes slowly, answer 503 first, cut a connection
    mid-file, redirect hub downloads to a CDN, require a bearer token. It honours ``Range``.
    """

    root: Path
    hub_repo: str | None = None
    advertise: dict[str, str] = field(default_factory=dict)  # path -> sha256 the hub claims
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # the headers of each request
    url: str = ""
    drip: dict[str, float] = field(default_factory=dict)  # path -> seconds between single bytes
    fail_first: int = 0  # answer the first N GETs of each file with 503 (Retry-After: 0)
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> close after N bytes, once
    cdn: str | None = None  # hub: redirect /resolve/ downloads to <cdn>/<path>
    token: str | None = None  # hub: demand "Authorization: Bearer <token>"
    _seen: dict[str, int] = field(default_factory=dict)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                path = self.path.split("?")[0]
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._status(401)
                if server.hub_repo and path.startswith(f"/api/models/{server.hub_repo}/revision/"):
                    return self._json(server.model_info())
                prefix = f"/{server.hub_repo}/resolve/main/" if server.hub_repo else "/"
                rel = urllib.parse.unquote(path[len(prefix) :]) if path.startswith(prefix) else None
                target = server.root / rel if rel else None
                if rel is None or target is None or not target.is_file():
                    return self._status(404)
                if server.cdn:
                    self.send_response(302)
                    self.send_header("Location", f"{server.cdn}/{urllib.parse.quote(rel)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                count = server._seen[rel] = server._seen.get(rel, 0) + 1
                if count <= server.fail_first:
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                data = target.read_bytes()
                start = 0
                if rng := self.headers.get("Range"):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                cut = server.cut_after.pop(rel, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                if rel in server.drip:
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(server.drip[rel])
                    return None
                self.wfile.write(body)
                return None

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _json(self, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def model_info(self) -> dict[str, Any]:
        siblings = []
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                rel = p.relative_to(self.root).as_posix()
                sha = self.advertise.get(rel, hashlib.sha256(p.read_bytes()).hexdigest())
                size = p.stat().st_size
                siblings.append(
                    {
                        "rfilename": rel,
                        "size": size,
                        "blobId": "0" * 40,
                        "lfs": {"sha256": sha, "size": size, "pointerSize": 130},
                    }
                )
        return {
            "id": self.hub_repo,
            "modelId": self.hub_repo,
            "sha": "1" * 40,
            "siblings": siblings,
            "private": False,
            "tags": [],
        }


@pytest.fixture
def file_server() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(root: Path, **kwargs: Any) -> FileServer:
        fs = FileServer(root, **kwargs)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), fs.handler())
        fs.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return fs

    yield start
    for s in servers:
        s.shutdown()


@pytest.fixture(scope="module")
def e2e_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ERegistry]:
    """One live registry for the module (overrides the per-test fixture of ``tests.e2e_fixtures``)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.proc.terminate()
        reg.proc.wait(timeout=30)


def _attest_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, for module-scoped fixtures (``run_attest`` is per test)."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True, text=True, cwd=cwd or REPO, env=env, timeout=600,
    )  # fmt: skip


def log_size(reg: E2ERegistry) -> int:
    note = httpx.get(reg.url + "/v1/log/checkpoint").json()["checkpoint"]
    return int(note.splitlines()[1])


def release(
    run_attest: RunAttest,
    reg: E2ERegistry,
    model: Path,
    *extra: str | Path,
    name: str = "acme/tiny",
    version: str = "1.0",
    token: str | None = None,
    state: Path | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """`attest release` of MODEL by the registry's publisher, with JSON output."""
    return run_attest(
        "release", model, "--name", name, "--version", version, "--registry", reg.url,
        "--token", token or reg.token, "--key", reg.key, "--state-dir", state or model.parent / "state",
        "--json", *extra, env=env,
    )  # fmt: skip


@dataclass(frozen=True)
class Released:
    """``acme/tiny@1.0`` as released once for the module: the publisher's folder (read it, never
    change it; copy it first), the consumer policy, and the log index of its manifest."""

    model: Path
    policy: Path
    log_index: int


@pytest.fixture(scope="module")
def released_once(tmp_path_factory: pytest.TempPathFactory, e2e_registry: E2ERegistry) -> Released:
    root = tmp_path_factory.mktemp("released")
    model = make_model(root / "publisher" / "tiny")
    # the per-test checkpoint store is not set up yet at module scope: give this run its own
    env = {**os.environ, "ATTEST_CHECKPOINT_DIR": str(root / "checkpoints")}
    before = log_size(e2e_registry)
    result = release(_attest_cli, e2e_registry, model, "--no-scan", env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["kind"] for r in out["published"]] == ["manifest"]
    assert out["published"][0]["logIndex"] == before
    policy = root / "policy.yaml"
    policy.write_text(MANIFEST_POLICY.format(pub=e2e_registry.pub))
    return Released(model, policy, before)


@pytest.fixture
def released(released_once: Released) -> tuple[Path, Path]:
    """The shared release as (model folder, policy); the folder must not be modified."""
    return released_once.model, released_once.policy


def test_release_rerun_publishes_nothing_twice(
    released_once: Released, e2e_registry: E2ERegistry, run_attest: RunAttest
) -> None:
    size = log_size(e2e_registry)
    assert size > released_once.log_index
    again = release(run_attest, e2e_registry, released_once.model, "--no-scan")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["published"][0]["logIndex"] == released_once.log_index
    assert log_size(e2e_registry) == size


def test_release_resumes_after_a_failure(
    tmp_path: Path, e2e_registry: E2ERegistry, run_attest: RunAttest
) -> None:
    model = make_model(tmp_path / "m2")
    constitution = tmp_path / "constitution.md"
    constitution.write_text("# Principles\n\nBe honest.\n\n# Safety\n\nRefuse harm.\n")
    extra = ("--no-scan", "--constitution", constitution, "--relationship", "trained-with")
    size = log_size(e2e_registry)
    bad = release(
        run_attest, e2e_registry, model, *extra, version="2.0", token="wrong-token", state=tmp_path / "state"
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert log_size(e2e_registry) == size  # nothing published
    state = json.loads(next((tmp_path / "state").glob("*.json")).read_text())
    assert set(state["steps"]) == {"manifest", "constitution"} and all(
        s["bundle"] for s in state["steps"].values()
    )
    good = release(run_attest, e2e_registry, model, *extra, version="2.0", state=tmp_path / "state")
    assert good.returncode == 0, good.stderr
    assert sorted(r["logIndex"] for r in json.loads(good.stdout)["published"]) == [size, size + 1]
    assert log_size(e2e_registry) == size + 2
    # the bundles published are the ones signed during the failed run: nothing was signed twice
    after = json.loads(next((tmp_path / "state").glob("*.json")).read_text())
    assert [s["bundle"] for s in after["steps"].values()] == [s["bundle"] for s in state["steps"].values()]


def pull_args(reg: E2ERegistry, policy: Path, source: str | Path, ref: str = "acme/tiny@1.0") -> list[str]:
    return ["pull", ref, "--registry", reg.url, "--policy", str(policy), "--from", str(source)]


def pull(
    run_attest: RunAttest,
    reg: E2ERegistry,
    policy: Path,
    source: str | Path,
    dest: Path,
    *extra: str,
    ref: str = "acme/tiny@1.0",
    env: dict[str, str] | None = None,
) -> Any:
    return run_attest(*pull_args(reg, policy, source, ref), "--to", dest, "--json", *extra, env=env)


def test_pull_from_local_folder(
    released: tuple[Path, Path], e2e_registry: E2ERegistry, run_attest: RunAttest, tmp_path: Path
) -> None:
    model, policy = released
    dest = tmp_path / "consumer" / "tiny"
    result = pull(run_attest, e2e_registry, policy, str(model), dest)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["allowed"] and out["files"] == 4
    assert (dest / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    # the pulled folder verifies offline with the bundles the pull stored beside it
    bundles = sorted(dest.glob("*.sigstore.json"))
    assert bundles
    args = ["verify", dest, "--policy", policy]
    for b in bundles:
        args += ["--bundle", str(b)]
    assert run_attest(*args).returncode == 0


def test_pull_denied_before_any_byte(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    model, _ = released
    mirror = file_server(model)
    strict = tmp_path / "strict.yaml"
    strict.write_text(SCAN_POLICY.format(pub=e2e_registry.pub))
    dest = tmp_path / "consumer" / "tiny"
    result = pull(run_attest, e2e_registry, strict, mirror.url, dest)
    assert result.returncode == 1 and "MISSING_ATTESTATION" in result.stderr + result.stdout
    assert mirror.requests == []
    assert not dest.exists()


def test_pull_from_mirror_and_tampered_mirror(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    model, policy = released
    mirror = file_server(model)
    ok = pull(run_attest, e2e_registry, policy, mirror.url, tmp_path / "a" / "tiny")
    assert ok.returncode == 0, ok.stderr
    assert len(mirror.requests) == 4
    evil = tmp_path / "evil-mirror"
    shutil.copytree(model, evil)
    (evil / "tokenizer.json").write_text('{"version": "evil"}\n')
    bad_mirror = file_server(evil)
    dest = tmp_path / "b" / "tiny"
    bad = pull(run_attest, e2e_registry, policy, bad_mirror.url, dest)
    assert bad.returncode == 1 and "tokenizer.json" in bad.stderr and "Traceback" not in bad.stderr
    assert not dest.exists()
    assert list((tmp_path / "b").iterdir()) == []  # no half-written staging folder left behind


def test_pull_from_hub_compares_advertised_digests_first(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    model, policy = released
    hub = file_server(model, hub_repo="acme/tiny")
    ok = pull(
        run_attest, e2e_registry, policy, "hf://acme/tiny", tmp_path / "a" / "tiny", "--hub-endpoint", hub.url
    )
    assert ok.returncode == 0, ok.stderr
    assert sum("/resolve/" in r for r in hub.requests) == 4
    liar = file_server(model, hub_repo="acme/tiny", advertise={"model.safetensors": "0" * 64})
    dest = tmp_path / "b" / "tiny"
    bad = pull(run_attest, e2e_registry, policy, "hf://acme/tiny", dest, "--hub-endpoint", liar.url)
    assert bad.returncode == 1 and "model.safetensors" in bad.stderr
    assert not any("/resolve/" in r for r in liar.requests)  # refused before downloading anything
    assert not dest.exists()


def test_pull_unknown_version_and_bad_ref(
    released: tuple[Path, Path], e2e_registry: E2ERegistry, run_attest: RunAttest, tmp_path: Path
) -> None:
    model, policy = released
    missing = run_attest(
        "pull",
        "acme/tiny@9.9",
        "--registry",
        e2e_registry.url,
        "--policy",
        policy,
        "--from",
        model,
        "--to",
        tmp_path / "x",
    )
    assert missing.returncode == 1 and "no verified model manifest for acme/tiny@9.9" in missing.stderr
    bad = run_attest(
        "pull",
        "tiny",
        "--registry",
        e2e_registry.url,
        "--policy",
        policy,
        "--from",
        model,
        "--to",
        tmp_path / "x",
    )
    assert bad.returncode == 2 and "org/model@VERSION" in bad.stderr


PROFILE = """name: acme-tiny-eu
jurisdictions: [EU]
roles: [gpai-provider]
features: {{interactsWithPeople: true, generatedContent: [text]}}
model: {{trainingComputeFlop: 1e20, openSource: true, systemicRiskDesignated: false, placedOnMarket: 2026-01-10, generative: true}}
controls: {{copyrightPolicy: {copyright}, trainingContentSummary: true, technicalDocumentation: true, aiIdentityDisclosure: true}}
"""
GOVERNED_POLICY = (
    MANIFEST_POLICY
    + """  - predicateType: https://model-attest.dev/compliance-assessment/v1
    signedBy: [publisher]
    jurisdictions: [EU]
    maxAgeDays: 365
  - predicateType: https://model-attest.dev/constitution-binding/v1
    signedBy: [publisher]
    approvedConstitutions: ["{approved}"]
    relationships: [trained-with]
"""
)


@pytest.mark.parametrize(
    "copyright,approve_ours,expected",
    [
        ("true", True, None),
        ("false", True, "COMPLIANCE_NOT_SATISFIED"),
        ("true", False, "CONSTITUTION_NOT_APPROVED"),
    ],
)
def test_compliance_and_constitution_signed_published_enforced(
    tmp_path: Path,
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    copyright: str,
    approve_ours: bool,
    expected: str | None,
) -> None:
    """Issue 5's end-to-end: both predicates are signed, published, and enforced by a consumer policy."""
    model = make_model(tmp_path / "publisher" / "tiny")
    # a model and version of its own: the module's registry also holds the other cases' assessments
    case = f"{copyright}-{approve_ours}"
    (model / "case.txt").write_text(case + "\n")
    version = f"gov-{case}"
    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE.format(copyright=copyright))
    constitution = tmp_path / "constitution.md"
    constitution.write_text("# Honesty\n\nNever deceive.\n\n# Harm\n\nRefuse to help with harm.\n")
    released = release(
        run_attest,
        e2e_registry,
        model,
        "--no-scan",
        "--profile",
        profile,
        "--date",
        "2026-11-27",
        "--constitution",
        constitution,
        "--relationship",
        "trained-with",
        version=version,
    )
    assert released.returncode == 0, released.stderr
    kinds = [r["kind"] for r in json.loads(released.stdout)["published"]]
    assert kinds == ["manifest", "compliance", "constitution"]
    digest = json.loads(run_attest("constitution", "digest", constitution, "--json").stdout)[
        "canonicalDigest"
    ]["sha256"]
    approved = f"sha256:{digest}" if approve_ours else "sha256:" + "0" * 64
    policy = tmp_path / "governed.yaml"
    policy.write_text(GOVERNED_POLICY.format(pub=e2e_registry.pub, approved=approved))
    dest = tmp_path / "consumer" / "tiny"
    result = pull(run_attest, e2e_registry, policy, str(model), dest, ref=f"acme/tiny@{version}")
    if expected is None:
        assert result.returncode == 0, result.stderr
        assert {e["predicateType"].rsplit("/", 2)[1] for e in json.loads(result.stdout)["evidence"]} == {
            "model-manifest",
            "compliance-assessment",
            "constitution-binding",
        }
    else:
        assert result.returncode == 1 and expected in result.stderr
        assert not dest.exists()


def test_verify_against_registry(
    released: tuple[Path, Path], e2e_registry: E2ERegistry, run_attest: RunAttest, tmp_path: Path
) -> None:
    """`attest verify MODEL --registry URL --policy P`: attestations fetched, proven, verified locally."""
    shared, policy = released
    model = tmp_path / "tiny"
    shutil.copytree(shared, model)  # the same digest; changed below, so not the shared folder
    ok = run_attest("verify", model, "--registry", e2e_registry.url, "--policy", policy, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["evidence"][0]["predicateType"].endswith("/model-manifest/v1")
    by_name = run_attest(
        "verify", model, "--registry", e2e_registry.url, "--model", "acme/tiny@1.0", "--policy", policy
    )
    assert by_name.returncode == 0, by_name.stderr
    (model / "tokenizer.json").write_text("{}\n")
    changed = run_attest("verify", model, "--registry", e2e_registry.url, "--policy", policy, "--json")
    assert changed.returncode == 1
    assert "MISSING_ATTESTATION" in {r["code"] for r in json.loads(changed.stdout)["reasons"]}
    # asked by name, the registry's manifest for that version names the changed file
    named = run_attest(
        "verify",
        model,
        "--registry",
        e2e_registry.url,
        "--model",
        "acme/tiny@1.0",
        "--policy",
        policy,
        "--json",
    )
    assert named.returncode == 1, named.stderr
    doc = json.loads(named.stdout)
    assert doc["reasons"][0]["code"] == "MODEL_FILES_CHANGED" and doc["fileChanges"]["changed"] == [
        "tokenizer.json"
    ]
    other = run_attest(
        "verify",
        model,
        "--registry",
        e2e_registry.url,
        "--model",
        "acme/tiny@9.9",
        "--policy",
        policy,
        "--json",
    )
    assert other.returncode == 1  # no manifest of that version: nothing to compare, the requirement is unmet
    assert [r["code"] for r in json.loads(other.stdout)["reasons"]] == ["MISSING_ATTESTATION"]
    assert run_attest("verify", model, "--model", "acme/tiny", "--policy", policy).returncode == 2


VSA_POLICY = """apiVersion: model-attest.dev/policy/v1
signers:
  registry:
    - keyFile: verifier.pub
require:
  - predicateType: https://slsa.dev/verification_summary/v1
    signedBy: [registry]
    policyDigest: {policy_digest}
"""


@pytest.mark.parametrize("require_scan", [False, True])
def test_registry_admission_emits_signed_vsa(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    require_scan: bool,
) -> None:
    """A controller admits on one signature: the registry's signed verdict about the model digest."""
    from attest.keys import fingerprint, load_public_key

    model, _ = released
    digest = run_attest("digest", model).stdout.strip()
    key_doc = httpx.get(e2e_registry.url + "/v1/admission/verifier-key").json()
    (tmp_path / "verifier.pub").write_text(key_doc["publicKey"])
    assert fingerprint(load_public_key(tmp_path / "verifier.pub")) == key_doc["fingerprint"]
    publisher = fingerprint(load_public_key(e2e_registry.pub))
    policy = server_policy(publisher, require_scan)
    # a verdict is signed only for a policy the registry holds, named in the request
    answer = httpx.post(
        e2e_registry.url + "/v1/admission/evaluate",
        json={
            "modelDigest": digest,
            "policyName": "scanned" if require_scan else "manifest",
            "emitVsa": True,
            "modelName": "acme/tiny",
        },
    ).json()
    assert answer["allowed"] is (not require_scan)
    (tmp_path / "vsa.sigstore.json").write_text(json.dumps(answer["verificationSummary"]))
    # the consumer pins the verifier's key and the policy the verdict was made under
    policy_digest = "sha256:" + hashlib.sha256(rfc8785.dumps(policy)).hexdigest()
    (tmp_path / "vsa-policy.yaml").write_text(VSA_POLICY.format(policy_digest=policy_digest))
    result = run_attest(
        "verify",
        model,
        "--bundle",
        tmp_path / "vsa.sigstore.json",
        "--policy",
        tmp_path / "vsa-policy.yaml",
        "--json",
    )
    decision = json.loads(result.stdout)
    if require_scan:
        assert result.returncode == 1 and {r["code"] for r in decision["reasons"]} == {"VSA_FAILED"}
    else:
        assert result.returncode == 0, result.stdout
        assert decision["evidence"][0]["predicateType"] == "https://slsa.dev/verification_summary/v1"


def test_matrix_reads_assessments_from_the_registry(
    tmp_path: Path, e2e_registry: E2ERegistry, run_attest: RunAttest
) -> None:
    """`attest matrix --registry`: which cells have a verified assessment, which are missing or failed."""
    for name, copyright in (("acme/good", "true"), ("acme/bad", "false")):
        model = make_model(tmp_path / name.split("/")[1])
        profile = tmp_path / f"{name.split('/')[1]}.yaml"
        profile.write_text(PROFILE.format(copyright=copyright))
        done = release(
            run_attest,
            e2e_registry,
            model,
            "--no-scan",
            "--profile",
            profile,
            name=name,
            state=tmp_path / "state",
        )
        assert done.returncode == 0, done.stderr
    config = tmp_path / "matrix.yaml"
    config.write_text(
        "models: [acme/good, acme/bad, acme/unreleased]\njurisdictions: [EU, CN]\ncadence: monthly\n"
    )
    result = run_attest("matrix", config, "--registry", e2e_registry.url, "--key", e2e_registry.pub, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["assessmentsPerYear"] == 3 * 2 * 12
    states = {(r["model"], r["jurisdiction"]): r["state"] for r in out["rows"]}
    assert states[("acme/good", "EU")] == "current"
    assert states[("acme/bad", "EU")] == "failed"
    assert states[("acme/good", "CN")] == "missing" and states[("acme/unreleased", "EU")] == "missing"
    # without a trusted signer the registry's assessments are not evidence
    untrusted = run_attest("matrix", config, "--registry", e2e_registry.url, "--json")
    assert untrusted.returncode == 2


# --- pull deadlines, retries, resume, signals, the hub token (issue 12 points 8-9, issue 16 point 8) ---


def staging_left(dest: Path) -> list[Path]:
    return list(dest.parent.glob(f".{dest.name}.partial-*")) if dest.parent.exists() else []


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_pull_gives_up_on_a_dripping_mirror(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    """A mirror sending one byte at a time is abandoned: by the minimum rate, or by the deadline."""
    model, policy = released
    mirror = file_server(model, drip={"config.json": 0.1})
    dest = tmp_path / "a" / "tiny"
    started = time.monotonic()
    slow = pull(
        run_attest, e2e_registry, policy, mirror.url, dest, "--min-rate", "1000", "--rate-window", "1",
        "--retries", "0",
    )  # fmt: skip
    assert slow.returncode == 3, slow.stderr
    assert "too slow" in one_error_line(slow.stderr)
    assert json.loads(slow.stdout)["exitCode"] == 3
    assert not dest.exists() and staging_left(dest) == []
    late = pull(run_attest, e2e_registry, policy, mirror.url, dest, "--min-rate", "0", "--deadline", "1.5")
    assert late.returncode == 3, late.stderr
    assert "deadline" in one_error_line(late.stderr)
    assert not dest.exists() and staging_left(dest) == []
    assert time.monotonic() - started < 60


def test_pull_retries_5xx_and_resumes_a_cut_download(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    model, policy = released
    mirror = file_server(model, fail_first=1, cut_after={"model.safetensors": 100})
    dest = tmp_path / "a" / "tiny"
    result = pull(run_attest, e2e_registry, policy, mirror.url, dest, "--retries", "2")
    assert result.returncode == 0, result.stderr
    assert (dest / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    weights = [h for r, h in zip(mirror.requests, mirror.headers, strict=True) if "model.safetensors" in r]
    # 503, then a download cut after 100 bytes, then the rest of the file only
    assert [h.get("range") for h in weights] == [None, None, "bytes=100-"]
    # with no retries the first 503 ends the pull: could not decide, not denied
    again = file_server(model, fail_first=1)
    dest2 = tmp_path / "b" / "tiny"
    failed = pull(run_attest, e2e_registry, policy, again.url, dest2, "--retries", "0")
    assert failed.returncode == 3 and "HTTP 503" in one_error_line(failed.stderr)
    assert not dest2.exists() and staging_left(dest2) == []


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _start_pull(reg: E2ERegistry, policy: Path, source: str, dest: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            *pull_args(reg, policy, source),
            "--to",
            str(dest),
            "--min-rate",
            "0",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The CLI leaves a signal alone when its parent ignores it (``nohup``); the tests send them.
        preexec_fn=_default_signals,
    )


def _wait_for_staging(proc: subprocess.Popen[str], dest: Path) -> None:
    for _ in range(600):
        if staging_left(dest) or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None and staging_left(dest), "the pull never started downloading"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_pull_killed_by_signal_removes_staging(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    tmp_path: Path,
    file_server: Any,
    sig: signal.Signals,
) -> None:
    model, policy = released
    mirror = file_server(model, drip={"config.json": 0.2})
    dest = tmp_path / "consumer" / "tiny"
    proc = _start_pull(e2e_registry, policy, mirror.url, dest)
    _wait_for_staging(proc, dest)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert f"interrupted by {sig.name}" in one_error_line(stderr)
    assert staging_left(dest) == [] and not dest.exists()


def test_pull_destination_problems(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    model, policy = released
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    below = pull(run_attest, e2e_registry, policy, str(model), blocker / "tiny")
    assert below.returncode == 2 and str(blocker) in one_error_line(below.stderr)
    # another process creates --to while the pull downloads: it is left alone, never replaced
    mirror = file_server(model, drip={"config.json": 0.05})
    dest = tmp_path / "consumer" / "tiny"
    proc = _start_pull(e2e_registry, policy, mirror.url, dest)
    _wait_for_staging(proc, dest)
    dest.mkdir()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "created by someone else" in one_error_line(stderr)
    assert list(dest.iterdir()) == [] and staging_left(dest) == []


def test_pull_sends_the_hub_token_to_the_hub_only(
    released: tuple[Path, Path],
    e2e_registry: E2ERegistry,
    run_attest: RunAttest,
    tmp_path: Path,
    file_server: Any,
) -> None:
    """Gated repositories: HF_TOKEN (or the token file) goes to the hub, not to the CDN it redirects to."""
    model, policy = released
    cdn = file_server(model)
    hub = file_server(model, hub_repo="acme/tiny", token="hf_secret", cdn=cdn.url)
    home = tmp_path / "hf-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(home)
    args = ("--hub-endpoint", hub.url)
    anonymous = pull(
        run_attest, e2e_registry, policy, "hf://acme/tiny", tmp_path / "x" / "tiny", *args, env=env
    )
    assert anonymous.returncode == 3 and "HF_TOKEN" in one_error_line(anonymous.stderr)
    (home / "token").write_text("hf_secret\n")  # where `hf auth login` stores it
    for i, extra_env in enumerate(({}, {"HF_TOKEN": "hf_secret", "HF_HOME": str(tmp_path / "empty")})):
        dest = tmp_path / f"ok{i}" / "tiny"
        ok = pull(run_attest, e2e_registry, policy, "hf://acme/tiny", dest, *args, env={**env, **extra_env})
        assert ok.returncode == 0, ok.stderr
        assert (dest / "tokenizer.json").read_bytes() == (model / "tokenizer.json").read_bytes()
    assert hub.headers and all(h.get("authorization") == "Bearer hf_secret" for h in hub.headers[1:])
    assert len(cdn.requests) == 8 and not any("authorization" in h for h in cdn.headers)


def test_pull_refuses_a_signed_manifest_with_impossible_paths(
    e2e_registry: E2ERegistry, run_attest: RunAttest, tmp_path: Path
) -> None:
    """`a` beside `a/b`, a NUL, 2,100 segments: refused (by the registry, or by the pull), no traceback."""
    from attest.keys import load_private_key
    from attest.manifest import FileEntry, model_digest_hex
    from attest.predicates import MODEL_MANIFEST_V1
    from attest.signing import KeySigner
    from attest.statement import build_statement

    signer = KeySigner(load_private_key(e2e_registry.key))
    cases = {"1.0": ["a", "a/b"], "2.0": ["x\x00y"], "3.0": ["/".join(["d"] * 2100)]}
    for version, paths in cases.items():
        entries = [FileEntry(p, 1, "0" * 64) for p in paths]
        predicate = {
            "hashAlgorithm": "sha256",
            "model": {"name": "acme/evil", "version": version},
            "files": [e.to_json() for e in entries],
            "ignores": [],
        }
        statement = build_statement("acme/evil", model_digest_hex(entries), MODEL_MANIFEST_V1, predicate)
        bundle = tmp_path / f"evil-{version}.sigstore.json"
        bundle.write_text(json.dumps(signer.sign_statement(statement)))
        run_attest("publish", bundle, "--registry", e2e_registry.url, "--token", e2e_registry.token)
        policy = tmp_path / "policy.yaml"
        policy.write_text(MANIFEST_POLICY.format(pub=e2e_registry.pub))
        dest = tmp_path / version / "evil"
        result = pull(run_attest, e2e_registry, policy, tmp_path, dest, ref=f"acme/evil@{version}")
        assert result.returncode == 1, result.stderr
        one_error_line(result.stderr)
        assert not dest.exists() and staging_left(dest) == []


def test_pull_shows_a_progress_bar_on_a_terminal(
    released: tuple[Path, Path], e2e_registry: E2ERegistry, tmp_path: Path, file_server: Any
) -> None:
    """stderr is a terminal: a rich bar is drawn there; stdout stays plain text."""
    import pty

    model, policy = released
    mirror = file_server(model, drip={"config.json": 0.02})
    master, slave = pty.openpty()
    dest = tmp_path / "consumer" / "tiny"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *pull_args(e2e_registry, policy, mirror.url), "--to", str(dest)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    stdout, _ = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0, drawn.decode(errors="replace")
    assert b"downloading" in drawn and b"\x1b[" in drawn  # the bar, with terminal control sequences
    assert "downloading" not in stdout and "pulled acme/tiny@1.0" in stdout
