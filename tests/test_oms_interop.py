"""OpenSSF model signing, both ways, against the real ``model_signing`` 1.1.1 CLI (no mocks).

- ``attest sign --format oms`` in key, certificate and keyless modes writes a signature that
  ``model_signing verify`` accepts, and refuses once one byte of the model changes.
- ``attest verify`` accepts what model_signing signs: certificate mode with a private CA chain (the
  real fixture and a CA made here), shard serialization, BLAKE2b; and refuses what model_signing gets
  wrong (an empty file added in shard mode, a resource outside the model, unsigned extra files).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from attest.keys import spki_pem
from attest.signing import KeySigner
from attest.statement import build_statement
from tests.core_fixtures import RunAttest, make_model
from tests.jsverify import JsRefused, js_verify
from tests.sigstore_fixtures import FIXTURES, SIGNER_IDENTITY, RunningDomain
from tests.test_cli_errors import FORBID_IGNORES

OMS_TYPE = "https://model_signing/signature/v1.0"
REAL = FIXTURES / "oms-real"


def model_signing(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real model_signing CLI, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def attest_verify(
    run_attest: RunAttest, model: Path, sig: Path, *trust: str | Path
) -> tuple[int, dict[str, Any]]:
    result = run_attest("verify", model, "--bundle", sig, *trust, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def payload(sig: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))
    return doc


@pytest.fixture
def keypair(tmp_path: Path, run_attest: RunAttest) -> tuple[Path, Path]:
    assert run_attest("keygen", "--out", tmp_path / "k").returncode == 0
    return tmp_path / "k.key", tmp_path / "k.pub"


# --- attest signs, model_signing verifies -----------------------------------------------------------


def test_key_mode_verified_by_model_signing(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    model = make_model(tmp_path / "tiny-model")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # model_signing ignores .git
    sig = model / "model.sig"
    signed = run_attest("sign", model, "--key", key, "--format", "oms", "-o", sig, "--json")
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["predicateType"] == OMS_TYPE

    doc = json.loads(sig.read_text())
    # model_signing's key hint convention: sha256 of the PEM SubjectPublicKeyInfo (not the DER)
    assert doc["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(pub.read_bytes()).hexdigest()
    stmt = payload(sig)
    assert stmt["predicateType"] == OMS_TYPE
    assert stmt["subject"][0]["name"] == "tiny-model"
    assert "model.sig" in stmt["predicate"]["serialization"]["ignore_paths"]
    assert [r["name"] for r in stmt["predicate"]["resources"]] == [
        "config.json", "extra/README.md", "model.safetensors", "tokenizer.json",
    ]  # fmt: skip

    ok = model_signing("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verification succeeded" in ok.stdout
    rc, decision = attest_verify(run_attest, model, sig, "--key", pub)
    assert rc == 0, decision

    flip_byte(model / "model.safetensors", 40)
    bad = model_signing("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert bad.returncode == 1
    assert "model.safetensors" in bad.stdout + bad.stderr
    rc, decision = attest_verify(run_attest, model, sig, "--key", pub)
    assert rc == 1
    assert "MODEL_FILES_CHANGED" in json.dumps(decision)


def test_key_mode_payload_is_deterministic(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path]
) -> None:
    """Signing twice gives the same payload bytes (model_signing's ignore order varies per run)."""
    model = make_model(tmp_path / "m")
    (model / "NOTES.txt").write_text("release notes\n")
    outs = []
    for i in range(2):
        out = tmp_path / f"s{i}.json"
        assert run_attest("sign", model, "--key", keypair[0], "--format", "oms", "-o", out,
                          "--ignore", "extra", "--ignore", "NOTES.txt").returncode == 0  # fmt: skip
        outs.append(json.loads(out.read_text())["dsseEnvelope"]["payload"])
    assert outs[0] == outs[1]
    ignores = payload(tmp_path / "s0.json")["predicate"]["serialization"]["ignore_paths"]
    assert ignores == sorted(ignores) and "extra" in ignores


def test_oms_format_refuses_unusable_input(tmp_path: Path, run_attest: RunAttest) -> None:
    model = make_model(tmp_path / "m")
    assert run_attest("keygen", "--out", tmp_path / "ed", "--algorithm", "ed25519").returncode == 0
    ed = run_attest("sign", model, "--key", tmp_path / "ed.key", "--format", "oms")
    assert ed.returncode == 2 and "ECDSA" in ed.stderr and "Traceback" not in ed.stderr
    assert run_attest("keygen", "--out", tmp_path / "ec").returncode == 0
    glob = run_attest("sign", model, "--key", tmp_path / "ec.key", "--format", "oms", "--ignore", "*.md")
    assert glob.returncode == 2 and "literal" in glob.stderr
    named = run_attest("sign", model, "--key", tmp_path / "ec.key", "--format", "oms", "--name", "org/x")
    assert named.returncode == 2 and "--name" in named.stderr
    assert not list(tmp_path.glob("*.sigstore.json"))  # nothing written


@dataclass(frozen=True)
class Pki:
    root: Path
    intermediate: Path
    leaf: Path
    leaf_key: Path
    root_dn: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder: Path, label: str = "Example", leaf_days: int = 30, code_signing: bool = True) -> Pki:
    """A root CA, an intermediate and an EC P-256 code-signing leaf, all made here with cryptography."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def cert(
        subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool, days: int, san: str | None = None
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            b = b.add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            eku = ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.SERVER_AUTH
            b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            if san:
                b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = cert(f"{label} Root CA", root_key, f"{label} Root CA", root_key, True, 3650)
    inter = cert(f"{label} Signing CA", int_key, f"{label} Root CA", root_key, True, 1825)
    leaf = cert(
        "ML release signer",
        leaf_key,
        f"{label} Signing CA",
        int_key,
        False,
        leaf_days,
        "release@example.test",
    )
    paths = Pki(
        folder / "root.pem",
        folder / "int.pem",
        folder / "leaf.pem",
        folder / "leaf.key",
        f"CN={label} Root CA",
    )
    for path, c in ((paths.root, root), (paths.intermediate, inter), (paths.leaf, leaf)):
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    paths.leaf_key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def test_certificate_mode_both_ways(tmp_path: Path, run_attest: RunAttest) -> None:
    pki = make_pki(tmp_path / "pki")
    model = make_model(tmp_path / "tiny-model")
    sig = tmp_path / "model.sig"
    signed = run_attest(
        "sign", model, "--format", "oms", "--key", pki.leaf_key, "--signing-certificate", pki.leaf,
        "--certificate-chain", pki.intermediate, "-o", sig,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    chain = json.loads(sig.read_text())["verificationMaterial"]["x509CertificateChain"]["certificates"]
    assert len(chain) == 2  # leaf, then the intermediate

    ok = model_signing("verify", "certificate", model, "--signature", sig, "--certificate_chain", pki.root)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    trust = (
        "--certificate-chain",
        pki.root,
        "--identity",
        "release@example.test",
        "--issuer",
        f"x509:{pki.root_dn}",
    )
    rc, decision = attest_verify(run_attest, model, sig, *trust)
    assert rc == 0, decision
    assert decision["evidence"][0]["signer"]["identity"] == "release@example.test"

    # model_signing cannot pin who signed; attest can, and refuses another signer of the same CA
    rc, decision = attest_verify(run_attest, model, sig, *trust[:2], "--identity", "mallory@example.test",
                                 "--issuer", f"x509:{pki.root_dn}")  # fmt: skip
    assert rc == 1 and "not trusted" in json.dumps(decision["rejected"])
    # another CA: the chain does not verify
    other = make_pki(tmp_path / "other", label="Other")
    rc, decision = attest_verify(run_attest, model, sig, "--certificate-chain", other.root, *trust[2:])
    assert rc == 1 and "certificate chain does not verify" in json.dumps(decision["rejected"])
    # no CA at all: a clear refusal, not a Sigstore error
    rc, decision = attest_verify(run_attest, model, sig, *trust[2:])
    assert rc == 1 and "--certificate-chain" in json.dumps(decision["rejected"])

    flip_byte(model / "config.json")
    bad = model_signing("verify", "certificate", model, "--signature", sig, "--certificate_chain", pki.root)
    assert bad.returncode == 1
    rc, decision = attest_verify(run_attest, model, sig, *trust)
    assert rc == 1 and "MODEL_FILES_CHANGED" in json.dumps(decision)


def test_certificate_without_code_signing_refused(tmp_path: Path, run_attest: RunAttest) -> None:
    """A TLS server certificate from the same CA must not sign models."""
    pki = make_pki(tmp_path / "pki", code_signing=False)
    model = make_model(tmp_path / "m")
    sig = tmp_path / "model.sig"
    assert run_attest("sign", model, "--format", "oms", "--key", pki.leaf_key, "--signing-certificate", pki.leaf,
                      "--certificate-chain", pki.intermediate, "-o", sig).returncode == 0  # fmt: skip
    rc, decision = attest_verify(run_attest, model, sig, "--certificate-chain", pki.root,
                                 "--identity", "release@example.test", "--issuer", f"x509:{pki.root_dn}")  # fmt: skip
    assert rc == 1 and "ExtendedKeyUsage" in json.dumps(decision["rejected"])


def test_certificate_not_matching_key_refused(tmp_path: Path, run_attest: RunAttest) -> None:
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other", label="Other")
    model = make_model(tmp_path / "m")
    r = run_attest(
        "sign", model, "--format", "oms", "--key", other.leaf_key, "--signing-certificate", pki.leaf
    )
    assert r.returncode != 0 and "does not certify" in r.stderr and "Traceback" not in r.stderr


def test_real_certificate_fixture_verifies(tmp_path: Path, run_attest: RunAttest) -> None:
    """model_signing 1.1.0's own ``sign certificate`` output, with its private CA."""
    model = tmp_path / "v1.1.0-certificate"
    shutil.copytree(REAL / "v1.1.0-certificate", model)
    sig = model / "model.sig"
    trust = ("--certificate-chain", REAL / "keys" / "ca-cert.pem", "--identity", "CN=intermediate-ca",
             "--issuer", "x509:CN=root-ca")  # fmt: skip
    rc, decision = attest_verify(run_attest, model, sig, *trust)
    assert rc == 0, decision
    assert decision["evidence"][0]["signer"]["issuer"] == "x509:CN=root-ca"
    # a policy names the certificate signer like a Sigstore identity; the CA comes from the command line
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: model-attest.dev/policy/v1\nsigners:\n  publisher:\n"
        "    - identity: CN=intermediate-ca\n      issuer: x509:CN=root-ca\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n    signedBy: [publisher]\n"
    )
    rc, decision = attest_verify(run_attest, model, sig, *trust[:2], "--policy", policy)
    assert rc == 0, decision
    (model / "ignore-me").write_text("ignored by the signer\n")
    assert attest_verify(run_attest, model, sig, *trust)[0] == 0
    (model / "signme-3").write_text("not signed\n")  # an unsigned file is never waved through
    rc, decision = attest_verify(run_attest, model, sig, *trust)
    assert rc == 1 and "signme-3" in json.dumps(decision)


