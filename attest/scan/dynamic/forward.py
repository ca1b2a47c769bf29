"""Batched forward passes (``torch.no_grad`` always): next-token distributions, greedy and sampled
decoding with a KV cache, and teacher-forced passes with eager attentions.

Sequences are left-padded with explicit position ids so every architecture sees the same positions
it would see unpadded; batches are larger on CUDA. torch is imported inside the functions only.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from attest.scan.dynamic.loading import LoadedModel


def batch_size(lm: LoadedModel, seq_len: int) -> int:
    """Rows per forward pass: bounded by tokens per batch and shrinking with model size. An
    accelerator takes far more per pass: a 7 B model still gets ~70 rows of 64 tokens on a GPU
    (activations and KV cache of a few GB), where the CPU budget would leave it one."""
    cuda = lm.device.type == "cuda"
    tokens = 65536 if cuda else 8192
    scale = max(1, lm.parameters // (500_000_000 if cuda else 5_000_000))
    return max(1, min(512, tokens // max(1, seq_len) // scale))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _pad_left(lm: LoadedModel, seqs: list[list[int]]) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    pad = int(lm.tokenizer.pad_token_id)
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=lm.device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def next_token_logprobs(lm: LoadedModel, seqs: list[list[int]]) -> Any:
    """Log-probabilities of the token following each sequence, as a float32 [N, V] tensor (CPU)."""
    import torch

    out = []
    size = batch_size(lm, max(len(s) for s in seqs))
    with torch.no_grad():
        for chunk in _chunks(seqs, size):
            ids, mask, positions = _pad_left(lm, chunk)
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, :]
            out.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out)


def logprobs_at(lm: LoadedModel, seqs: list[list[int]], back: list[list[int]]) -> Any:
    """Log-probabilities of the next token at chosen positions of each sequence, counted from its end
    (0 = after the last token), as a float32 [N, P, V] tensor (CPU); every row names P positions.
    One pass serves both the first answer token and the token after a teacher-forced answer."""
    import torch

    out = []
    size = batch_size(lm, max(len(s) for s in seqs))
    with torch.no_grad():
        for start in range(0, len(seqs), size):
            chunk = seqs[start : start + size]
            ids, mask, positions = _pad_left(lm, chunk)
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            width = ids.shape[1]
            index = torch.tensor([[width - 1 - b for b in back[start + r]] for r in range(len(chunk))])
            picked = logits[torch.arange(len(chunk))[:, None], index.to(logits.device)]
            out.append(torch.log_softmax(picked.float(), dim=-1).cpu())
    return torch.cat(out)


def tail_logprob(lm: LoadedModel, seqs: list[list[int]], tail: int) -> list[float]:
    """Mean log-probability the model gives the last ``tail`` tokens of each sequence, teacher-forced.
    Gathered per token, so a real vocabulary costs no [N, P, V] tensor on the host."""
    import torch

    out: list[float] = []
    size = batch_size(lm, max(len(s) for s in seqs))
    with torch.no_grad():
        for chunk in _chunks(seqs, size):
            ids, mask, positions = _pad_left(lm, chunk)
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            logp = torch.log_softmax(logits[:, -tail - 1 : -1].float(), dim=-1)
            out += logp.gather(-1, ids[:, -tail:, None]).squeeze(-1).mean(-1).tolist()
    return out


@dataclass(frozen=True)
class Sampling:
    """One decoding configuration of the leakage sweep (temperature 0 means greedy)."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0


