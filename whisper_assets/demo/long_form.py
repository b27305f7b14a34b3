"""Long recordings with known word timings, assembled from short clips: the demo's long item and the
alignment benchmark's ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from whisper_assets.audio.process import TARGET_RATE as RATE
from whisper_assets.audio.process import loud_bounds


@dataclass(frozen=True)
class LongRecording:
    audio: np.ndarray
    words: list[tuple[str, float, float]]  # (text, start, end) of every clip's speech, in seconds

    @property
    def transcript(self) -> str:
        return " ".join(text for text, _, _ in self.words)


def assemble(
    clips: Sequence[tuple[np.ndarray, str]],
    seed: int = 0,
    pause: tuple[float, float] = (0.2, 1.5),
    noise: float = 0.0,
) -> LongRecording:
    """Join 16 kHz clips (one word or phrase each) with random pauses; a clip's timing is its energy bounds
    (the 10 ms frames within 30 dB of its loudest).

    With `noise` > 0, every other pause holds white noise of that standard deviation instead of silence.
    """
    rng = np.random.default_rng(seed)
    parts, words, at = [], [], 0.0
    for k, (samples, text) in enumerate(clips):
        gap = np.zeros(int(rng.uniform(*pause) * RATE), np.float32)
        if noise and k % 2:
            gap += rng.normal(0, noise, len(gap)).astype(np.float32)
        at += len(gap) / RATE
        start, end = (bound / RATE for bound in loud_bounds(samples, -30.0))
        words.append((text, round(at + start, 3), round(at + end, 3)))
        parts += [gap, samples.astype(np.float32)]
        at += len(samples) / RATE
    parts.append(np.zeros(int(rng.uniform(*pause) * RATE), np.float32))
    return LongRecording(np.concatenate(parts), words)