def test_keyless_mode_verified_by_model_signing(
    tmp_path: Path, run_attest: RunAttest, sigstore_domain: RunningDomain
) -> None:
    """Keyless against the loopback Sigstore domain; model_signing takes it through --trust_config."""
    model = make_model(tmp_path / "tiny-model")
    sig = tmp_path / "model.sig"
    tc = sigstore_domain.trust_configs["rekor1-set"]
    signed = run_attest("sign", model, "--format", "oms", "--identity-token", sigstore_domain.token(),
                        "--trust-config", tc, "-o", sig)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    args = ("--signature", sig, "--trust_config", tc, "--identity", SIGNER_IDENTITY,
            "--identity_provider", sigstore_domain.issuer)  # fmt: skip
    ok = model_signing("verify", "sigstore", model, *args)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    trust = ("--trust-config", tc, "--identity", SIGNER_IDENTITY, "--issuer", sigstore_domain.issuer)
    rc, decision = attest_verify(run_attest, model, sig, *trust)
    assert rc == 0, decision
    flip_byte(model / "tokenizer.json")
    assert model_signing("verify", "sigstore", model, *args).returncode == 1
    assert attest_verify(run_attest, model, sig, *trust)[0] == 1


# --- model_signing signs, attest verifies -----------------------------------------------------------


