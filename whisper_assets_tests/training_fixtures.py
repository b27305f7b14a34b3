"""Tiny offline Whisper models and processed-audio items for training tests (no hub, no ../shared)."""

from __future__ import annotations

from pathlib import Path

from whisper_assets.audio.process import TARGET_RATE, write_pcm16
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
