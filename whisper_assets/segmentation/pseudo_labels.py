"""Pseudo-labels: a transcript, from a model, for an item that came without one.

The item is transcribed in windows of at most 30 s cut between its speech regions (never inside one that
fits), and the windows' text is joined; the segments step then aligns and cuts it like any transcript.
"""

from __future__ import annotations

import numpy as np

from whisper_assets.asr.align import WINDOW_SECONDS, Aligner
from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.audio.vad import SpeechRegions
from whisper_assets.segmentation.cut import cut_points
from whisper_assets.text.timings import Word

_PAD_SECONDS = 0.2
_MAX_NEW_TOKENS = 224  # half the decoder's context, as OpenAI's sample_len: room for 30 s of fast speech


def speech_windows(speech: SpeechRegions, max_seconds: float = WINDOW_SECONDS) -> list[tuple[float, float]]:
    """[start, end) windows of at most max_seconds covering every speech region, cut at the widest pauses; a
    region longer than a window is cut into windows."""
    if not speech.regions:
        return []
    regions = [Word("", start, end) for start, end in speech.regions]
    windows = []
    for span in cut_points(regions, speech.duration, max_seconds, _PAD_SECONDS):
        start = span.start
        while span.end - start > max_seconds:
            windows.append((start, start + max_seconds))
            start += max_seconds
        windows.append((start, span.end))
    return windows


def pseudo_label(audio: np.ndarray, speech: SpeechRegions, language: str, model: Aligner) -> str:
    """The model's transcript of a 16 kHz recording, window by window (empty when it heard nothing)."""
    items = [
        {"samples": audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)], "language": language}
        for start, end in speech_windows(speech, model.window_seconds)
    ]
    texts = transcribe(model.model, model.processor, items, max_new_tokens=_MAX_NEW_TOKENS)
    return " ".join(text for text in texts if text)