def _ms_sign(model: Path, sig: Path, key: Path, method: str, algorithm: str = "sha256") -> None:
    """Sign through model_signing's Python API (its CLI has no shard or BLAKE2 options), in a subprocess."""
    serialization_call = (
        f"use_shard_serialization(shard_size=1000, hashing_algorithm={algorithm!r})"
        if method == "shards"
        else f"use_file_serialization(hashing_algorithm={algorithm!r})"
    )
    code = (
        "import model_signing as ms\n"
        f"h = ms.hashing.Config().{serialization_call}\n"
        f"ms.signing.Config().use_elliptic_key_signer(private_key={str(key)!r})"
        f".set_hashing_config(h).sign({str(model)!r}, {str(sig)!r})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def shard_model(tmp_path: Path) -> Path:
    model = tmp_path / "sharded"
    model.mkdir()
    (model / "weights.bin").write_bytes(bytes(range(256)) * 10)  # 2560 bytes: three 1000-byte shards
    (model / "config.json").write_text('{"a": 1}\n')
    return model


def test_shard_signature_verifies(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path], shard_model: Path
) -> None:
    sig = tmp_path / "shard.sig"
    _ms_sign(shard_model, sig, keypair[0], "shards")
    stmt = payload(sig)
    assert stmt["predicate"]["serialization"]["method"] == "shards"
    assert isinstance(stmt["predicate"]["serialization"]["shard_size"], float)  # model_signing's fault 2
    assert {r["name"] for r in stmt["predicate"]["resources"]} >= {"weights.bin:2000:2560"}
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", keypair[1])
    assert rc == 0, decision

    flip_byte(shard_model / "weights.bin", 2500)  # inside the last shard
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", keypair[1])
    assert rc == 1 and "weights.bin" in json.dumps(decision["reasons"])


