"""Batched greedy transcription with a Whisper model (plain or LoRA-wrapped), of audio of any length."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import soundfile as sf
import torch
from transformers import WhisperProcessor

from whisper_assets.asr.audio import SAMPLE_RATE, load_audio
from whisper_assets.asr.model import is_multilingual, unwrap, window_seconds
from whisper_assets.asr.window import FULL_WINDOW_SECONDS
from whisper_assets.audio.vad import SpeechRegions, detect_speech
from whisper_assets.text.cuts import cut_points
from whisper_assets.text.timings import Word

_PAD_SECONDS = 0.2
# Whisper's generate sets these arguments itself and then warns that they were set, once per batch.
_OWN_ARGUMENT_WARNINGS = (
    "seem to have been set. `max_new_tokens` will take precedence",
    "together with generation-related arguments",
)


class _WhisperOwnArguments(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in _OWN_ARGUMENT_WARNINGS)


logging.getLogger("transformers.generation.utils").addFilter(_WhisperOwnArguments())


def speech_windows(
    speech: SpeechRegions, max_seconds: float = FULL_WINDOW_SECONDS
) -> list[tuple[float, float]]:
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


def window_items(
    samples: np.ndarray, speech: SpeechRegions, max_seconds: float, language: str | None
) -> list[dict]:
    """The audio of each of the recording's speech windows, as items to transcribe."""
    return [
        {"samples": samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)], "language": language}
        for start, end in speech_windows(speech, max_seconds)
    ]


@torch.inference_mode()
def transcribe(
    model,
    processor: WhisperProcessor,
    items: Sequence[dict],
    *,
    task: str = "transcribe",
    language: str | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 128,
) -> list[str]:
    """Hypotheses for manifest items (`audio`: a processed file, or `samples`: 16 kHz audio already read), in
    order.

    An item longer than the model's window (30 s, or what a trimmed model was trained on) is transcribed in
    windows cut between its speech regions, and their text joined: a model is judged on the whole recording,
    as a user would run it, never on its first few seconds.
    """
    limit = window_seconds(model)
    pieces: list[dict] = []
    owners: list[int] = []
    for index, item in enumerate(items):
        for piece in _pieces(item, limit):
            pieces.append(piece)
            owners.append(index)
    texts: list[list[str]] = [[] for _ in items]
    hypotheses = _transcribe_windows(model, processor, pieces, task, language, batch_size, max_new_tokens)
    for owner, text in zip(owners, hypotheses, strict=True):
        if text:
            texts[owner].append(text)
    return [" ".join(parts) for parts in texts]


def _pieces(item: dict, limit: float) -> list[dict]:
    """The item itself when the model takes it whole, else its speech windows (none when it has no speech)."""
    if "duration" in item:
        duration = item["duration"]
    elif "samples" in item:
        duration = len(item["samples"]) / SAMPLE_RATE
    else:
        duration = sf.info(item["audio"]).duration
    if duration <= limit:
        return [item]
    samples = _samples(item)
    return window_items(samples, detect_speech(samples), limit, item.get("language"))


def _samples(item: dict) -> np.ndarray:
    return item["samples"] if "samples" in item else load_audio((item["audio"],))


def _transcribe_windows(
    model,
    processor: WhisperProcessor,
    items: Sequence[dict],
    task: str,
    language: str | None,
    batch_size: int,
    max_new_tokens: int,
) -> list[str]:
    """One hypothesis per item that fits the model's window; batches hold one language so the prompt is the
    same."""
    whisper = unwrap(model)
    device = next(whisper.parameters()).device
    dtype = next(whisper.parameters()).dtype
    multilingual = is_multilingual(whisper)
    by_language: dict[str | None, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_language[(language or item["language"]) if multilingual else None].append(index)
    was_training = whisper.training
    whisper.eval()
    hypotheses: list[str] = [""] * len(items)
    for lang, indices in by_language.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            audio = [_samples(items[i]) for i in chunk]
            features = processor.feature_extractor(
                audio, sampling_rate=SAMPLE_RATE, return_tensors="pt"
            ).input_features
            kwargs = {"language": lang, "task": task} if multilingual else {}
            mask = torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=device)
            tokens = whisper.generate(
                features.to(device, dtype), attention_mask=mask, max_new_tokens=max_new_tokens, **kwargs
            )
            for i, text in zip(chunk, processor.batch_decode(tokens, skip_special_tokens=True), strict=True):
                hypotheses[i] = text.strip()
    whisper.train(was_training)
    return hypotheses
