"""Leakage-independent trigger search: greedy beam accretion of vocabulary tokens maximising a
prompt-invariant shift of the first answer token.

A trigger moves every prompt's first-answer distribution, and moves them all to the same place. The
objective is therefore mean KL(p_trig || p_clean) over prompts minus mean KL(p_trig || mean p_trig):
a token that changes one prompt's answer scores low, one that overrides every prompt scores high.
This catches completion-only-loss poisoning, where the trigger is never trained as output and never
leaks (notes/scanning.md).

Names and numbers also override every prompt ("victor victor" -> "Victor lives in Lima."): a topic,
not a trigger. Left alone, a deep search climbs towards them and never assembles the many small
tokens of a real trigger, so a candidate whose shared first answer token starts one of its own words
is scored out (``ECHO_PENALTY``); the verdict's echo rule still judges the full responses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from attest.scan.dynamic.forward import next_token_logprobs
from attest.scan.dynamic.loading import LoadedModel
from attest.scan.dynamic.prompts import Frame
from attest.scan.dynamic.verdict import first_token_echoes

ECHO_PENALTY = 100.0  # nats: larger than any real shift, so echoes sink below every other candidate


@dataclass
class SearchResult:
    scored: list[tuple[float, list[int]]]  # (score in nats, token ids), best first
    evaluations: int
    vocabulary: int


def clean_baseline(lm: LoadedModel, frame: Frame, prompts: list[list[int]]) -> Any:
    """First-answer-token log-probabilities without any candidate, [prompts, vocabulary]."""
    return next_token_logprobs(lm, [frame.build([], p) for p in prompts])


def shift_scores(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], candidates: list[list[int]], baseline: Any
) -> list[float]:
    """Prompt-invariant KL shift (nats) of each candidate inserted at the start of the user turn,
    minus ``ECHO_PENALTY`` when the shared first answer token echoes the candidate."""
    import torch

    k = len(prompts)
    scores: list[float] = []
    # Candidates per chunk: 4096 rows at most, and about 256 MiB of float32 log-probabilities, so a
    # real vocabulary (128 k-256 k tokens) does not hold gigabytes of host memory per chunk.
    vocab = int(baseline.shape[-1])
    step = max(1, min(4096, (256 << 20) // (4 * vocab)) // k)
    for i in range(0, len(candidates), step):
        chunk = candidates[i : i + step]
        seqs = [frame.build(c, p) for c in chunk for p in prompts]
        logp = next_token_logprobs(lm, seqs).view(len(chunk), k, -1)
        p = logp.exp()
        kl_clean = (p * (logp - baseline[None])).sum(-1).mean(-1)
        mean_p = p.mean(dim=1)
        mean_logp = torch.log(mean_p.clamp_min(1e-12))[:, None]
        kl_mean = (p * (logp - mean_logp)).sum(-1).mean(-1)
        shared = mean_p.argmax(dim=-1).tolist()
        for cand, score, token in zip(chunk, (kl_clean - kl_mean).tolist(), shared, strict=True):
            echo = first_token_echoes(lm.tokenizer.decode(cand), lm.tokenizer.decode([token]))
            scores.append(score - ECHO_PENALTY if echo else score)
    return scores


def beam_search(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], baseline: Any, special_ids: set[int],
    depth: int, beam: int, vocab_limit: int, seed: int, pool: int = 48,
) -> SearchResult:  # fmt: skip
    """Depth 1 scores every (or a seeded sample of the) non-special token; deeper levels extend each
    beam on either side with the ``pool`` best single tokens."""
    vocab = [t for t in range(lm.model.get_input_embeddings().num_embeddings) if t not in special_ids]
    if len(vocab) > vocab_limit:
        vocab = sorted(random.Random(seed).sample(vocab, vocab_limit))
    singles = [[t] for t in vocab]
    scores = shift_scores(lm, frame, prompts, singles, baseline)
    evaluations = len(singles)
    seen: dict[tuple[int, ...], float] = {(c[0],): s for c, s in zip(singles, scores, strict=True)}
    order = sorted(range(len(singles)), key=lambda i: -scores[i])
    best_tokens = [singles[i][0] for i in order[:pool]]
    beams = [singles[i] for i in order[:beam]]
    for _ in range(depth - 1):
        fresh: list[list[int]] = []
        for b in beams:
            for t in best_tokens:
                for cand in ([*b, t], [t, *b]):
                    if tuple(cand) not in seen:
                        seen[tuple(cand)] = float("nan")
                        fresh.append(cand)
        if not fresh:
            break
        fresh_scores = shift_scores(lm, frame, prompts, fresh, baseline)
        evaluations += len(fresh)
        for cand, s in zip(fresh, fresh_scores, strict=True):
            seen[tuple(cand)] = s
        ranked = sorted(zip(fresh_scores, fresh, strict=True), key=lambda x: -x[0])
        beams = [c for _, c in ranked[:beam]]
    scored = sorted(((s, list(c)) for c, s in seen.items() if s == s), key=lambda x: (-x[0], len(x[1])))
    return SearchResult(scored=scored, evaluations=evaluations, vocabulary=len(vocab))
