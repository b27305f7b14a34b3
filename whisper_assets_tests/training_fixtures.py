"""Tiny offline Whisper models and processed-audio items for training tests (no hub, no ../shared)."""

from __future__ import annotations

from pathlib import Path

import yaml

from whisper_assets.audio.process import TARGET_RATE, write_pcm16
from whisper_assets.curation.manifests import publish_staged, stage_manifests
from whisper_assets.demo.data import speech_like
from whisper_assets.demo.tiny_whisper import build_tiny_whisper

TEXTS = [
    ("zero one two", "ana", "en"),
    ("three four five", "ana", "en"),
    ("six seven", "bob", "en"),
    ("eight nine ten", "bob", "en"),
    ("jedan dva tri", "vera", "sr"),
    ("četiri pet", "vera", "sr"),
]


def make_items(folder: Path) -> list[dict]:
    """Manifest items (as `splits` writes them) over freshly written 16 kHz clips."""
    items = []
    for i, (text, speaker, language) in enumerate(TEXTS):
        samples = speech_like(text)
        path = folder / f"clip{i}.wav"
        write_pcm16(path, samples)
        items.append(
            {
                "id": f"item-{i}",
                "parent_id": f"item-{i}",
                "offset": 0.0,
                "audio": str(path),
                "transcript": text,
                "duration": len(samples) / TARGET_RATE,
                "language": language,
                "speaker": speaker,
                "source": "test",
            }
        )
    return items


def make_tiny_model(folder: Path) -> Path:
    return build_tiny_whisper(folder, [text for text, _, _ in TEXTS] * 10)


def speak_whole_words(model_dir: Path) -> Path:
    """Make a tiny random model's greedy output whole vocabulary words (every other token suppressed), so its
    transcripts can be aligned: a random model otherwise emits sub-word debris with no spaces."""
    from transformers import GenerationConfig, WhisperTokenizer

    tokenizer = WhisperTokenizer.from_pretrained(model_dir)
    words = {i for token, i in tokenizer.get_vocab().items() if token.startswith("Ġ") and token[1:].isalpha()}
    generation = GenerationConfig.from_pretrained(model_dir)
    generation.suppress_tokens = [
        i for i in range(len(tokenizer)) if i not in words and i != tokenizer.eos_token_id
    ]
    generation.save_pretrained(model_dir)
    return model_dir


def make_training_project(root: Path) -> Path:
    """A data root with published split manifests and a tiny base model, as `splits` would have left it, and a
    settings file for two-step training runs; returns the settings file."""
    items = make_items(root / "data" / "processed")
    splits = {"train": items[:4], "validation": items[4:5], "test": items[5:]}
    publish_staged(root / "manifests", stage_manifests(root / "manifests", splits))
    training = {
        "base_model": str(make_tiny_model(root / "base-model")),
        "max_steps": 2,
        "batch_size": 2,
        "eval_every": 2,
        "save_every": 2,
        "window_seconds": 30.0,
        "generation_max_tokens": 8,
        "learning_rate": 1e-12,
    }
    config = root / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump({"data_root": ".", "training": training}))
    return config
