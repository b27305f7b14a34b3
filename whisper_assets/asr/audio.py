"""Reading processed audio for a model: 16 kHz mono files, joined by short pauses when packed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000  # what Whisper's feature extractor expects, and what processed_audio writes
PACK_GAP_SECONDS = 0.3  # the pause between packed utterances


def load_audio(paths: Sequence[str]) -> np.ndarray:
    """Read processed 16 kHz mono files, joined by short pauses when packed."""
    gap = np.zeros(int(PACK_GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    parts = []
    for k, path in enumerate(paths):
        audio, rate = sf.read(path, dtype="float32")
        if rate != SAMPLE_RATE:
            raise ValueError(f"{path} is {rate} Hz; training reads processed 16 kHz audio")
        parts.extend([gap, audio] if k else [audio])
    return np.concatenate(parts)
