"""Load a causal LM for forward passes only: safetensors weights, no remote code, eager attention.

Pickled weights are never loaded here (the static stage judges them; loading one would execute it),
and ``attn_implementation="eager"`` is asserted because SDPA silently returns no attentions on
transformers 5 (notes/scanning.md) and the attention-hijacking signal would read as zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORTED_MODEL_TYPES = frozenset(
    {
        "llama",
        "gpt2",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "mistral",
        "phi3",
        "olmo2",
        "smollm3",
    }
)


class DynamicError(Exception):
    """The dynamic stage cannot run on this model: the scan result becomes ERROR with this message."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: Any
    model_type: str
    parameters: int


def load(root: Path) -> LoadedModel:
    """Load model and tokenizer from a local folder, or raise ``DynamicError`` saying why not."""
    config_path = root / "config.json"
    if not config_path.is_file():
        raise DynamicError("not a transformers model folder: config.json is missing")
    try:
        model_type = str(json.loads(config_path.read_text(encoding="utf-8")).get("model_type", ""))
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise DynamicError(f"config.json is unreadable: {exc}") from None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise DynamicError(
            f"unsupported architecture {model_type or '(none)'!r}: the dynamic stage supports causal LMs "
            f"of types {', '.join(sorted(SUPPORTED_MODEL_TYPES))}"
        )
    if not any(root.glob("*.safetensors")):
        raise DynamicError("no safetensors weights: the dynamic stage never loads pickled weights")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            root,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            attn_implementation="eager",
            dtype=torch.float32 if device.type == "cpu" else torch.bfloat16,
        )
    except Exception as exc:  # transformers raises many types for a broken folder
        raise DynamicError(
            f"cannot load the model: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        ) from None
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    if getattr(model.config, "_attn_implementation", None) != "eager":
        raise DynamicError("eager attention could not be enabled: attention signals would be empty")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    parameters = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tokenizer, device, model_type, parameters)
