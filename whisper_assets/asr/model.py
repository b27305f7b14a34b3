"""Whisper models as training and evaluation both use them: loading, device and precision, language prompts."""

from __future__ import annotations

import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

FULL_WINDOW_SECONDS = 30.0  # what every released Whisper encodes at once
FRAME_SECONDS = 0.02  # one encoder output position


def resolve_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_precision(requested: str, device: torch.device) -> str:
    """auto: bf16 where the GPU supports it, fp16 on other CUDA devices, fp32 on CPU."""
    if requested != "auto":
        if requested != "fp32" and device.type != "cuda":
            raise ValueError(f"precision {requested} needs a CUDA device; use fp32 or auto on CPU")
        return requested
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def load_base(model_id: str) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """The real loading path: a hub id or a local folder, in float32 for training."""
    model = WhisperForConditionalGeneration.from_pretrained(model_id, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(model_id)
    return model, processor


def language_token(language: str) -> str:
    return f"<|{language}|>"


def configure_language(
    model: WhisperForConditionalGeneration, processor: WhisperProcessor, language: str | None, task: str
) -> None:
    """Put language and task into the generation config, so pipeline decoding matches training's prefix."""
    generation = model.generation_config
    generation.task = task
    generation.language = language
    generation.forced_decoder_ids = None
    model.config.forced_decoder_ids = None
    processor.tokenizer.set_prefix_tokens(language=language, task=task)


def unwrap(model) -> WhisperForConditionalGeneration:
    """The Whisper model under a peft wrapper (adapters are injected in place, so they stay active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def window_seconds(model) -> float:
    """The audio the model's encoder takes at once: 30 s, or less for a model trained with a trimmed window."""
    return positions_seconds(unwrap(model).config.max_source_positions)


def positions_seconds(max_source_positions: int) -> float:
    """The audio an encoder with this many positions covers (at most Whisper's 30 s)."""
    return min(FULL_WINDOW_SECONDS, round(max_source_positions * FRAME_SECONDS, 2))


def is_multilingual(model) -> bool:
    return bool(getattr(unwrap(model).generation_config, "is_multilingual", False))
