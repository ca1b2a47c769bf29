"""Fixtures for the end-to-end flows: a tiny real transformers model, signed by a publisher key."""

from __future__ import annotations

from pathlib import Path

import pytest


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
