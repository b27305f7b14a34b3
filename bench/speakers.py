"""Benchmark: speaker clustering (purity, NMI) and diarization error rate on real speech.

    .venv/bin/python bench/speakers.py --data ../shared/data/fsdd-dev [--thresholds 0.2 0.25 0.3 0.35 0.4]

Embeds FSDD's clips (two speakers) with the platform's Resemblyzer encoder and clusters them per threshold:
single digits (~0.4 s each) and ~2 s utterances (five digits of one speaker joined), plus the 2 s utterances
mixed with three espeak-ng voices (five speakers). Then assembles two-speaker recordings from the 2 s
utterances with known turns and pauses and scores `diarize` against them (DER, no collar). Prints JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from whisper_assets.audio.decode import decode
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.demo.data import EN_SENTENCES, espeak_available, synthesize
from whisper_assets.speakers.clustering import cluster_embeddings, nmi, purity
from whisper_assets.speakers.diarization import Turn, diarization_error_rate, diarize
from whisper_assets.speakers.embeddings import EMBEDDING_RATE, SpeakerEncoder
from whisper_assets.speakers.policy import DEFAULT_THRESHOLD, SpeakerPolicy

ESPEAK_VOICES = ("en-029+f3", "en-gb-scotland+m7", "en-us+m1")


def fsdd_clips(folder: Path) -> dict[str, list[np.ndarray]]:
    with (folder / "metadata.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    clips: dict[str, list[np.ndarray]] = {}
    for row in rows:
        clips.setdefault(row["speaker_id"], []).append(to_mono_16k(*decode(folder / row["file_name"])))
    return clips


def joined(clips: dict[str, list[np.ndarray]], per: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Utterances of `per` clips of one speaker with 0.1 s pauses (digits read in a row)."""
    rng = np.random.default_rng(seed)
    pause = np.zeros(EMBEDDING_RATE // 10, np.float32)
    out = {}
    for speaker, own in clips.items():
        order = rng.permutation(len(own))
        out[speaker] = [
            np.concatenate([np.concatenate([own[i], pause]) for i in order[k : k + per]])
            for k in range(0, len(order), per)
        ]
    return out


def scores(
    utterances: dict[str, list[np.ndarray]], encoder: SpeakerEncoder, thresholds: list[float]
) -> tuple[dict, float]:
    truth = [speaker for speaker, own in utterances.items() for _ in own]
    started = time.perf_counter()
    embeddings = np.vstack([encoder.embed(a) for own in utterances.values() for a in own])
    seconds = time.perf_counter() - started
    out = {}
    for threshold in thresholds:
        labels = cluster_embeddings(embeddings, SpeakerPolicy(threshold=threshold))
        out[f"{threshold:g}"] = {
            "clusters": len(set(labels)),
            "purity": round(purity(truth, labels), 3),
            "nmi": round(nmi(truth, labels), 3),
        }
    return out, seconds


def assembled(
    utterances: dict[str, list[np.ndarray]], turns: int, seed: int
) -> tuple[np.ndarray, list[Turn]]:
    """A recording of `turns` alternating-speaker turns (1-3 utterances each) with 0.3-1.0 s pauses."""
    rng = np.random.default_rng(seed)
    speakers = sorted(utterances)
    audio, reference, now = [], [], 0.0
    for turn in range(turns):
        speaker = speakers[turn % len(speakers)]
        own = utterances[speaker]
        speech = np.concatenate([own[i] for i in rng.choice(len(own), rng.integers(1, 4), replace=False)])
        pause = np.zeros(int(rng.uniform(0.3, 1.0) * EMBEDDING_RATE), np.float32)
        audio += [pause, speech]
        start = now + len(pause) / EMBEDDING_RATE
        reference.append(Turn(start, start + len(speech) / EMBEDDING_RATE, speaker))
        now = reference[-1].end
    return np.concatenate(audio), reference


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.25, 0.3, 0.35, 0.4])
    parser.add_argument("--recordings", type=int, default=10)
    args = parser.parse_args()

    encoder = SpeakerEncoder()
    digits = fsdd_clips(args.data)
    utterances = joined(digits, per=5)
    report: dict = {"speakers": {s: len(c) for s, c in digits.items()}}
    report["digits"], seconds = scores(digits, encoder, args.thresholds)
    audio_seconds = sum(len(a) for own in digits.values() for a in own) / EMBEDDING_RATE
    report["embedding_x_real_time"] = round(audio_seconds / seconds, 1)
    report["utterances_2s"], _ = scores(utterances, encoder, args.thresholds)
    if espeak_available():
        voices = {v: [to_mono_16k(*synthesize(t, v)) for t in EN_SENTENCES] for v in ESPEAK_VOICES}
        report["utterances_2s_and_espeak_voices"], _ = scores(utterances | voices, encoder, args.thresholds)

    ders: dict[str, list[float]] = {"unknown_count": [], "known_count": []}
    for seed in range(args.recordings):
        audio, reference = assembled(utterances, turns=8, seed=seed)
        for name, policy in (
            ("unknown_count", SpeakerPolicy()),
            ("known_count", SpeakerPolicy(min_speakers=2, max_speakers=2)),
        ):
            ders[name].append(diarization_error_rate(reference, diarize(audio, encoder, policy)))
    report["der"] = {
        name: {"mean": round(float(np.mean(v)), 3), "max": round(float(np.max(v)), 3)}
        for name, v in ders.items()
    }
    report["default_threshold"] = DEFAULT_THRESHOLD
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
