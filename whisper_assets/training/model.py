"""Load, adapt and save Whisper models: training methods, precision, a shorter encoder window, tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from whisper_assets.training.options import TrainingOptions

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # log-mel hop of 10 ms
FULL_WINDOW_SECONDS = 30.0


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


def apply_method(model: WhisperForConditionalGeneration, options: TrainingOptions):
    """full: train everything; freeze_encoder: decoder only; lora: low-rank adapters on attention (peft)."""
    if options.spec_augment:
        model.config.apply_spec_augment = True
        model.config.mask_time_prob = 0.05
        model.config.mask_feature_prob = 0.05
    if options.method == "freeze_encoder":
        model.model.encoder.requires_grad_(False)
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
) -> None:
    """Shrink the encoder's input window (positional embeddings sliced), as icefall does for short audio.

    Whisper always encodes 30 s; a 2 s utterance wastes ~93% of that work. With a shorter window the model and
    its feature extractor agree on fewer frames; both are saved that way, so the exported model loads and
    decodes as is.
    """
    if seconds >= FULL_WINDOW_SECONDS:
        return
    positions = round(seconds * FRAMES_PER_SECOND / 2)  # two conv layers, the second with stride 2
    encoder = model.get_encoder()
    old = encoder.embed_positions
    trimmed = torch.nn.Embedding(positions, old.embedding_dim)
    trimmed.weight.data.copy_(old.weight.data[:positions])
    trimmed.requires_grad_(old.weight.requires_grad)
    encoder.embed_positions = trimmed
    model.config.max_source_positions = positions
    feature_extractor.chunk_length = int(seconds) if float(seconds).is_integer() else seconds
    feature_extractor.n_samples = round(seconds * SAMPLE_RATE)
    feature_extractor.nb_max_frames = feature_extractor.n_samples // feature_extractor.hop_length


def window_seconds(feature_extractor: WhisperFeatureExtractor) -> float:
    return feature_extractor.n_samples / SAMPLE_RATE


def save_model(model, processor: WhisperProcessor, out_dir: Path) -> Path:
    """Save a plain Whisper model (LoRA adapters merged) and its processor as safetensors."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    plain.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_whisper(out_dir: Path, corpus: list[str], vocab_size: int = 400, seed: int = 0) -> Path:
    """A tiny random multilingual Whisper with a byte-level BPE trained offline on `corpus`.

    For demos and tests where no pretrained model can be downloaded: it has Whisper's special tokens (every
    language, tasks, no-timestamps), a generation config with language/task ids, and d_model 64 with 2+2 layers.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(corpus, trainer)
    spec = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["merges"]]
    eot = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        vocab=spec["vocab"], merges=merges, unk_token=eot, bos_token=eot, eos_token=eot, pad_token=eot
    )
    specials = [
        "<|startoftranscript|>",
        *(language_token(code) for code in LANGUAGES),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in [eot, *specials]}
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    )

    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=ids[eot],
        bos_token_id=ids[eot],
        eos_token_id=ids[eot],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        suppress_tokens=None,
        begin_suppress_tokens=None,  # they live in the generation config
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=ids[eot],
        pad_token_id=ids[eot],
        bos_token_id=ids[eot],
        max_length=128,
        is_multilingual=True,
        lang_to_id={language_token(code): ids[language_token(code)] for code in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=[],
        begin_suppress_tokens=[ids[eot]],
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
