"""Benchmark: long recordings with known word timings, built from real speech, through VAD, alignment and cuts.

    .venv/bin/python bench/long_form.py --model ../shared/models/whisper-tiny.en --data ../shared/data/fsdd-dev

FSDD digit clips are joined with random pauses (0.2-1.5 s; every other pause white noise) into recordings of
1, 3, 6 and 10 minutes, each with one transcript; a clip's energy bounds are its word's true timing. Reports
alignment coverage, word start/end offsets, VAD precision/recall, segmentation throughput (audio minutes per
CPU minute) and the share of words lost to dropped segments, with the default segmentation settings.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_assets.asr.align import Aligner
from whisper_assets.asr.model import load_base
from whisper_assets.audio.vad import detect_speech
from whisper_assets.demo.long_form import LongRecording, assemble
from whisper_assets.segmentation.policy import SegmentationSettings
from whisper_assets.segmentation.segments import doubt
from whisper_assets.text.cuts import cut_points

DIGITS = "zero one two three four five six seven eight nine".split()


def recordings(data: Path, minutes: list[float], noise: float, speaker: str | None = None):
    """Recordings of the given lengths joined from random FSDD clips (of one speaker, when named)."""
    files = sorted(f for f in data.glob("*.wav") if speaker is None or f"_{speaker}_" in f.name)
    rng = np.random.default_rng(0)
    for k, length in enumerate(minutes):
        clips, total = [], 0.0
        while total < length * 60:
            path = files[rng.integers(len(files))]
            samples, _ = sf.read(path, dtype="float32")
            clips.append((samples, DIGITS[int(re.match(r"(\d)_", path.name).group(1))]))
            total += len(samples) / 16_000 + 0.85
        yield assemble(clips, seed=k, noise=noise)


def alignment_report(aligner: Aligner, long_recordings: Iterable[LongRecording]) -> dict:
    """Coverage, word start/end offsets, VAD precision/recall, throughput and words lost, over the recordings."""
    settings = SegmentationSettings()
    starts, ends, audio_seconds, cpu, detected, true_speech, overlap = [], [], 0.0, 0.0, 0.0, 0.0, 0.0
    words_total = words_lost = aligned_items = items = 0
    for recording in long_recordings:
        items += 1
        duration = len(recording.audio) / 16_000
        began = time.process_time()
        speech = detect_speech(recording.audio)
        words = aligner.align(recording.audio, recording.transcript.split(), "en", speech)
        spans = cut_points(words, duration, 30.0, settings.pad_seconds)
        dropped = [s for s in spans if doubt(words[s.first : s.last + 1], settings)]
        cpu += time.process_time() - began
        audio_seconds += duration
        aligned_items += len(words) == len(recording.words)
        words_total += len(words)
        words_lost += sum(s.last - s.first + 1 for s in dropped)
        for word, (_, start, end) in zip(words, recording.words, strict=True):
            starts.append(abs(word.start - start))
            ends.append(abs(word.end - end))
        detected += speech.seconds
        true_speech += sum(end - start for _, start, end in recording.words)
        overlap += sum(speech.within(start, end) for _, start, end in recording.words)
    starts_ms, ends_ms = np.array(starts) * 1000, np.array(ends) * 1000
    return {
        "words": words_total,
        "coverage": aligned_items / items,
        "start_offset_ms": offset_summary(starts_ms),
        "end_offset_ms": offset_summary(ends_ms),
        "vad_precision": round(overlap / detected, 4),
        "vad_recall": round(overlap / true_speech, 4),
        "audio_minutes_per_cpu_minute": round(audio_seconds / cpu, 2),
        "words_lost_to_dropped_segments": round(words_lost / words_total, 4),
    }


def offset_summary(ms: np.ndarray) -> dict:
    """Mean, median and 95th percentile of offsets in ms."""
    return {
        "mean": round(float(ms.mean()), 1),
        "median": round(float(np.median(ms)), 1),
        "p95": round(float(np.percentile(ms, 95)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="../shared/models/whisper-tiny.en")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 3, 6, 10])
    parser.add_argument("--noise", type=float, default=0.01)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"needs {args.data} (the shared folder beside the checkout)")
    aligner = Aligner(*load_base(args.model))
    report = alignment_report(aligner, recordings(args.data, args.minutes, args.noise))
    print(json.dumps({"model": args.model, "recordings_minutes": args.minutes, **report}, indent=1))


if __name__ == "__main__":
    main()