def test_shard_signature_empty_file_added_is_caught(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path], shard_model: Path
) -> None:
    """model_signing 1.1.1 misses an empty file added after a shard-mode signature; attest does not."""
    sig = tmp_path / "shard.sig"
    _ms_sign(shard_model, sig, keypair[0], "shards")
    (shard_model / "__init__.py").write_bytes(b"")
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", keypair[1])
    assert rc == 1 and "__init__.py" in json.dumps(decision)


def test_blake2b_signature_verifies(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path], shard_model: Path
) -> None:
    """model_signing's CLI cannot verify its own BLAKE2 signatures; attest re-hashes with BLAKE2b."""
    sig = tmp_path / "b2.sig"
    _ms_sign(shard_model, sig, keypair[0], "files", "blake2")
    assert payload(sig)["predicate"]["serialization"]["hash_type"] == "blake2b"
    assert attest_verify(run_attest, shard_model, sig, "--key", keypair[1])[0] == 0
    flip_byte(shard_model / "config.json")
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", keypair[1])
    assert rc == 1 and "config.json" in json.dumps(decision["reasons"])


# --- crafted signatures from a trusted key: what model_signing gets wrong ------------------------


def _crafted(tmp_path: Path, model: Path, predicate: dict[str, Any]) -> tuple[Path, Path]:
    """A validly signed OMS statement with a hostile predicate, and the public key that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    resources = predicate["resources"]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    stmt = build_statement(model.name, root, OMS_TYPE, predicate)
    sig = tmp_path / "crafted.sig"
    sig.write_text(json.dumps(KeySigner(key, pem_hint=True).sign_statement(stmt)))
    pub = tmp_path / "crafted.pub"
    pub.write_bytes(spki_pem(key.public_key()))
    return sig, pub


def _files(model: Path) -> list[dict[str, str]]:
    return [
        {"name": p.name, "algorithm": "sha256", "digest": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in sorted(model.iterdir())
    ]


def test_resource_outside_model_refused(tmp_path: Path, run_attest: RunAttest, shard_model: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    resources = [*_files(shard_model), {"name": "../outside.txt", "algorithm": "sha256", "digest": digest}]
    sig, pub = _crafted(tmp_path, shard_model, {"resources": resources, "serialization": {
        "method": "files", "hash_type": "sha256", "ignore_paths": []}})  # fmt: skip
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", pub)
    assert rc == 1 and "not a path inside the model" in json.dumps(decision)


def test_ignore_everything_refused(tmp_path: Path, run_attest: RunAttest, shard_model: Path) -> None:
    """A signature that ignores '.' would cover no file at all: refused, not read as 'all clean'."""
    sig, pub = _crafted(tmp_path, shard_model, {"resources": _files(shard_model), "serialization": {
        "method": "files", "hash_type": "sha256", "ignore_paths": ["."]}})  # fmt: skip
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", pub)
    assert rc == 1 and "ignore path" in json.dumps(decision)


def test_shards_that_skip_bytes_refused(tmp_path: Path, run_attest: RunAttest, shard_model: Path) -> None:
    """Shards must tile each file: a signature that leaves bytes 1000-2000 unsigned is refused."""
    data = (shard_model / "weights.bin").read_bytes()
    resources = [
        {"name": f"weights.bin:{a}:{b}", "algorithm": "sha256-sharded-1000",
         "digest": hashlib.sha256(data[a:b]).hexdigest()}
        for a, b in ((0, 1000), (2000, 2560))
    ]  # fmt: skip
    sig, pub = _crafted(tmp_path, shard_model, {"resources": resources, "serialization": {
        "method": "shards", "hash_type": "sha256", "shard_size": 1000, "ignore_paths": ["config.json"]}})  # fmt: skip
    rc, decision = attest_verify(run_attest, shard_model, sig, "--key", pub)
    assert rc == 1 and "do not tile" in json.dumps(decision)


def test_expired_certificate_refused_where_model_signing_accepts(
    tmp_path: Path, run_attest: RunAttest
) -> None:
    """An expired leaf: model_signing checks the chain at the leaf's start date and accepts it; with no
    trusted timestamp in the bundle, attest checks at the current time and refuses."""
    pki = make_pki(tmp_path / "pki", leaf_days=0)  # not after = not before, five minutes ago
    model = make_model(tmp_path / "m")
    sig = tmp_path / "model.sig"
    assert run_attest("sign", model, "--format", "oms", "--key", pki.leaf_key, "--signing-certificate", pki.leaf,
                      "--certificate-chain", pki.intermediate, "-o", sig).returncode == 0  # fmt: skip
    ms = model_signing("verify", "certificate", model, "--signature", sig, "--certificate_chain", pki.root)
    assert ms.returncode == 0, ms.stdout + ms.stderr
    rc, decision = attest_verify(run_attest, model, sig, "--certificate-chain", pki.root,
                                 "--identity", "release@example.test", "--issuer", f"x509:{pki.root_dn}")  # fmt: skip
    assert rc == 1 and "certificate chain does not verify" in json.dumps(decision["rejected"])


def test_oms_bundles_verify_in_sigstore_js(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path], sigstore_domain: RunningDomain,
    js_verifier: None,
) -> None:  # fmt: skip
    """A third verifier agrees: sigstore-js accepts attest's OMS bundles, key (PEM hint) and keyless."""
    model = make_model(tmp_path / "tiny-model")
    key_sig, keyless_sig = tmp_path / "key.sig", tmp_path / "keyless.sig"
    assert run_attest("sign", model, "--format", "oms", "--key", keypair[0], "-o", key_sig).returncode == 0
    tc = sigstore_domain.trust_configs["rekor2-tsa"]
    assert run_attest("sign", model, "--format", "oms", "--identity-token", sigstore_domain.token(),
                      "--trust-config", tc, "-o", keyless_sig).returncode == 0  # fmt: skip
    js_verify(key_sig, public_key_pem=keypair[1])
    js_verify(keyless_sig, sigstore_domain.trusted_root, SIGNER_IDENTITY, sigstore_domain.issuer)
    with pytest.raises(JsRefused):
        js_verify(keyless_sig, sigstore_domain.trusted_root, "mallory@example.test", sigstore_domain.issuer)


