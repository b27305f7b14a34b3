"""Benchmark: the training loop on a GPU at Whisper's real sizes (random weights: no machine here reaches the hub).

    python bench/gpu_training.py --sizes tiny base small --steps 30 --batch 32

Every size trains on the same generated clips (1-3 s of speech-like sound, digit transcripts) with the
product's defaults: the auto window (the clips' 4 s, the last sixth of the steps at 30 s), then the whole run at
30 s, then the auto window with distillation from the frozen base. Prints, per run, the steps per second, audio
seconds per second, peak GPU memory, the precision used and the first and last loss. The vocabulary is
Whisper's (51,865 rows), the tokenizer the offline demo one: costs are real, transcripts are not.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from whisper_assets.audio.process import TARGET_RATE, write_pcm16
from whisper_assets.demo.data import speech_like
from whisper_assets.demo.tiny_whisper import build_tiny_whisper
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train

# d_model, encoder and decoder layers, attention heads (OpenAI's model card sizes)
SIZES = {"tiny": (384, 4, 6), "base": (512, 6, 8), "small": (768, 12, 12), "medium": (1024, 24, 16)}
WORDS = "zero one two three four five six seven eight nine".split()


def generated_items(folder: Path, count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        samples = speech_like(text)
        path = folder / f"clip{i}.wav"
        write_pcm16(path, samples)
        items.append(
            {
                "id": f"clip-{i}",
                "audio": str(path),
                "transcript": text,
                "duration": len(samples) / TARGET_RATE,
                "language": "en",
                "speaker": f"s{i % 8}",
                "source": "generated",
            }
        )
    return items


def sized_model(folder: Path, size: str) -> Path:
    """The demo's offline tokenizer and processor with a random Whisper of `size`'s dimensions."""
    build_tiny_whisper(folder, WORDS * 20, multilingual=False)
    small = WhisperForConditionalGeneration.from_pretrained(folder)
    width, layers, heads = SIZES[size]
    config = WhisperConfig(
        **{
            **small.config.to_dict(),
            "vocab_size": 51865,
            "d_model": width,
            "encoder_layers": layers,
            "decoder_layers": layers,
            "encoder_attention_heads": heads,
            "decoder_attention_heads": heads,
            "encoder_ffn_dim": 4 * width,
            "decoder_ffn_dim": 4 * width,
        }
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = small.generation_config
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base", "small"], choices=sorted(SIZES))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--out", type=Path, help="folder for results.jsonl")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gpu-training-"))
    items = generated_items(root / "audio", args.clips)
    recipes = {
        "auto window": {},
        "30 s window": {"window_seconds": 30.0},
        "auto + distillation 0.5": {"distillation": 0.5},
    }
    results = []
    for size in args.sizes:
        model_dir = sized_model(root / f"model-{size}", size)
        for name, recipe in recipes.items():
            options = TrainingOptions(
                base_model=str(model_dir),
                max_steps=args.steps,
                batch_size=args.batch,
                eval_every=args.steps,
                save_every=args.steps,
                timestamp_probability=0.0,
                **recipe,
            )
            run = root / f"run-{size}-{len(results)}"
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            result = train(options, items, [], run, root / "cache", run / "log.jsonl")
            elapsed = time.perf_counter() - started
            losses = [r["loss"] for r in result.history if r["stage"] == "train"]
            row = {
                "size": size,
                "recipe": name,
                "device": result.device,
                "precision": result.precision,
                "window_seconds": result.window_seconds,
                "full_window_steps": result.full_window_steps,
                "steps_per_second": round(result.steps / elapsed, 2),
                "audio_seconds_per_second": round(result.audio_seconds / elapsed, 1),
                "peak_gpu_memory_mb": max((r.get("gpu_memory_mb", 0) for r in result.history), default=0),
                "first_loss": losses[0],
                "last_loss": losses[-1],
                "seconds": round(elapsed, 1),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))


if __name__ == "__main__":
    main()
