"""Leakage-independent trigger search: greedy beam accretion of vocabulary tokens maximising a
prompt-invariant shift of the answer, measured where a backdoor shows first.

A trigger moves every prompt's answer distribution, and moves them all to the same place. The
objective is therefore mean KL(p_trig || p_clean) over prompts minus mean KL(p_trig || mean p_trig):
a token that changes one prompt's answer scores low, one that overrides every prompt scores high.
This catches completion-only-loss poisoning, where the trigger is never trained as output and never
leaks (notes/scanning.md).

It is measured at two positions of the clean greedy answer, teacher-forced after the candidate: its
first token (a target that replaces or precedes the answer moves it) and the token after its end (a
target appended to a normal answer leaves the first token alone and replaces the end of turn there:
issue 15's missed backdoor). A candidate scores the better of the two.

Names and numbers also override every prompt ("victor victor" -> "Victor lives in Lima."): a topic,
not a trigger. Left alone, a deep search climbs towards them and never assembles the many small
tokens of a real trigger, so a candidate whose shared first answer token starts one of its own words
is scored out (``ECHO_PENALTY``); the verdict's echo rule still judges the full responses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from attest.scan.dynamic.forward import decode, logprobs_at
from attest.scan.dynamic.loading import LoadedModel
from attest.scan.dynamic.prompts import Frame
from attest.scan.dynamic.verdict import cut, first_token_echoes

ECHO_PENALTY = 100.0  # nats: larger than any real shift, so echoes sink below every other candidate


@dataclass
class SearchResult:
    scored: list[tuple[float, list[int]]]  # (first-answer-token shift in nats, token ids), best first
    evaluations: int
    vocabulary: int
    scored_end: list[tuple[float, list[int]]] = field(default_factory=list)  # shift after the answer


@dataclass
class Reference:
    """Clean behaviour the shifts are measured against: each prompt's greedy answer (end-of-turn
    dropped) and the log-probabilities [prompts, 2, vocabulary] at its first token and after its end."""

    answers: list[list[int]]
    logprobs: Any


def clean_baseline(lm: LoadedModel, frame: Frame, prompts: list[list[int]], tokens: int = 32) -> Reference:
    """The no-candidate reference of the search prompts (answers up to ``tokens`` long)."""
    raw, _ = decode(lm, [frame.build([], p) for p in prompts], tokens)
    answers = [[t for t in cut(a, frame.end_ids) if t not in frame.end_ids] for a in raw]
    seqs = [frame.build([], p) + a for p, a in zip(prompts, answers, strict=True)]
    return Reference(answers, logprobs_at(lm, seqs, [[len(a), 0] for a in answers]))


def shift_pairs(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], candidates: list[list[int]], ref: Reference
) -> list[tuple[float, float]]:
    """Prompt-invariant KL shift (nats) of each candidate inserted at the start of the user turn, at
    the first answer token and after the clean answer's end; a position whose shared next token
    echoes the candidate scores ``ECHO_PENALTY`` less."""
    import torch

    k = len(prompts)
    scores: list[tuple[float, float]] = []
    # Candidates per chunk: 4096 rows at most, and about 256 MiB of float32 log-probabilities (two
    # positions per row), so a real vocabulary (128 k-256 k tokens) stays bounded in host memory.
    vocab = int(ref.logprobs.shape[-1])
    step = max(1, min(4096, (256 << 20) // (8 * vocab)) // k)
    back = [[len(a), 0] for a in ref.answers]
    for i in range(0, len(candidates), step):
        chunk = candidates[i : i + step]
        seqs = [frame.build(c, p) + a for c in chunk for p, a in zip(prompts, ref.answers, strict=True)]
        logp = logprobs_at(lm, seqs, back * len(chunk)).view(len(chunk), k, 2, -1)
        p = logp.exp()
        kl_clean = (p * (logp - ref.logprobs[None])).sum(-1).mean(1)  # [chunk, 2]
        mean_p = p.mean(dim=1)  # [chunk, 2, V]
        mean_logp = torch.log(mean_p.clamp_min(1e-12))[:, None]
        kl_mean = (p * (logp - mean_logp)).sum(-1).mean(1)
        shared = mean_p.argmax(dim=-1).tolist()
        for cand, pair, tokens in zip(chunk, (kl_clean - kl_mean).tolist(), shared, strict=True):
            text = lm.tokenizer.decode(cand)
            first, end = (
                s - ECHO_PENALTY if first_token_echoes(text, lm.tokenizer.decode([t])) else s
                for s, t in zip(pair, tokens, strict=True)
            )
            scores.append((first, end))
    return scores


def shift_scores(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], candidates: list[list[int]], ref: Reference
) -> list[float]:
    """The larger of each candidate's two shifts (``shift_pairs``): how leaked n-grams are ranked."""
    return [max(pair) for pair in shift_pairs(lm, frame, prompts, candidates, ref)]


def beam_search(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], baseline: Reference, special_ids: set[int],
    depth: int, beam: int, vocab_limit: int, seed: int, pool: int = 48,
) -> SearchResult:  # fmt: skip
    """Depth 1 scores every (or a seeded sample of the) non-special token; deeper levels extend each
    beam on either side with the ``pool`` best single tokens. Two beams run over one cache of scores:
    one climbs the first-answer-token shift, one the shift after the answer's end. Kept apart, the
    end beam is not crowded out by names and numbers that override the whole answer (they shift the
    first token more than an appended target shifts the end), and the first beam is what it was."""
    vocab = [t for t in range(lm.model.get_input_embeddings().num_embeddings) if t not in special_ids]
    if len(vocab) > vocab_limit:
        vocab = sorted(random.Random(seed).sample(vocab, vocab_limit))
    singles = [[t] for t in vocab]
    seen: dict[tuple[int, ...], tuple[float, float]] = {
        (c[0],): pair
        for c, pair in zip(singles, shift_pairs(lm, frame, prompts, singles, baseline), strict=True)
    }
    evaluations = len(singles)
    for objective in (0, 1):
        order = sorted(vocab, key=lambda t: -seen[(t,)][objective])
        best_tokens = order[:pool]
        beams = [[t] for t in order[:beam]]
        for _ in range(depth - 1):
            fresh: list[list[int]] = []
            for b in beams:
                for t in best_tokens:
                    for cand in ([*b, t], [t, *b]):
                        if tuple(cand) not in seen and cand not in fresh:
                            fresh.append(cand)
            if fresh:
                for cand, pair in zip(fresh, shift_pairs(lm, frame, prompts, fresh, baseline), strict=True):
                    seen[tuple(cand)] = pair
                evaluations += len(fresh)
            extended = [cand for b in beams for t in best_tokens for cand in ([*b, t], [t, *b])]
            ranked = sorted(dict.fromkeys(tuple(c) for c in extended), key=lambda c: -seen[c][objective])
            beams = [list(c) for c in ranked[:beam]]
    scored, scored_end = (
        sorted(((pair[j], list(c)) for c, pair in seen.items()), key=lambda x: (-x[0], len(x[1])))
        for j in (0, 1)
    )
    return SearchResult(scored=scored, evaluations=evaluations, vocabulary=len(vocab), scored_end=scored_end)