def test_ignore_paths_with_glob_characters_match_literally(tmp_path: Path, run_attest: RunAttest) -> None:
    """OMS ignore paths are literal: ``a[1].bin`` leaves out that file and not ``a1.bin``, ``b*c`` not
    ``bxc``, ``q?`` not ``qa``; a backslash and a trailing space are literal too; and no warning."""
    import warnings

    from attest._internal.walk import is_ignored
    from attest.oms import oms_ignores

    model = tmp_path / "globby"
    model.mkdir()
    signed_names = ["a1.bin", "bxc", "config.json", "qa", "t"]
    ignored_names = ["a[1].bin", "b*c", "q?", "w\\x", "t "]
    for name in signed_names + ignored_names:
        (model / name).write_text(f"content of {name}\n")
    resources = [r for r in _files(model) if r["name"] in signed_names]
    sig, pub = _crafted(tmp_path, model, {"resources": resources, "serialization": {
        "method": "files", "hash_type": "sha256", "ignore_paths": ignored_names}})  # fmt: skip
    result = run_attest("verify", model, "--bundle", sig, "--key", pub, "--json")
    assert "Warning" not in result.stderr, result.stderr  # pathspec warned about '[[]' before
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(json.loads(result.stdout)["ignoredFiles"]) == sorted(ignored_names)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        patterns = oms_ignores({"serialization": {"ignore_paths": ignored_names}})
        assert [n for n in signed_names + ignored_names if is_ignored(n, patterns)] == ignored_names

    # an unsigned file that a glob reading of the ignore paths would have hidden is caught
    (model / "a2.bin").write_text("planted\n")
    rc, decision = attest_verify(run_attest, model, sig, "--key", pub)
    assert rc == 1 and "a2.bin" in json.dumps(decision)


