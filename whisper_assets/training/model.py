"""Adapt and save Whisper models for training: training methods, a shorter encoder window, merged saves."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.asr.model import unwrap
from whisper_assets.asr.window import FULL_WINDOW_SECONDS
from whisper_assets.training.options import TrainingOptions

FRAMES_PER_SECOND = 100  # log-mel hop of 10 ms


def apply_method(model: WhisperForConditionalGeneration, options: TrainingOptions):
    """full: train everything; freeze_encoder: decoder only; acoustic: the encoder and the decoder's
    cross-attention, the decoder's language model (embeddings, self-attention, MLPs) frozen; lora: low-rank
    adapters on attention (peft)."""
    if options.spec_augment:
        model.config.apply_spec_augment = True
        model.config.mask_time_prob = 0.05
        model.config.mask_feature_prob = 0.05
    if options.method == "freeze_encoder":
        model.model.encoder.requires_grad_(False)
    if options.method == "acoustic":
        model.model.decoder.requires_grad_(False)
        for layer in model.model.decoder.layers:
            layer.encoder_attn.requires_grad_(True)
            layer.encoder_attn_layer_norm.requires_grad_(True)
    if options.gradient_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if options.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=options.lora_rank,
            lora_alpha=options.lora_alpha,
            lora_dropout=options.lora_dropout,
            target_modules=options.lora_targets,
        )
        return get_peft_model(model, config)
    return model


def trim_encoder_window(
    model: WhisperForConditionalGeneration, feature_extractor: WhisperFeatureExtractor, seconds: float
) -> torch.nn.Embedding | None:
    """Shrink the encoder's input window (positional embeddings sliced), as icefall does for short audio; return
    the full window's embedding (None when nothing was trimmed), for `restore_encoder_window`.

    Whisper always encodes 30 s; a 2 s utterance wastes ~93% of that work. With a shorter window the model and
    its feature extractor agree on fewer frames; both are saved that way, so the exported model loads and
    decodes as is.
    """
    if seconds >= FULL_WINDOW_SECONDS:
        return None
    positions = round(seconds * FRAMES_PER_SECOND / 2)  # two conv layers, the second with stride 2
    encoder = model.get_encoder()
    full = encoder.embed_positions
    trimmed = torch.nn.Embedding(positions, full.embedding_dim)
    trimmed.weight.data.copy_(full.weight.data[:positions])
    trimmed.requires_grad_(full.weight.requires_grad)
    encoder.embed_positions = trimmed
    model.config.max_source_positions = positions
    trim_feature_window(feature_extractor, seconds)
    return full


def restore_encoder_window(
    model: WhisperForConditionalGeneration,
    feature_extractor: WhisperFeatureExtractor,
    full: torch.nn.Embedding,
) -> None:
    """Give a trimmed model its full 30 s window back: the positions it trained, then the rest of `full` (the
    embedding `trim_encoder_window` returned)."""
    encoder = unwrap(model).get_encoder()
    full = full.to(encoder.embed_positions.weight.device)
    full.weight.data[: encoder.embed_positions.num_embeddings].copy_(encoder.embed_positions.weight.data)
    encoder.embed_positions = full
    unwrap(model).config.max_source_positions = full.num_embeddings
    trim_feature_window(feature_extractor, FULL_WINDOW_SECONDS)


def trim_feature_window(feature_extractor: WhisperFeatureExtractor, seconds: float) -> None:
    """Pad or cut audio to `seconds` (at most Whisper's 30 s): the feature side of an encoder window."""
    seconds = min(seconds, FULL_WINDOW_SECONDS)
    feature_extractor.chunk_length = int(seconds) if float(seconds).is_integer() else seconds
    feature_extractor.n_samples = round(seconds * SAMPLE_RATE)
    feature_extractor.nb_max_frames = feature_extractor.n_samples // feature_extractor.hop_length


def save_model(model, processor: WhisperProcessor, out_dir: Path) -> Path:
    """Save a plain Whisper model (LoRA adapters merged) and its processor as safetensors."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    plain.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
