"""Key signing and verify-before-load through the real CLI, with the tamper matrix of issue 2."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from tests.core_fixtures import REAL_FIXTURES, RunAttest, make_model

MANIFEST = "https://model-attest.dev/model-manifest/v1"


def sign(run_attest: RunAttest, model: Path, key: Path, out: Path, *extra: str) -> Path:
    result = run_attest(
        "sign", model, "--key", key, "--name", "org/tiny", "--version", "1.0", "-o", out, *extra
    )
    assert result.returncode == 0, result.stderr
    return out


def verify(run_attest: RunAttest, model: Path, bundle: Path, pub: Path, *extra: str) -> tuple[int, dict, str]:
    result = run_attest("verify", model, "--bundle", bundle, "--key", pub, "--json", *extra)
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, data, result.stderr


@pytest.fixture
def signed(
    tmp_path: Path, model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest
) -> tuple[Path, Path, Path]:
    bundle = sign(run_attest, model_dir, keypair[0], tmp_path / "tiny.sigstore.json")
    return model_dir, bundle, keypair[1]


def codes(data: dict) -> set[str]:
    return {r["code"] for r in data["reasons"]}


def unverified(data: dict) -> bool:
    """Denied for want of evidence, with the bundle reported as not verifying (the evidence rule)."""
    rejected = {r["code"] for r in data["rejected"]}
    return codes(data) == {"MISSING_ATTESTATION"} and rejected == {"BUNDLE_UNVERIFIED"}


def test_keygen_writes_private_key_0600(keypair: tuple[Path, Path]) -> None:
    assert stat.S_IMODE(keypair[0].stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in keypair[0].read_bytes() and b"ENCRYPTED" not in keypair[0].read_bytes()
    assert keypair[1].read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_keygen_refuses_to_overwrite(keypair: tuple[Path, Path], run_attest: RunAttest) -> None:
    before = keypair[0].read_bytes()
    result = run_attest("keygen", "--out", str(keypair[0])[: -len(".key")])
    assert result.returncode == 2 and "already exists" in result.stderr
    assert keypair[0].read_bytes() == before


def test_encrypted_key_needs_passphrase(tmp_path: Path, model_dir: Path, run_attest: RunAttest) -> None:
    env = {**os.environ, "ATTEST_KEY_PASSPHRASE": "correct horse"}
    assert run_attest("keygen", "--out", tmp_path / "enc", "--encrypt", env=env).returncode == 0
    assert b"ENCRYPTED" in (tmp_path / "enc.key").read_bytes()
    no_pass = {k: v for k, v in os.environ.items() if k != "ATTEST_KEY_PASSPHRASE"}
    result = run_attest(
        "sign", model_dir, "--key", tmp_path / "enc.key", "-o", tmp_path / "b.json", env=no_pass
    )
    assert result.returncode != 0 and "encrypted" in result.stderr and "Traceback" not in result.stderr
    wrong = {**os.environ, "ATTEST_KEY_PASSPHRASE": "wrong"}
    result = run_attest(
        "sign", model_dir, "--key", tmp_path / "enc.key", "-o", tmp_path / "b.json", env=wrong
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert not (tmp_path / "b.json").exists()
    assert (
        run_attest(
            "sign", model_dir, "--key", tmp_path / "enc.key", "-o", tmp_path / "b.json", env=env
        ).returncode
        == 0
    )


def test_bundle_format(signed: tuple[Path, Path, Path]) -> None:
    _, bundle, _ = signed
    doc = json.loads(bundle.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert set(doc["verificationMaterial"]["publicKey"]) == {"hint"}
    env = doc["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == MANIFEST
    assert statement["subject"][0]["name"] == "org/tiny"
    assert statement["predicate"]["model"] == {"name": "org/tiny", "version": "1.0"}
    assert [f["path"] for f in statement["predicate"]["files"]] == [
        "config.json",
        "extra/README.md",
        "model.safetensors",
        "tokenizer.json",
    ]


def test_verify_allows_untouched_model(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    rc, data, _ = verify(run_attest, model, bundle, pub)
    assert rc == 0 and data["allowed"] is True and data["reasons"] == []
    digest = run_attest("digest", model).stdout.strip()
    assert data["modelDigest"] == digest
    assert data["evidence"][0]["predicateType"] == MANIFEST


def test_changed_byte_refused(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    rc, out, _ = verify(run_attest, model, bundle, pub)
    assert rc == 1 and "MODEL_FILES_CHANGED" in codes(out)
    assert out["fileChanges"]["changed"] == ["model.safetensors"]


def test_added_file_refused(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    (model / "modeling_evil.py").write_text("import os\n")
    rc, out, _ = verify(run_attest, model, bundle, pub)
    assert rc == 1 and out["fileChanges"]["extra"] == ["modeling_evil.py"]


def test_removed_file_refused(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    (model / "tokenizer.json").unlink()
    rc, out, _ = verify(run_attest, model, bundle, pub)
    assert rc == 1 and out["fileChanges"]["missing"] == ["tokenizer.json"]


def test_renamed_file_refused(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    (model / "extra" / "README.md").rename(model / "extra" / "README.txt")
    rc, out, _ = verify(run_attest, model, bundle, pub)
    assert rc == 1
    assert out["fileChanges"]["missing"] == ["extra/README.md"] and out["fileChanges"]["extra"] == [
        "extra/README.txt"
    ]


def test_bundle_for_another_model_refused(
    tmp_path: Path, signed: tuple[Path, Path, Path], keypair: tuple[Path, Path], run_attest: RunAttest
) -> None:
    model, _, pub = signed
    other = make_model(tmp_path / "other")
    (other / "config.json").write_text('{"model_type": "gpt2"}\n')
    other_bundle = sign(run_attest, other, keypair[0], tmp_path / "other.sigstore.json")
    rc, out, _ = verify(run_attest, model, other_bundle, pub)
    assert rc == 1 and "MODEL_FILES_CHANGED" in codes(out) and out["allowed"] is False


def test_subject_mismatch_without_manifest_refused(
    tmp_path: Path, signed: tuple[Path, Path, Path], keypair: tuple[Path, Path], run_attest: RunAttest
) -> None:
    """A revocation of another model is not evidence about this one: reported, and it decides nothing."""
    model, bundle, pub = signed
    other = make_model(tmp_path / "other2")
    (other / "config.json").write_text("{}\n")
    predicate = tmp_path / "rev.json"
    predicate.write_text(
        json.dumps(
            {"revokedDigest": "sha256:" + "0" * 64, "reason": "test", "revokedOn": "2026-01-01T00:00:00Z"}
        )
    )
    rev = tmp_path / "rev.sigstore.json"
    assert (
        run_attest(
            "sign",
            other,
            "--key",
            keypair[0],
            "--predicate-type",
            "https://model-attest.dev/revocation/v1",
            "--predicate",
            predicate,
            "-o",
            rev,
        ).returncode
        == 0
    )
    result = run_attest("verify", model, "--bundle", bundle, "--bundle", rev, "--key", pub, "--json")
    out = json.loads(result.stdout)
    assert result.returncode == 0 and codes(out) == set()
    assert [(r["bundle"], r["code"]) for r in out["rejected"]] == [(str(rev), "SUBJECT_MISMATCH")]
    # alone, it leaves the manifest requirement unmet: the denial comes from the requirement
    alone = run_attest("verify", model, "--bundle", rev, "--key", pub, "--json")
    assert alone.returncode == 1 and codes(json.loads(alone.stdout)) == {"MISSING_ATTESTATION"}


def test_wrong_key_refused(tmp_path: Path, signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, _ = signed
    assert run_attest("keygen", "--out", tmp_path / "stranger").returncode == 0
    rc, out, _ = verify(run_attest, model, bundle, tmp_path / "stranger.pub")
    assert rc == 1 and unverified(out)
    assert any("signature does not verify" in r["message"] for r in out["rejected"])


def _rewrite_payload(bundle: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(bundle.read_text())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    mutate(statement, doc)
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    bundle.write_text(json.dumps(doc))


def test_changed_payload_refused(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    _rewrite_payload(bundle, lambda s, d: s["predicate"]["model"].update(version="9.9"))
    rc, out, _ = verify(run_attest, model, bundle, pub)
    assert rc == 1 and unverified(out)


def test_changed_payload_type_refused(signed: tuple[Path, Path, Path], run_attest: RunAttest) -> None:
    model, bundle, pub = signed
    doc = json.loads(bundle.read_text())
    doc["dsseEnvelope"]["payloadType"] = "application/json"
    bundle.write_text(json.dumps(doc))
    rc, out, _ = verify(run_attest, model, bundle, pub)
    assert rc == 1 and unverified(out) and any("payloadType" in r["message"] for r in out["rejected"])


def test_unknown_predicate_type_refused_at_verify(
    tmp_path: Path, signed: tuple[Path, Path, Path], keypair: tuple[Path, Path]
) -> None:
    """Even validly signed, an unknown predicate type is not evidence (fail closed): it is reported and
    cannot satisfy anything, and it does not deny a model that carries its required manifest."""
    from attest.keys import load_private_key
    from attest.manifest import compute_manifest
    from attest.model_verification import verify_model
    from attest.signing import KeySigner
    from attest.statement import build_statement
    from attest.verifying import Trust

    model, bundle, _ = signed
    signer = KeySigner(load_private_key(keypair[0]))
    odd = signer.sign_statement(
        build_statement("org/tiny", compute_manifest(model).digest, "https://example.com/odd/v1", {})
    )
    odd_path = tmp_path / "odd.sigstore.json"
    odd_path.write_text(json.dumps(odd))
    trust = Trust()
    trust.add_key(signer.public_key)
    decision = verify_model(model, [bundle, odd_path], trust)
    assert decision.allowed and [e["predicateType"] for e in decision.evidence] == [MANIFEST]
    assert [(r.bundle, r.code) for r in decision.rejected] == [(str(odd_path), "BUNDLE_UNVERIFIED")]
    assert "unknown predicate type" in decision.rejected[0].message
    alone = verify_model(model, [odd_path], trust)
    assert not alone.allowed and [r.code for r in alone.reasons] == ["MISSING_ATTESTATION"]


def test_unknown_predicate_type_refused_at_sign(
    model_dir: Path, keypair: tuple[Path, Path], tmp_path: Path, run_attest: RunAttest
) -> None:
    (tmp_path / "p.json").write_text("{}")
    result = run_attest(
        "sign",
        model_dir,
        "--key",
        keypair[0],
        "--predicate-type",
        "https://example.com/odd/v1",
        "--predicate",
        tmp_path / "p.json",
    )
    assert (
        result.returncode == 1
        and "unknown predicate type" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_schema_invalid_predicate_refused_at_sign(
    model_dir: Path, keypair: tuple[Path, Path], tmp_path: Path, run_attest: RunAttest
) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"reason": "no digest"}))
    result = run_attest(
        "sign",
        model_dir,
        "--key",
        keypair[0],
        "--predicate-type",
        "https://model-attest.dev/revocation/v1",
        "--predicate",
        tmp_path / "p.json",
        "-o",
        tmp_path / "x.json",
    )
    assert result.returncode == 1 and "revokedDigest" in result.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "content", [b"not json at all", b"[]", b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}']
)
def test_malformed_bundle_refused(
    tmp_path: Path, signed: tuple[Path, Path, Path], run_attest: RunAttest, content: bytes
) -> None:
    model, _, pub = signed
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    rc, out, _ = verify(run_attest, model, bad, pub)
    assert rc == 1 and unverified(out)


def test_usage_errors_exit_2(signed: tuple[Path, Path, Path], run_attest: RunAttest, tmp_path: Path) -> None:
    model, bundle, pub = signed
    missing = run_attest("verify", model, "--bundle", tmp_path / "nope.json", "--key", pub)
    assert (
        missing.returncode == 2
        and "cannot read bundle" in missing.stderr
        and "Traceback" not in missing.stderr
    )
    assert run_attest("verify", model).returncode == 2  # no --bundle, none in the folder, no --registry
    (tmp_path / "policy.yaml").write_text("apiVersion: nope\n")
    bad_policy = run_attest("verify", model, "--bundle", bundle, "--policy", tmp_path / "policy.yaml")
    assert (
        bad_policy.returncode == 2 and "policy" in bad_policy.stderr and "Traceback" not in bad_policy.stderr
    )


def test_model_path_error_is_one_line(tmp_path: Path, run_attest: RunAttest) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "link").symlink_to("/etc/passwd")
    result = run_attest("digest", root)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: link: symlink resolves outside the model folder (/etc/passwd)"


def test_digest_json_is_the_manifest(model_dir: Path, run_attest: RunAttest) -> None:
    result = run_attest("digest", model_dir, "--json")
    doc = json.loads(result.stdout)
    assert doc["digest"] == run_attest("digest", model_dir).stdout.strip()
    assert doc["files"][0]["path"] == "config.json"


# ---- interoperability with a real OpenSSF model-signing signature -------------------------------
OMS_KEY = REAL_FIXTURES / "oms-real" / "v1.1.0-elliptic-key"
OMS_PUB = REAL_FIXTURES / "oms-real" / "keys" / "signing-key-pub.pem"


def test_oms_key_signature_verifies(run_attest: RunAttest) -> None:
    rc, out, err = verify(run_attest, OMS_KEY, OMS_KEY / "model.sig", OMS_PUB)
    assert rc == 0, (out, err)
    assert out["evidence"][0]["predicateType"] == "https://model_signing/signature/v1.0"
    assert out["files"] == 2  # signme-1, signme-2; ignore-me and model.sig re-ignored


def test_oms_key_signature_fails_after_byte_change(tmp_path: Path, run_attest: RunAttest) -> None:
    import shutil

    copy = tmp_path / "v1.1.0-elliptic-key"
    shutil.copytree(OMS_KEY, copy)
    target = copy / "signme-1"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[0] ^= 0x20
    target.write_bytes(bytes(data))
    rc, out, _ = verify(run_attest, copy, copy / "model.sig", OMS_PUB)
    assert rc == 1 and out["fileChanges"]["changed"] == ["signme-1"]


def test_oms_signature_wrong_key_refused(tmp_path: Path, run_attest: RunAttest) -> None:
    assert run_attest("keygen", "--out", tmp_path / "k", "--algorithm", "ecdsa-p384").returncode == 0
    rc, out, _ = verify(run_attest, OMS_KEY, OMS_KEY / "model.sig", tmp_path / "k.pub")
    assert rc == 1 and unverified(out)


def test_ed25519_signing_round_trip(tmp_path: Path, model_dir: Path, run_attest: RunAttest) -> None:
    assert run_attest("keygen", "--out", tmp_path / "ed", "--algorithm", "ed25519").returncode == 0
    bundle = sign(run_attest, model_dir, tmp_path / "ed.key", tmp_path / "ed.sigstore.json")
    rc, _, _ = verify(run_attest, model_dir, bundle, tmp_path / "ed.pub")
    assert rc == 0


def test_verify_writes_a_signed_vsa(
    signed: tuple[Path, Path, Path], run_attest: RunAttest, tmp_path: Path
) -> None:
    model, bundle, pub = signed
    assert run_attest("keygen", "--out", tmp_path / "verifier").returncode == 0
    vsa = tmp_path / "vsa.sigstore.json"
    ok = run_attest(
        "verify",
        model,
        "--bundle",
        bundle,
        "--key",
        pub,
        "--vsa",
        vsa,
        "--vsa-key",
        tmp_path / "verifier.key",
        "--name",
        "org/tiny",
    )
    assert ok.returncode == 0, ok.stderr
    statement = json.loads(base64.b64decode(json.loads(vsa.read_text())["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert statement["predicate"]["verificationResult"] == "PASSED"
    # VSA v1: inputAttestations locate the bundles relied on (file URI + sha256), not their types
    assert statement["predicate"]["inputAttestations"][0]["uri"] == bundle.resolve().as_uri()
    # a downstream verifier admits on the summary alone, signed by the verifier's key
    (tmp_path / "vsa.yaml").write_text(  # pinned: this verifier, and the CLI's built-in policy
        "apiVersion: model-attest.dev/policy/v1\nsigners:\n  verifier:\n    - keyFile: verifier.pub\n"
        "require:\n  - predicateType: https://slsa.dev/verification_summary/v1\n    signedBy: [verifier]\n"
        "    policyUri: https://model-attest.dev/policy/default\n"
    )
    assert run_attest("verify", model, "--bundle", vsa, "--policy", tmp_path / "vsa.yaml").returncode == 0
    # --vsa without a key to sign it is a usage error, and nothing is written
    missing = run_attest("verify", model, "--bundle", bundle, "--key", pub, "--vsa", tmp_path / "x.json")
    assert missing.returncode == 2 and not (tmp_path / "x.json").exists()
