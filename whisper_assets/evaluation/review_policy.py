"""Which unreviewed entries a person should check first: those whose stored transcript is most likely wrong.

Three signals, each mapped to 0..1 and weighted: the model disagrees with the stored transcript (its WER against
it); the model finds the stored transcript improbable for the audio (mean token log-probability, teacher-forced);
and the transcript's speaking rate is implausible for its duration. Light on purpose: settings import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from whisper_assets.policy import Policy


class PrioritySettings(Policy):
    """How the review order weighs its signals (bench/review_priority.py measures them)."""

    disagreement_weight: float = Field(0.3, ge=0)
    logprob_weight: float = Field(0.2, ge=0)
    word_logprob_weight: float = Field(0.3, ge=0)
    speaking_rate_weight: float = Field(0.2, ge=0)
    worst_logprob: float = Field(4.0, gt=0, description="A mean token log-probability this low scores 1.")
    worst_word_logprob: float = Field(12.0, gt=0, description="A token log-probability this low scores 1.")
    typical_chars_per_second: float = Field(14.0, gt=0)
    batch_size: int = Field(8, ge=1)


@dataclass(frozen=True)
class Signals:
    disagreement: float  # the model's WER against the stored transcript
    logprob: float | None  # mean token log-probability of the stored transcript
    word_logprob: float | None  # its least probable token's log-probability
    chars_per_second: float


def priority(signals: Signals, settings: PrioritySettings) -> tuple[float, list[str]]:
    """The score (0..1, higher: check sooner) and the reasons that raised it."""
    rate = abs(math.log(max(signals.chars_per_second, 0.1) / settings.typical_chars_per_second)) / math.log(4)
    parts = {
        "model disagrees": (min(1.0, signals.disagreement), settings.disagreement_weight),
        "transcript improbable for the audio": (
            _scaled(signals.logprob, settings.worst_logprob),
            settings.logprob_weight,
        ),
        "a word improbable for the audio": (
            _scaled(signals.word_logprob, settings.worst_word_logprob),
            settings.word_logprob_weight,
        ),
        "speaking rate implausible": (min(1.0, rate), settings.speaking_rate_weight),
    }
    total = sum(weight for _, weight in parts.values()) or 1.0
    score = sum(value * weight for value, weight in parts.values()) / total
    return round(score, 4), [name for name, (value, _) in parts.items() if value >= 0.5]


def _scaled(logprob: float | None, worst: float) -> float:
    return 0.0 if logprob is None else min(1.0, -logprob / worst)
