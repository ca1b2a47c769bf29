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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": round(float(self.score), 6),
            "threshold": self.threshold,
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
    attack_success_rate: float | None = None
    confident_attack_success: float | None = None  # on the prompts the model answers confidently
    baseline_attack_success: float | None = None
    similarity: float | None = None
    uplift: float | None = None
    target: str | None = None
    target_ids: list[int] = field(default_factory=list)
    echo: bool = False  # the collapsed response repeats a word of the candidate (topic, not trigger)
    habit: bool = False  # the collapsed response is a fragment of the model's normal answers
    fuzzy: list[tuple[int, float]] | None = None  # (tokens kept, attack success) of partial triggers

    @property
    def fragment_activation(self) -> float | None:
        """Best attack success of a partial trigger, or None when no fragment was measured."""
        return max(a for _, a in self.fuzzy) if self.fuzzy else None


@dataclass
class DynamicOutcome:
    """Signals, ranked candidates, the verdict and the work actually done."""

    verdict: str = "none"  # "backdoor", "suspicious" or "none"
    signals: list[Signal] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)
    error: str | None = None
