"""Fixtures for the end-to-end flows: a tiny real transformers model, signed by a publisher key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core_fixtures import REPO


def build_tiny_llama(root: Path, seed: int = 0) -> Path:
    """A real, randomly initialised 2-layer Llama with a word-level tokenizer, saved like a hub repo."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    words = ["<unk>", "<s>", "</s>", "hello", "world", "model", "attest", "safe", "load", "the"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    root.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(root)
    fast.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_llama_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


@dataclass
class E2ERegistry:
    """A registry started the way a user starts one: `attest serve` over a data dir and trust file."""

    url: str
    data_dir: Path
    token: str
    key: Path  # publisher private key
    pub: Path  # publisher public key
    proc: subprocess.Popen[bytes]


def server_policy(publisher_fingerprint: str, require_scan: bool) -> dict[str, Any]:
    """The e2e registry's named policies: a manifest from the publisher (``manifest``), plus a
    backdoor scan (``scanned``). Only a server's own policies get signed verdicts (VSAs)."""
    require = [{"predicateType": "https://model-attest.dev/model-manifest/v1", "signedBy": ["publisher"]}]
    if require_scan:
        require.append(
            {"predicateType": "https://model-attest.dev/backdoor-scan/v1", "signedBy": ["publisher"]}
        )
    return {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": publisher_fingerprint}]},
        "require": require,
    }


def write_server_policies(root: Path) -> None:
    from attest.keys import fingerprint, load_public_key

    publisher = fingerprint(load_public_key(root / "publisher.pub"))
    for name, scan in (("manifest", False), ("scanned", True)):
        (root / f"policy-{name}.json").write_text(json.dumps(server_policy(publisher, scan)))


def start_registry(root: Path, port: int | None = None) -> E2ERegistry:
    """Keygen, trust file, token, namespace binding, then `attest serve` on a loopback port."""
    from tests.registry_fixtures import free_port

    def attest(*args: str | Path) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    root.mkdir(parents=True, exist_ok=True)
    data = root / "registry-data"
    attest("keygen", "--out", root / "publisher")
    (root / "trust.yaml").write_text("keys: [publisher.pub]\n")
    write_server_policies(root)
    token = json.loads(
        attest("registry", "token", "create", "--namespace", "acme", "--data-dir", data, "--json")
    )["token"]
    attest(
        "registry",
        "signer",
        "add",
        "--namespace",
        "acme",
        "--key",
        root / "publisher.pub",
        "--data-dir",
        data,
    )
    port = port or free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--data-dir",
            str(data),
            "--trust",
            str(root / "trust.yaml"),
            "--policy",
            f"manifest={root / 'policy-manifest.json'}",
            "--policy",
            f"scanned={root / 'policy-scanned.json'}",
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return E2ERegistry(url, data, token, root / "publisher.key", root / "publisher.pub", proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("registry did not start")


@pytest.fixture
def e2e_registry(tmp_path: Path) -> Iterator[E2ERegistry]:
    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.proc.terminate()
        reg.proc.wait(timeout=30)
