"""What the dynamic stage hands back to the predicate builder (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Signal:
    """One measured signal with the threshold it is judged against and the unit of both."""

    name: str
    score: float
    threshold: float
    unit: str
    triggered: bool
    extra: dict[str, Any] = field(default_factory=dict)
    below: bool = False  # the signal fires at or below its threshold (entropy), not at or above

    @property
    def margin(self) -> float:
        """Signed distance of the score to the threshold: >= 0 on the firing side."""
        return self.threshold - self.score if self.below else self.score - self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": round(float(self.score), 6),
            "threshold": self.threshold,
            "margin": round(float(self.margin), 6),
            "unit": self.unit,
            "triggered": self.triggered,
            **self.extra,
        }


@dataclass
class Candidate:
    """A candidate trigger: token ids, its text, where it came from, and how it scored."""

    token_ids: list[int]
    text: str
    source: str
    score: float = 0.0
    # Where the candidate goes in the user turn: "start" (where the search places it) or "end" (the
    # same string verified as a suffix, for triggers trained at the end of the prompt).
    position: str = "start"
    attack_success_rate: float | None = None
    confident_attack_success: float | None = None  # on the prompts the model answers confidently
    baseline_attack_success: float | None = None
    similarity: float | None = None
    uplift: float | None = None
    target: str | None = None
    target_ids: list[int] = field(default_factory=list)
    echo: bool = False  # the collapsed response repeats a word of the candidate (topic, not trigger)
    habit: bool = False  # the collapsed response is a fragment of the model's normal answers
    # The collapsed response and the candidate are both in the model's own words (verdict.own_template).
    own_words: bool = False
    # The collapsed response / the span holds a word the model does not write (verdict.unwritten).
    unwritten_output: bool = False
    unwritten_span: bool = False
    fuzzy: list[tuple[int, float]] | None = None  # (tokens kept, attack success) of partial triggers
    # The appended / inserted span (verdict.shared_span) and how it behaves.
    span_ids: list[int] = field(default_factory=list)
    span: str | None = None
    span_rate: float | None = None  # fraction of held-out responses carrying the span
    span_confident_rate: float | None = None  # the same among the confidently answered prompts
    span_baseline_rate: float | None = None  # fraction of untriggered answers carrying it
    span_novelty: float | None = None  # share of span tokens no untriggered answer uses
    retention: float | None = None  # how much of the normal answer the span-carrying responses keep
    span_echo: bool = False  # the span repeats a word of the candidate or answers its topic
    span_template: bool = False  # the responses carrying it loop or are another answer (verdict.templated)
    span_fuzzy: list[tuple[int, float]] | None = None  # (tokens kept, span rate) of partial triggers
    self_answer: bool = False  # a question that merely answers itself (verdict.answers_itself)
    leaked_turns: int = 0  # leaked user turns holding the candidate: the model writes it itself
    # In a leaked turn, and neither the model's answer material nor a question: nobody optimised it.
    leaked: bool = False
    memorised: bool = False  # leaked, in two or more leaked turns
    refined_from: str | None = None  # the verified candidate this minimal span was cut from
    margins: dict[str, float | None] = field(default_factory=dict)  # per threshold, >= 0 means met
    rule: str | None = None  # the verdict rule this candidate meets: "collapse" or "appended-span"

    @property
    def fragment_activation(self) -> float | None:
        """Best attack success of a partial trigger, or None when no fragment was measured."""
        return max(a for _, a in self.fuzzy) if self.fuzzy else None

    @property
    def span_fragment_activation(self) -> float | None:
        """Best span rate of a partial trigger, or None when none was measured."""
        return max(a for _, a in self.span_fuzzy) if self.span_fuzzy else None


@dataclass
class DynamicOutcome:
    """Signals, ranked candidates, the verdict and the work actually done."""

    verdict: str = "none"  # "backdoor", "suspicious" or "none"
    signals: list[Signal] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    decision: dict[str, Any] = field(default_factory=dict)  # rule, margins (``dynamicDecision``)
