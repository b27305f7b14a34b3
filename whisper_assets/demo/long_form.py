"""Long recordings with known word timings, assembled from short clips: the demo's long item and the
alignment benchmark's ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RATE = 16_000
_FRAME = RATE // 100  # 10 ms


@dataclass(frozen=True)
class LongRecording:
    audio: np.ndarray
    words: list[tuple[str, float, float]]  # (text, start, end) of every clip's speech, in seconds

    @property
    def transcript(self) -> str:
        return " ".join(text for text, _, _ in self.words)


def speech_bounds(samples: np.ndarray, threshold_db: float = -30.0) -> tuple[float, float]:
    """First and last 10 ms frame within threshold_db of the clip's loudest frame, in seconds."""
    usable = len(samples) // _FRAME * _FRAME
    rms = np.sqrt(np.mean(samples[:usable].reshape(-1, _FRAME) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    return loud[0] * _FRAME / RATE, (loud[-1] + 1) * _FRAME / RATE


def assemble(
    clips: Sequence[tuple[np.ndarray, str]],
    seed: int = 0,
    pause: tuple[float, float] = (0.2, 1.5),
    noise: float = 0.0,
) -> LongRecording:
    """Join 16 kHz clips (one word or phrase each) with random pauses; a clip's timing is its energy bounds.

    With `noise` > 0, every other pause holds white noise of that standard deviation instead of silence.
    """
    rng = np.random.default_rng(seed)
    parts, words, at = [], [], 0.0
    for k, (samples, text) in enumerate(clips):
        gap = np.zeros(int(rng.uniform(*pause) * RATE), np.float32)
        if noise and k % 2:
            gap += rng.normal(0, noise, len(gap)).astype(np.float32)
        at += len(gap) / RATE
        start, end = speech_bounds(samples)
        words.append((text, round(at + start, 3), round(at + end, 3)))
        parts += [gap, samples.astype(np.float32)]
        at += len(samples) / RATE
    parts.append(np.zeros(int(rng.uniform(*pause) * RATE), np.float32))
    return LongRecording(np.concatenate(parts), words)