def test_forbid_ignores_applies_to_oms_signatures(
    tmp_path: Path, run_attest: RunAttest, keypair: tuple[Path, Path]
) -> None:
    """``forbidIgnores`` denies an OpenSSF signature that leaves files out with ignore paths, and
    accepts one that leaves out only what every OMS signature does (git paths, the signature file)."""
    key, pub = keypair
    model = make_model(tmp_path / "m")
    (model / "NOTES.txt").write_text("not signed\n")
    policy = tmp_path / "strict.yaml"
    policy.write_text(FORBID_IGNORES.format(pub=pub))

    hiding = tmp_path / "hiding.sig"
    assert run_attest("sign", model, "--key", key, "--format", "oms", "-o", hiding,
                      "--ignore", "NOTES.txt").returncode == 0  # fmt: skip
    assert attest_verify(run_attest, model, hiding, "--key", pub)[0] == 0  # fine without the policy
    result = run_attest("verify", model, "--bundle", hiding, "--policy", policy, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    reasons = json.loads(result.stdout)["reasons"]
    assert [r["code"] for r in reasons] == ["IGNORES_FORBIDDEN"]
    assert "NOTES.txt" in reasons[0]["message"]

    (model / "NOTES.txt").unlink()
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    plain = model / "model.sig"  # inside the model: recorded as an ignore path, as model_signing does
    assert run_attest("sign", model, "--key", key, "--format", "oms", "-o", plain).returncode == 0
    assert "model.sig" in payload(plain)["predicate"]["serialization"]["ignore_paths"]
    result = run_attest("verify", model, "--bundle", plain, "--policy", policy, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
