"""A tiny random Whisper made offline: the demo's base model, and the tests' (no hub, no downloads)."""

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

from whisper_assets.asr.model import language_token

# Whisper decoders suppress the first token of these (openai's and faster-whisper's non-speech tokens): with a
# tiny BPE that is the bare space, so the corpus teaches merges that keep them whole, as Whisper's BPE does.
NON_SPEECH_STARTS = " - ' ♩ ♪ ♫ ♬ ♭ ♮ ♯"


def build_tiny_whisper(
    out_dir: Path, corpus: list[str], vocab_size: int = 400, seed: int = 0, multilingual: bool = True
) -> Path:
    """A tiny random Whisper with a byte-level BPE trained offline on `corpus`.

    For demos and tests where no pretrained model can be downloaded: it has Whisper's special tokens (every
    language, tasks, no-timestamps) and timestamp tokens, a generation config (with language/task ids when
    `multilingual`), and d_model 64 with 2+2 layers. CTranslate2 and faster-whisper take any Whisper with fewer
    than 51,865 tokens for an English-only one, and prompt it without language and task tokens: a multilingual
    tiny model is right for transformers only, an English-only one (`multilingual=False`) for every engine.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator([*corpus, *[NON_SPEECH_STARTS] * 50], trainer)
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
    tokenizer.add_tokens([f"<|{k * 0.02:.2f}|>" for k in range(1501)])  # timestamps follow <|notimestamps|>
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
    languages = {
        "lang_to_id": {language_token(code): ids[language_token(code)] for code in LANGUAGES},
        "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
    }
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=ids[eot],
        pad_token_id=ids[eot],
        bos_token_id=ids[eot],
        max_length=128,
        is_multilingual=multilingual,
        **(languages if multilingual else {}),
        no_timestamps_token_id=ids["<|notimestamps|>"],
        alignment_heads=[
            [layer, head] for layer in range(1, 2) for head in range(2)
        ],  # the decoder's second half
        prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=[],
        begin_suppress_tokens=[ids[eot]],
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
