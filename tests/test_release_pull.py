"""Publisher release and verified download, end to end through the CLI against a live registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core_fixtures import RunAttest, make_model
from tests.e2e_fixtures import E2ERegistry

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
    """A loopback HTTP server over a folder that records every request: a mirror, or a fake hub."""

    root: Path
    hub_repo: str | None = None
    advertise: dict[str, str] = field(default_factory=dict)  # path -> sha256 the hub claims
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                path = self.path.split("?")[0]
                if server.hub_repo and path.startswith(f"/api/models/{server.hub_repo}/revision/"):
                    return self._json(server.model_info())
                prefix = f"/{server.hub_repo}/resolve/main/" if server.hub_repo else "/"
                rel = path[len(prefix) :] if path.startswith(prefix) else None
                target = server.root / rel if rel else None
                if target is None or not target.is_file():
                    self.send_response(404)
                    self.end_headers()
                    return None
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None

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
) -> Any:
    """`attest release` of MODEL by the registry's publisher, with JSON output."""
    return run_attest(
        "release", model, "--name", name, "--version", version, "--registry", reg.url,
        "--token", token or reg.token, "--key", reg.key, "--state-dir", state or model.parent / "state",
        "--json", *extra,
    )  # fmt: skip


@pytest.fixture
def released(tmp_path: Path, e2e_registry: E2ERegistry, run_attest: RunAttest) -> tuple[Path, Path]:
    model = make_model(tmp_path / "publisher" / "tiny")
    result = release(run_attest, e2e_registry, model, "--no-scan")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["kind"] for r in out["published"]] == ["manifest"]
    assert out["published"][0]["logIndex"] == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(MANIFEST_POLICY.format(pub=e2e_registry.pub))
    return model, policy


def test_release_rerun_publishes_nothing_twice(
    released: tuple[Path, Path], e2e_registry: E2ERegistry, run_attest: RunAttest
) -> None:
    model, _ = released
    assert log_size(e2e_registry) == 1
    again = release(run_attest, e2e_registry, model, "--no-scan")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["published"][0]["logIndex"] == 0
    assert log_size(e2e_registry) == 1


def test_release_resumes_after_a_failure(
    tmp_path: Path, e2e_registry: E2ERegistry, run_attest: RunAttest
) -> None:
    model = make_model(tmp_path / "m2")
    constitution = tmp_path / "constitution.md"
    constitution.write_text("# Principles\n\nBe honest.\n\n# Safety\n\nRefuse harm.\n")
    extra = ("--no-scan", "--constitution", constitution, "--relationship", "trained-with")
    bad = release(
        run_attest, e2e_registry, model, *extra, version="2.0", token="wrong-token", state=tmp_path / "state"
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert log_size(e2e_registry) == 0
    state = json.loads(next((tmp_path / "state").glob("*.json")).read_text())
    assert set(state["steps"]) == {"manifest", "constitution"} and all(
        s["bundle"] for s in state["steps"].values()
    )
    good = release(run_attest, e2e_registry, model, *extra, version="2.0", state=tmp_path / "state")
    assert good.returncode == 0, good.stderr
    assert sorted(r["logIndex"] for r in json.loads(good.stdout)["published"]) == [0, 1]
    # the bundles published are the ones signed during the failed run: nothing was signed twice
    after = json.loads(next((tmp_path / "state").glob("*.json")).read_text())
    assert [s["bundle"] for s in after["steps"].values()] == [s["bundle"] for s in state["steps"].values()]


def pull(run_attest: RunAttest, reg: E2ERegistry, policy: Path, source: str, dest: Path, *extra: str) -> Any:
    return run_attest(
        "pull",
        "acme/tiny@1.0",
        "--registry",
        reg.url,
        "--policy",
        policy,
        "--from",
        source,
        "--to",
        dest,
        "--json",
        *extra,
    )


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
    result = pull(run_attest, e2e_registry, policy, str(model), dest)
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
    released: tuple[Path, Path], e2e_registry: E2ERegistry, run_attest: RunAttest
) -> None:
    """`attest verify MODEL --registry URL --policy P`: attestations fetched, proven, verified locally."""
    model, policy = released
    ok = run_attest("verify", model, "--registry", e2e_registry.url, "--policy", policy, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["evidence"][0]["predicateType"].endswith("/model-manifest/v1")
    (model / "tokenizer.json").write_text("{}\n")
    changed = run_attest("verify", model, "--registry", e2e_registry.url, "--policy", policy, "--json")
    assert changed.returncode == 1
    assert "MISSING_ATTESTATION" in {r["code"] for r in json.loads(changed.stdout)["reasons"]}


VSA_POLICY = """apiVersion: model-attest.dev/policy/v1
signers:
  registry:
    - keyFile: verifier.pub
require:
  - predicateType: https://slsa.dev/verification_summary/v1
    signedBy: [registry]
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
    require = [{"predicateType": "https://model-attest.dev/model-manifest/v1", "signedBy": ["publisher"]}]
    if require_scan:
        require.append(
            {"predicateType": "https://model-attest.dev/backdoor-scan/v1", "signedBy": ["publisher"]}
        )
    policy = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": publisher}]},
        "require": require,
    }
    answer = httpx.post(
        e2e_registry.url + "/v1/admission/evaluate",
        json={"modelDigest": digest, "policy": policy, "emitVsa": True, "modelName": "acme/tiny"},
    ).json()
    assert answer["allowed"] is (not require_scan)
    (tmp_path / "vsa.sigstore.json").write_text(json.dumps(answer["verificationSummary"]))
    (tmp_path / "vsa-policy.yaml").write_text(VSA_POLICY)
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
