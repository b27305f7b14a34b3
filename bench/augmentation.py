"""Benchmark: does training-time augmentation help on noisy audio, and what does it cost on clean audio?

    .venv/bin/python bench/augmentation.py --model ../shared/models/whisper-tiny.en \
        --data ../shared/data/fsdd-dev [--probabilities 0 0.5]

Fine-tunes the model once per augmentation probability (same data, steps and seed) on one FSDD speaker, then
measures WER on the other speaker's clips clean and mixed with generated pink noise at 10 dB SNR (a noise the
augmentation never adds: it adds white noise), and on espeak-ng English sentences (forgetting), next to the base.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from finetuned_alignment import SENTENCES, heard_and_unseen, speaker_parser, spoken, wer

from whisper_assets.asr.model import load_base
from whisper_assets.audio.process import write_pcm16
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train

SNR_DB = 10.0


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.normal(0, 1, length))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, length)
    return noise / np.sqrt(np.mean(noise**2))


def noisy_copies(items: list[dict], folder: Path, snr_db: float) -> list[dict]:
    """The items mixed with pink noise at snr_db (relative to each clip's mean power)."""
    rng = np.random.default_rng(0)
    out = []
    for item in items:
        audio, _ = sf.read(item["audio"], dtype="float32")
        noise = pink_noise(len(audio), rng) * np.sqrt(np.mean(audio**2) / 10 ** (snr_db / 10))
        path = folder / f"noisy-{Path(item['audio']).name}"
        write_pcm16(path, np.clip(audio + noise, -1, 1).astype(np.float32))
        out.append(item | {"audio": str(path)})
    return out


def measure(model_path: str, unseen: list[dict], noisy: list[dict], sentences: list[dict]) -> dict:
    model, processor = load_base(model_path)
    return {
        "domain_wer_unseen_speaker_clean": wer(model, processor, unseen, spell=True),
        f"domain_wer_unseen_speaker_pink_noise_{SNR_DB:g}db": wer(model, processor, noisy, spell=True),
        "forgetting_wer_espeak_sentences": wer(model, processor, sentences, spell=False),
    }


def main() -> None:
    parser = speaker_parser()
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--probabilities", type=float, nargs="+", default=[0.0, 0.5])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        heard, unseen = heard_and_unseen(args, work / "audio")
        noisy = noisy_copies(unseen, work / "audio", SNR_DB)
        sentences = spoken(SENTENCES, ("en-us",), work / "audio", "sentence")
        report: dict = {
            "train": {"speaker": args.train_speaker, "items": len(heard) - 20, "steps": args.steps},
            "window_seconds": args.window,
            "base": measure(args.model, unseen, noisy, sentences),
        }
        for probability in args.probabilities:
            options = TrainingOptions(
                base_model=args.model,
                max_steps=args.steps,
                batch_size=8,
                learning_rate=1e-5,
                eval_every=args.steps,
                save_every=args.steps,
                max_eval_items=20,
                seed=0,
                window_seconds=args.window,
                augment_probability=probability,
            )
            run = work / f"run-{probability:g}"
            began = time.perf_counter()
            result = train(options, heard[20:], heard[:20], run, run / "cache", work / f"{run.name}.jsonl")
            report[f"augment_probability_{probability:g}"] = {
                "train_seconds": round(time.perf_counter() - began, 1),
                **measure(str(result.model_dir), unseen, noisy, sentences),
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
