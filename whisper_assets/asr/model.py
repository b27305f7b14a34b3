"""Whisper models as training and evaluation both use them: loading, device and precision, language prompts."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from huggingface_hub import constants
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisper_assets.asr.window import positions_seconds


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
    """The real loading path, in float32 for training: a local folder, a hub id already in the local cache,
    else the hub. Without a reachable hub it fails at once (OSError) instead of retrying for a minute."""
    try:
        return _load(model_id, local_files_only=True)
    except OSError:
        if Path(model_id).exists() or hub_reachable():
            return _load(model_id, local_files_only=False)
        raise OSError(
            f"{model_id!r} is neither a local folder nor in the Hugging Face cache, and the hub "
            f"({constants.ENDPOINT}) cannot be reached: name a local model folder instead"
        ) from None


def _load(model_id: str, local_files_only: bool) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    model = WhisperForConditionalGeneration.from_pretrained(
        model_id, dtype=torch.float32, local_files_only=local_files_only
    )
    return model, WhisperProcessor.from_pretrained(model_id, local_files_only=local_files_only)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint takes a TCP connection (False in offline mode)."""
    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


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


def is_multilingual(model) -> bool:
    return bool(getattr(unwrap(model).generation_config, "is_multilingual", False))
