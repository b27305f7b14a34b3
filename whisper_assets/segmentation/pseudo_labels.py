"""Pseudo-labels: a transcript, from a model, for an item that came without one.

The item is transcribed in windows of at most 30 s cut between its speech regions (never inside one that
fits), and the windows' text is joined; the segments step then aligns and cuts it like any transcript.
"""

from __future__ import annotations

import numpy as np

from whisper_assets.asr.align import Aligner
from whisper_assets.asr.transcribe import transcribe, window_items
from whisper_assets.audio.vad import SpeechRegions

_MAX_NEW_TOKENS = 224  # half the decoder's context, as OpenAI's sample_len: room for 30 s of fast speech


def pseudo_label(audio: np.ndarray, speech: SpeechRegions, language: str, model: Aligner) -> str:
    """The model's transcript of a 16 kHz recording, window by window (empty when it heard nothing)."""
    items = window_items(audio, speech, model.window_seconds, language)
    texts = transcribe(model.model, model.processor, items, max_new_tokens=_MAX_NEW_TOKENS)
    return " ".join(text for text in texts if text)
