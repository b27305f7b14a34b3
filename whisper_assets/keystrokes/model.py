"""The keystroke model: a base Whisper's encoder (LoRA on its self-attention) under a new, randomly initialized
decoder whose vocabulary is the key events; greedy decoding with no language or task tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    PreTrainedTokenizerFast,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)
from transformers.modeling_outputs import BaseModelOutput

from whisper_assets.asr.model import unwrap
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.training.model import trim_encoder_window

ENCODER_SELF_ATTENTION = r".*encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)"


def keystroke_config(
    base: WhisperConfig, tokenizer: PreTrainedTokenizerFast, decoder_layers: int | None
) -> WhisperConfig:
    """The base's config with a decoder sized to the key vocabulary and no Whisper prompt or suppression."""
    config = WhisperConfig.from_dict(base.to_dict())
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.decoder_layers = decoder_layers or base.decoder_layers
    config.suppress_tokens = None
    config.begin_suppress_tokens = None
    config.forced_decoder_ids = None
    return config


def new_model(
    options: KeystrokeOptions, tokenizer: PreTrainedTokenizerFast, window_seconds: float
) -> tuple[WhisperForConditionalGeneration, WhisperFeatureExtractor]:
    """The base's encoder weights (from_pretrained) in a model whose decoder starts random."""
    base = WhisperForConditionalGeneration.from_pretrained(options.base_model, dtype=torch.float32)
    extractor = WhisperFeatureExtractor.from_pretrained(options.base_model)
    model = WhisperForConditionalGeneration(keystroke_config(base.config, tokenizer, options.decoder_layers))
    model.model.encoder.load_state_dict(base.model.encoder.state_dict())
    trim_encoder_window(model, extractor, window_seconds)
    return model, extractor


def from_saved_config(folder: Path) -> tuple[WhisperForConditionalGeneration, WhisperFeatureExtractor]:
    """The run's model shape from its saved config, weights to be loaded from a checkpoint (nothing downloaded)."""
    model = WhisperForConditionalGeneration(WhisperConfig.from_pretrained(folder))
    return model, WhisperFeatureExtractor.from_pretrained(folder)


def with_adapters(model: WhisperForConditionalGeneration, options: KeystrokeOptions):
    """LoRA on the encoder's self-attention projections; the whole decoder (and its tied output layer) trains."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=options.lora_rank,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=ENCODER_SELF_ATTENTION,
    )
    wrapped = get_peft_model(model, config)
    unwrap(wrapped).model.decoder.requires_grad_(True)
    unwrap(wrapped).model.decoder.embed_positions.requires_grad_(True)
    return wrapped


def save_plain(
    model, extractor: WhisperFeatureExtractor, tokenizer: PreTrainedTokenizerFast, out_dir: Path
) -> Path:
    """A plain Whisper model (adapters merged) with its feature extractor and key tokenizer, loadable anywhere."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    plain.save_pretrained(out_dir, safe_serialization=True)
    extractor.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    return out_dir


@dataclass(frozen=True)
class Decoded:
    ids: list[list[int]]
    seconds: float  # wall time of the whole batch


@torch.no_grad()
def greedy_decode(model, features: torch.Tensor, bos: int, eos: int, max_new_tokens: int) -> Decoded:
    """Free-running greedy decoding from `<s>` until `</s>`, with the decoder's key/value cache."""
    whisper = unwrap(model)
    started = time.perf_counter()
    encoded = BaseModelOutput(last_hidden_state=whisper.model.encoder(features).last_hidden_state)
    batch = features.shape[0]
    generated = torch.full((batch, 1), bos, dtype=torch.long, device=features.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    past = None
    for _ in range(max_new_tokens):
        out = whisper(
            encoder_outputs=encoded,
            decoder_input_ids=generated[:, -1:] if past is not None else generated,
            past_key_values=past,
            use_cache=True,
        )
        past = out.past_key_values
        step = out.logits[:, -1].argmax(-1).masked_fill(finished, eos)
        generated = torch.cat([generated, step[:, None]], dim=1)
        finished |= step == eos
        if bool(finished.all()):
            break
    rows = []
    for row in generated[:, 1:].tolist():
        rows.append(row[: row.index(eos)] if eos in row else row)
    return Decoded(rows, time.perf_counter() - started)
