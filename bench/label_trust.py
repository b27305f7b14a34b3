"""Benchmark: can a kept segment's text be trusted? Long recordings with known word times through `segments`.

    .venv/bin/python bench/label_trust.py --model ../shared/models/whisper-tiny.en --data ../shared/data/fsdd-dev

Recordings are joined from real FSDD takes (one speaker each; pauses of 0.2-1.5 s): `random` digits, or
`repeated` digits (each digit 12-20 times in a row, different takes); pauses of exact digital silence or white
noise; kept at 16 kHz or passed through 8 kHz. Each goes through the `segments` step's own code (speech regions
from Silero VAD, forced alignment, cuts at pauses, every check on by default) as a long item of one source.

Per condition: mislabelled kept segments (the words spoken in a kept segment's span differ from its text; a
word counts as spoken in the span when most of it lies inside), words kept (in correctly labelled kept
segments, of all words spoken), word start/end offsets of the alignment against the takes' energy bounds, and
seconds per audio minute.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from long_form import DIGITS, offset_summary

from whisper_assets.audio.process import write_pcm16
from whisper_assets.audio.vad import detect_speech
from whisper_assets.demo.long_form import LongRecording, assemble
from whisper_assets.segmentation.policy import SegmentationSettings
from whisper_assets.segmentation.segments import LazyAligner, SegmentJob, SegmentPaths, segment_items
from whisper_assets.sources.folder import FolderSource

CONDITIONS = [
    (kind, pause, rate)
    for kind in ("random", "repeated")
    for pause in ("silence", "noise")
    for rate in (16_000, 8_000)
]


def takes(data: Path, speaker: str) -> dict[str, list[np.ndarray]]:
    """Every take of each digit by one speaker, 16 kHz."""
    by_digit: dict[str, list[np.ndarray]] = {d: [] for d in DIGITS}
    for path in sorted(data.glob(f"*_{speaker}_*.wav")):
        digit = DIGITS[int(re.match(r"(\d)_", path.name).group(1))]
        by_digit[digit].append(sf.read(path, dtype="float32")[0])
    return by_digit


def build(kind: str, pause: str, rate: int, minutes: float, seed: int, data: Path) -> LongRecording:
    rng = np.random.default_rng(seed)
    by_digit = takes(data, ("jackson", "nicolas")[seed % 2])
    clips: list[tuple[np.ndarray, str]] = []
    seconds = 0.0
    while seconds < minutes * 60:
        digit = DIGITS[rng.integers(10)]
        for _ in range(int(rng.integers(12, 21)) if kind == "repeated" else 1):
            take = by_digit[digit][rng.integers(len(by_digit[digit]))]
            clips.append((take, digit))
            seconds += len(take) / 16_000 + 0.85
    recording = assemble(clips, seed=seed, noise=0.01 if pause == "noise" else 0.0)
    if rate != 16_000:
        audio = soxr.resample(soxr.resample(recording.audio, 16_000, rate), rate, 16_000)
        recording = LongRecording(audio.astype(np.float32), recording.words)
    return recording


def spoken(words: list[tuple[str, float, float]], start: float, end: float) -> list[str]:
    """The words most of which lie inside [start, end]."""
    return [w for w, s, e in words if min(e, end) - max(s, start) > (e - s) / 2]


def run(condition: tuple[str, str, int], minutes: list[float], data: Path, model: str, work: Path) -> dict:
    kind, pause, rate = condition
    folder = work / f"{kind}-{pause}-{rate}"
    paths = SegmentPaths(folder / "cache", folder / "outputs", folder / "processed")
    source = FolderSource(name="bench", language="en")
    recordings, jobs = [], []
    for k, length in enumerate(minutes):
        recording = build(kind, pause, rate, length, k, data)
        audio_path = paths.processed_root / "bench" / f"{kind}-{pause}-{rate}-{k}.wav"
        write_pcm16(audio_path, recording.audio)
        duration = len(recording.audio) / 16_000
        transcript = " ".join(w for w, _, _ in recording.words)
        jobs.append(
            SegmentJob(
                f"bench-{k}",
                "bench",
                audio_path.name,
                str(audio_path),
                duration,
                transcript,
                "en",
                detect_speech(recording.audio),
            )
        )
        recordings.append(recording)
    aligner = LazyAligner(model)
    aligner.get()  # load outside the timed part
    started = time.perf_counter()
    rows = segment_items(jobs, source, aligner, SegmentationSettings(), paths)
    seconds = time.perf_counter() - started

    mislabelled, kept_words, total_words, starts, ends, examples = 0, 0, 0, [], [], []
    for job, recording in zip(jobs, recordings, strict=True):
        total_words += len(recording.words)
        for row in rows:
            if row["parent_id"] != job.id or row["status"] != "ok":
                continue
            truth = spoken(recording.words, row["offset"], row["offset"] + row["duration"])
            if truth == row["transcript"].split():
                kept_words += len(truth)
            else:
                mislabelled += 1
                examples.append(
                    {
                        "text": edges(row["transcript"].split()),
                        "spoken": edges(truth),
                        "heard": edges((row.get("check_hypothesis") or "").split()),
                        "cer": row.get("check_cer"),
                    }
                )
        aligned = json.loads((paths.outputs_root / job.id / "transcription_base.json").read_text())
        words = [w for segment in aligned["segments"] for w in segment["words"]]
        for word, (_, start, end) in zip(words, recording.words, strict=True):
            starts.append(abs(word["start"] - start) * 1000)
            ends.append(abs(word["end"] - end) * 1000)
    audio_minutes = sum(job.duration for job in jobs) / 60
    return {
        "condition": f"{kind} digits, {pause} pauses, {rate // 1000} kHz",
        "audio_minutes": round(audio_minutes, 1),
        "kept_segments": sum(r["status"] == "ok" for r in rows),
        "dropped_segments": sum(r["status"] != "ok" for r in rows),
        "mislabelled_kept": mislabelled,
        "words_kept": round(kept_words / total_words, 3),
        "start_ms": offset_summary(np.array(starts)),
        "end_ms": offset_summary(np.array(ends)),
        "seconds_per_audio_minute": round(seconds / audio_minutes, 2),
        "drop_reasons": sorted({r["reason"].split(":")[0] for r in rows if r["status"] != "ok"}),
        "mislabelled_examples": examples[:3],
        "dropped_examples": [r["reason"][:160] for r in rows if r["status"] != "ok"][:3],
    }


def edges(words: list[str]) -> str:
    """A segment's first and last words and its length: where mislabels show."""
    return f"{' '.join(words[:3])} ... {' '.join(words[-3:])} ({len(words)} words)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="../shared/models/whisper-tiny.en")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 3, 5])
    parser.add_argument("--conditions", nargs="*", help="e.g. random-silence-16000 (default: all eight)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"needs {args.data} (the shared folder beside the checkout)")
    work = Path(tempfile.mkdtemp(prefix="bench-labels-"))
    try:
        for condition in CONDITIONS:
            if args.conditions and "-".join(map(str, condition)) not in args.conditions:
                continue
            print(json.dumps(run(condition, args.minutes, args.data, args.model, work)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
