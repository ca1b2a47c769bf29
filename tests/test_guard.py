"""attest.guard: transformers, safetensors and torch refuse what does not verify; load what does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest import guard
from attest.keys import load_private_key, load_public_key
from attest.policy import Policy
from attest.signing import KeySigner, sign_model
from tests.core_fixtures import REPO


@pytest.fixture
def signed_llama(tmp_path: Path, tiny_llama_template: Path, keypair: tuple[Path, Path]) -> tuple[Path, Path]:
    model = tmp_path / "tiny-llama"
    shutil.copytree(tiny_llama_template, model)
    bundle = sign_model(KeySigner(load_private_key(keypair[0])), model, name="org/tiny-llama")
    (model / "manifest.sigstore.json").write_text(json.dumps(bundle))
    policy = tmp_path / "policy.yaml"
    shutil.copy(keypair[1], tmp_path / "publisher.pub")
    policy.write_text(
        "apiVersion: model-attest.dev/policy/v1\n"
        "signers:\n  publisher:\n    - keyFile: publisher.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n    signedBy: [publisher]\n"
    )
    return model, policy


@pytest.fixture
def installed(signed_llama: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    guard.install(policy=signed_llama[1])
    try:
        yield signed_llama
    finally:
        guard.uninstall()


def test_verified_model_and_tokenizer_load(installed: tuple[Path, Path]) -> None:
    import transformers

    model_dir, _ = installed
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert model.config.num_hidden_layers == 2
    assert tok("hello world")["input_ids"] == [3, 4]


def test_tampered_weights_refused_by_every_loader(installed: tuple[Path, Path]) -> None:
    import safetensors.torch
    import torch
    import transformers

    model_dir, _ = installed
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    for load in (
        lambda: transformers.AutoModelForCausalLM.from_pretrained(model_dir),
        lambda: transformers.LlamaForCausalLM.from_pretrained(model_dir),
        lambda: safetensors.torch.load_file(weights),
        lambda: torch.load(weights),
    ):
        with pytest.raises(guard.ModelRefused, match=r"MODEL_FILES_CHANGED.*model\.safetensors"):
            load()


def test_unsigned_model_refused(
    tmp_path: Path, tiny_llama_template: Path, installed: tuple[Path, Path]
) -> None:
    import transformers

    unsigned = tmp_path / "unsigned"
    shutil.copytree(tiny_llama_template, unsigned)
    with pytest.raises(guard.ModelRefused, match="MISSING_ATTESTATION"):
        transformers.AutoModelForCausalLM.from_pretrained(unsigned)
    with pytest.raises(guard.ModelRefused, match="MISSING_ATTESTATION"):
        transformers.AutoTokenizer.from_pretrained(unsigned)


def test_hub_ids_and_streams_refused(installed: tuple[Path, Path]) -> None:
    import io

    import torch
    import transformers

    with pytest.raises(guard.ModelRefused, match="not a local path"):
        transformers.AutoModelForCausalLM.from_pretrained("org/never-downloaded")
    with pytest.raises(guard.ModelRefused, match="only files on disk"):
        torch.load(io.BytesIO(b"x"))


def test_loaded_bytes_are_the_verified_bytes(installed: tuple[Path, Path]) -> None:
    """A change after verification does not reach the loader: it reads the private snapshot."""
    import safetensors.torch

    model_dir, _ = installed
    weights = model_dir / "model.safetensors"
    first = safetensors.torch.load_file(weights)
    weights.write_bytes(b"\x00" * 16)  # swapped after verification
    again = safetensors.torch.load_file(weights)
    assert set(first) == set(again)
    assert all(bool((first[k] == again[k]).all()) for k in first)


def test_no_policy_fails_closed(signed_llama: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    monkeypatch.delenv("ATTEST_POLICY", raising=False)
    guard.install()
    try:
        with pytest.raises(guard.ModelRefused, match="no verification policy"):
            transformers.AutoModelForCausalLM.from_pretrained(signed_llama[0])
    finally:
        guard.uninstall()


def test_uninstall_restores_loaders(signed_llama: tuple[Path, Path]) -> None:
    import torch
    import transformers

    before = (torch.load, vars(transformers.PreTrainedModel)["from_pretrained"])
    guard.install(policy=signed_llama[1])
    assert torch.load is not before[0]
    guard.uninstall()
    assert (torch.load, vars(transformers.PreTrainedModel)["from_pretrained"]) == before


def test_attest_run_guards_a_program(signed_llama: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, policy = signed_llama
    program = tmp_path / "load.py"
    program.write_text(
        "import sys, transformers\n"
        "m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "print('loaded', m.config.model_type)\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "cli.main",
        "run",
        "--policy",
        str(policy),
        "--",
        sys.executable,
        str(program),
        str(model_dir),
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "loaded llama" in ok.stdout
    (model_dir / "config.json").write_text(
        json.dumps({**json.loads((model_dir / "config.json").read_text()), "num_hidden_layers": 1})
    )
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert refused.returncode != 0
    assert "refusing to load" in refused.stderr and "config.json" in refused.stderr


def test_policy_key_must_match(signed_llama: tuple[Path, Path], tmp_path: Path) -> None:
    """A policy trusting another key refuses the publisher's model."""
    from attest.keys import write_key_pair

    write_key_pair(tmp_path / "other")
    model_dir, _ = signed_llama
    other = tmp_path / "other-policy.yaml"
    other.write_text(
        "apiVersion: model-attest.dev/policy/v1\nsigners:\n  publisher:\n    - keyFile: other.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n"
    )
    assert load_public_key(tmp_path / "other.pub")
    with pytest.raises(guard.ModelRefused):
        guard.verify_snapshot(model_dir, guard.GuardConfig(Policy.load(other)))
