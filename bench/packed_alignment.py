"""Benchmark: aligning short utterances one per window against several per window (Aligner.align_packed).

    .venv/bin/python bench/packed_alignment.py --model ../shared/models/whisper-tiny.en --items 200

Utterances of two or three random FSDD takes (random pauses of 0.2-0.8 s, random gain, 2-4 s) are aligned the
way the `segments` step aligns short items: first each alone (padded to the model's 30 s window), then packed.
Reports the real-time factor (CPU seconds and wall seconds per audio second) and the word start/end offsets
against each take's energy bounds, for both, and how far the packed timings move from the lone ones.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_assets.asr.align import Aligner, Clip
from whisper_assets.asr.model import load_base
from whisper_assets.audio.vad import detect_speech
from whisper_assets.demo.long_form import assemble
from whisper_assets.parallel import use_all_cores

DIGITS = "zero one two three four five six seven eight nine".split()


def utterances(data: Path, count: int, seed: int = 0):
    """`count` utterances of 2-3 random takes each, with their true word timings."""
    files = sorted(data.glob("*.wav"))
    rng = np.random.default_rng(seed)
    for k in range(count):
        takes = [files[i] for i in rng.integers(len(files), size=int(rng.integers(2, 4)))]
        gain = float(rng.uniform(0.3, 1.0))
        clips = [
            (gain * sf.read(p, dtype="float32")[0], DIGITS[int(re.match(r"(\d)_", p.name).group(1))])
            for p in takes
        ]
        yield assemble(clips, seed=k, pause=(0.2, 0.8))


def offsets(aligned, recordings) -> dict:
    starts, ends = [], []
    for words, recording in zip(aligned, recordings, strict=True):
        for word, (_, start, end) in zip(words, recording.words, strict=True):
            starts.append(abs(word.start - start) * 1000)
            ends.append(abs(word.end - end) * 1000)
    return {
        name: {
            "mean": round(float(np.mean(ms)), 1),
            "median": round(float(np.median(ms)), 1),
            "p95": round(float(np.percentile(ms, 95)), 1),
        }
        for name, ms in (("start_ms", starts), ("end_ms", ends))
    }


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="../shared/models/whisper-tiny.en")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"needs {args.data} (the shared folder beside the checkout)")
    threads = use_all_cores()
    aligner = Aligner(*load_base(args.model))
    recordings = list(utterances(args.data, args.items))
    clips = [Clip(r.audio, r.transcript.split(), detect_speech(r.audio)) for r in recordings]
    seconds = sum(len(r.audio) for r in recordings) / 16_000
    print(f"{len(clips)} utterances, {seconds / 60:.1f} audio minutes, torch threads {threads}")

    alone, alone_wall, alone_cpu = timed(
        lambda: [aligner.align(c.audio, c.words, "en", c.speech) for c in clips]
    )
    packed, packed_wall, packed_cpu = timed(lambda: aligner.align_packed(clips, "en"))
    moved = [
        abs(a.start - b.start) + abs(a.end - b.end)
        for one, other in zip(alone, packed, strict=True)
        for a, b in zip(one, other, strict=True)
    ]
    for name, result, wall, cpu in (
        ("alone", alone, alone_wall, alone_cpu),
        ("packed", packed, packed_wall, packed_cpu),
    ):
        print(
            f"{name:6s} real-time factor {wall / seconds:.4f} wall, {cpu / seconds:.4f} CPU; "
            f"offsets {offsets(result, recordings)}"
        )
    print(
        f"speed-up {alone_wall / packed_wall:.1f}x wall; packed vs alone, start+end moved: "
        f"median {np.median(moved) * 1000:.0f} ms, p95 {np.percentile(moved, 95) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