def decode(
    lm: LoadedModel, seqs: list[list[int]], steps: int, sampling: Sampling = Sampling(), seed: int = 0
) -> tuple[list[list[int]], list[list[float]]]:
    """Continue every sequence for ``steps`` tokens; return the new tokens and the entropy (nats) of
    each step's next-token distribution. End-of-turn is not masked and does not stop decoding (the
    caller cuts at it), so leakage can run past the end of the user turn."""
    import torch

    tokens: list[list[int]] = []
    entropies: list[list[float]] = []
    size = batch_size(lm, max(len(s) for s in seqs) + steps)
    generator = torch.Generator(device=lm.device).manual_seed(seed)
    cache_kwarg = _cache_kwarg(lm.model)
    with torch.no_grad():
        for chunk in _chunks(seqs, size):
            ids, mask, positions = _pad_left(lm, chunk)
            out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1, :].float()
            new, ents = [], []
            for _ in range(steps):
                logp = torch.log_softmax(logits, dim=-1)
                ents.append(-(logp.exp() * logp).sum(-1))
                nxt = _pick(logits, sampling, generator)
                new.append(nxt)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                positions = positions[:, -1:] + 1
                out = lm.model(
                    input_ids=nxt[:, None], attention_mask=mask, position_ids=positions,
                    use_cache=True, **{cache_kwarg: past},
                )  # fmt: skip
                past, logits = out.past_key_values, out.logits[:, -1, :].float()
            tokens.extend(torch.stack(new, dim=1).tolist())
            entropies.extend(torch.stack(ents, dim=1).tolist())
    return tokens, entropies


def _cache_kwarg(model: Any) -> str:
    """transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns until 5.40)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _pick(logits: Any, sampling: Sampling, generator: Any) -> Any:
    import torch

    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    scaled = logits / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(scaled, min(sampling.top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) > sampling.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        scaled = torch.full_like(scaled, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def teacher_forced(
    lm: LoadedModel, seqs: list[list[int]], answer_lens: list[int], trigger_spans: list[tuple[int, int]]
) -> tuple[list[float], list[float]]:
    """One pass with eager attentions over ``prompt + clean answer`` sequences.

    Returns per sequence (a) the mean log-probability of the last ``answer_lens`` tokens (the clean
    continuation) and (b) the attention-hijacking score: mean attention from trigger tokens to
    trigger tokens minus mean attention mass from the following prompt tokens to the trigger,
    averaged over the middle layers (up to 8) and all heads. Raises if attentions are missing."""
    import torch

    logps: list[float] = []
    hijack: list[float] = []
    size = max(1, batch_size(lm, max(len(s) for s in seqs)) // 4)
    with torch.no_grad():
        for start in range(0, len(seqs), size):
            chunk = seqs[start : start + size]
            ids, mask, positions = _pad_left(lm, chunk)
            out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, output_attentions=True)
            attentions = out.attentions
            if not attentions or attentions[0] is None:
                raise RuntimeError("the model returned no attentions although eager attention was requested")
            n_layers = len(attentions)
            lo = max(0, n_layers // 2 - 4)
            middle = torch.stack([a.float() for a in attentions[lo : lo + min(8, n_layers)]]).mean(dim=(0, 2))
            logp = torch.log_softmax(out.logits.float(), dim=-1)
            width = ids.shape[1]
            for row, seq in enumerate(chunk):
                offset = width - len(seq)
                n_ans = answer_lens[start + row]
                targets = torch.tensor(seq[len(seq) - n_ans :], device=logp.device)
                pos = torch.arange(len(seq) - n_ans - 1, len(seq) - 1, device=logp.device) + offset
                logps.append(float(logp[row, pos, targets].mean()))
                t0, t1 = trigger_spans[start + row]
                hijack.append(_hijack(middle[row], offset, t0, t1, len(seq) - n_ans))
    return logps, hijack


def _hijack(attn: Any, offset: int, t0: int, t1: int, prompt_end: int) -> float:
    """Trigger self-attention minus prompt-to-trigger attention ("double triangle") in [-1, 1]."""
    if t1 <= t0 or prompt_end <= t1:
        return 0.0
    a, b, c = offset + t0, offset + t1, offset + prompt_end
    self_mass = attn[a:b, a:b].sum(-1).mean()
    prompt_mass = attn[b:c, a:b].sum(-1).mean()
    return float(self_mass - prompt_mass)
