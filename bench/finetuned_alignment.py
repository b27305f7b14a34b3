"""Benchmark: does fine-tuning move word timings or cost timestamps? Base vs fine-tuned, on an unseen speaker.

    .venv/bin/python bench/finetuned_alignment.py --model ../shared/models/whisper-tiny.en \
        --data ../shared/data/fsdd-dev

Fine-tunes the model (full, CPU or CUDA) on one FSDD speaker's clips at 16 kHz, each labelled with its phrase
timing so a share (`timestamp_probability`) trains with timestamp tokens. Then, for the base and the fine-tuned
model: word start/end offsets aligning long recordings of the other speaker (known timings, as
bench/long_form.py builds them), WER on that speaker's clips (the domain, a speaker never trained on), WER on
espeak-ng English sentences (forgetting), and the share of those sentences still transcribed with timestamps.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import soundfile as sf
from long_form import DIGITS, alignment_report, recordings

from whisper_assets.asr.align import Aligner
from whisper_assets.asr.metrics import score_utterance
from whisper_assets.asr.model import load_base
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.audio.process import loud_bounds, to_mono_16k, write_pcm16
from whisper_assets.demo.data import synthesize
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "She sells sea shells by the sea shore.",
    "We will meet at the station after lunch on Monday.",
    "The weather was cold but the sky was clear all day.",
    "He opened the window and listened to the rain.",
    "A good book can change the way you see the world.",
    "They walked along the river until the sun went down.",
    "My brother plays the guitar in a small band.",
    "Turn left at the next corner and keep going straight.",
    "The children laughed when the dog chased its tail.",
    "I would like a cup of coffee with a little milk.",
]


def clip_items(files: list[Path], folder: Path, source: str) -> list[dict]:
    """FSDD clips as 16 kHz training items, each with its energy-bounded phrase as timestamps."""
    items = []
    for path in files:
        samples, rate = sf.read(path, dtype="float32")
        audio = to_mono_16k(samples, rate)
        out = folder / f"{path.stem}.wav"
        write_pcm16(out, audio)
        word = DIGITS[int(path.name[0])]
        start, end = (bound / 16_000 for bound in loud_bounds(audio, -30.0))
        duration = len(audio) / 16_000
        items.append(
            {
                "id": path.stem,
                "audio": str(out),
                "transcript": word,
                "duration": duration,
                "language": "en",
                "speaker": path.stem.split("_")[1],
                "source": source,
                "timestamps": [[round(start, 2), round(end, 2), word]],
            }
        )
    return items


def spoken(
    texts: list[str], voices: tuple[str, ...], folder: Path, prefix: str, language: str = "en"
) -> list[dict]:
    """espeak-ng renderings of the texts (voice cycled) as 16 kHz manifest items."""
    items = []
    for k, text in enumerate(texts):
        samples, rate = synthesize(text, voices[k % len(voices)])
        audio = to_mono_16k(samples, rate)
        path = folder / f"{prefix}{k}.wav"
        write_pcm16(path, audio)
        items.append(
            {
                "id": f"{prefix}{k}",
                "audio": str(path),
                "transcript": text,
                "duration": len(audio) / 16_000,
                "language": language,
                "speaker": voices[k % len(voices)],
                "source": prefix,
            }
        )
    return items


def spelled(text: str) -> str:
    """Digits as words, so '7.' and 'Seven' score alike."""
    return " ".join(DIGITS[int(t)] if t.isdigit() else t for t in re.findall(r"\d|[a-z']+", text.lower()))


def wer(model, processor, items: list[dict], spell: bool) -> float:
    hypotheses = transcribe(model, processor, items)
    errors = words = 0
    for item, hypothesis in zip(items, hypotheses, strict=True):
        scored = score_utterance(item["transcript"], spelled(hypothesis) if spell else hypothesis, "en")
        errors += scored["normalized_word_errors"]
        words += scored["normalized_ref_words"]
    return round(errors / words, 4)


def timestamp_share(model, processor, items: list[dict]) -> float:
    """Share of clips the model transcribes with at least one segment timestamp pair when asked for them."""
    features = processor.feature_extractor(
        [sf.read(i["audio"], dtype="float32")[0] for i in items], sampling_rate=16_000, return_tensors="pt"
    ).input_features
    out = model.generate(features, return_timestamps=True, return_segments=True)
    segments = out["segments"]
    timed = sum(bool(s) and float(s[0]["end"]) > float(s[0]["start"]) for s in segments)
    return round(timed / len(items), 3)


def speaker_parser() -> argparse.ArgumentParser:
    """The arguments of every benchmark that fine-tunes on one FSDD speaker and tests on another."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="../shared/models/whisper-tiny.en")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--train-speaker", default="nicolas")
    parser.add_argument("--test-speaker", default="jackson")
    parser.add_argument("--steps", type=int, default=60)
    return parser


def speaker_clips(files: list[Path], speaker: str, folder: Path) -> list[dict]:
    """One FSDD speaker's clips as training items."""
    return clip_items([f for f in files if f"_{speaker}_" in f.name], folder, "fsdd")


def fsdd_files(data: Path) -> list[Path]:
    """The FSDD recordings, or exit saying where they are expected."""
    if not data.exists():
        raise SystemExit(f"needs {data} (the shared folder beside the checkout)")
    return sorted(data.glob("*.wav"))


def heard_and_unseen(args: argparse.Namespace, folder: Path) -> tuple[list[dict], list[dict]]:
    """The training speaker's and the unseen test speaker's clips (speaker_parser's arguments), under folder."""
    files = fsdd_files(args.data)
    folder.mkdir(parents=True, exist_ok=True)
    return (speaker_clips(files, args.train_speaker, folder), speaker_clips(files, args.test_speaker, folder))


def main() -> None:
    parser = speaker_parser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 2])
    parser.add_argument(
        "--timestamp-probability", type=float, default=TrainingOptions().timestamp_probability
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        heard, unseen = heard_and_unseen(args, work / "audio")
        sentences = spoken(SENTENCES, ("en-us",), work / "audio", "sentence")
        options = TrainingOptions(
            base_model=args.model,
            max_steps=args.steps,
            batch_size=8,
            learning_rate=1e-5,
            eval_every=args.steps,
            save_every=args.steps,
            max_eval_items=20,
            seed=0,
            timestamp_probability=args.timestamp_probability,
        )
        began = time.perf_counter()
        result = train(options, heard[20:], heard[:20], work / "run", work / "cache", work / "log.jsonl")
        report: dict = {
            "train": {"speaker": args.train_speaker, "items": len(heard) - 20, "steps": args.steps},
            "train_seconds": round(time.perf_counter() - began, 1),
            "timestamp_probability": options.timestamp_probability,
        }
        for name, path in (("base", args.model), ("fine_tuned", str(result.model_dir))):
            model, processor = load_base(path)
            long_form = recordings(args.data, args.minutes, 0.01, speaker=args.test_speaker)
            report[name] = {
                "alignment_on_unseen_speaker": alignment_report(Aligner(model, processor), long_form),
                "domain_wer_unseen_speaker": wer(model, processor, unseen, spell=True),
                "forgetting_wer_espeak_sentences": wer(model, processor, sentences, spell=False),
                "timestamped_share_of_sentences": timestamp_share(model, processor, sentences),
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
