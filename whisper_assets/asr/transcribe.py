"""Batched greedy transcription with a Whisper model (plain or LoRA-wrapped)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from transformers import WhisperProcessor

from whisper_assets.asr.audio import SAMPLE_RATE, load_audio
from whisper_assets.asr.model import is_multilingual, unwrap


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
    order; batches hold one language so the prompt is the same."""
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
            audio = [
                items[i]["samples"] if "samples" in items[i] else load_audio((items[i]["audio"],))
                for i in chunk
            ]
            features = processor.feature_extractor(
                audio, sampling_rate=SAMPLE_RATE, return_tensors="pt"
            ).input_features
            kwargs = {"language": lang, "task": task} if multilingual else {}
            tokens = whisper.generate(features.to(device, dtype), max_new_tokens=max_new_tokens, **kwargs)
            for i, text in zip(chunk, processor.batch_decode(tokens, skip_special_tokens=True), strict=True):
                hypotheses[i] = text.strip()
    whisper.train(was_training)
    return hypotheses
