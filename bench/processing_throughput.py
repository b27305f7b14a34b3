"""Benchmark: processed_audio throughput against a naive librosa loop, and the cost of a no-change re-run.

Run by hand (figures go in the notes, never in tests):

    .venv/bin/python bench/processing_throughput.py --hours 2

It generates mixed-format audio (44.1 kHz stereo wav, mp3, flac) under bench/out/, then measures side by side:
1. naive: librosa.load(sr=16000, mono=True) + soundfile.write, one file after another;
2. ours: the function the `processed_audio` asset runs (decode, downmix, soxr, 16-bit write) on every core;
3. the whole per-source ingest (inventory -> dedup -> transcripts -> processed audio) materialized in Dagster,
   first on fresh data, then again with nothing changed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import librosa
import numpy as np
import soundfile as sf
import yaml

from whisper_assets.audio.encode import write_audio
from whisper_assets.audio.fingerprint import file_sha256
from whisper_assets.audio.policy import AudioPolicy
from whisper_assets.curation.processing import ProcessJob, output_key, output_path, process_items
from whisper_assets.definitions import build_definitions
from whisper_assets.demo.data import speech_like

OUT = Path(__file__).parent / "out"
CLIP_SECONDS = 12.0
FORMATS = (".wav", ".mp3", ".flac")


def generate(folder: Path, count: int, seconds: float = CLIP_SECONDS, seed: int = 0) -> list[Path]:
    """`count` speech-like clips of about `seconds` (+-30%, like real uploads; 44.1 kHz stereo, formats in turn)
    with .txt transcripts. Each clip says different random words: clips that said the same words would be the
    same waveform (speech_like is deterministic) and dedup would rightly merge them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:05d}{FORMATS[i % len(FORMATS)]}"
        paths.append(path)
        length = seconds * rng.uniform(0.7, 1.3)
        words = " ".join("".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 5)) for _ in range(40))
        if path.exists():
            continue
        base = speech_like(words, rate=16_000)
        signal = np.tile(base, int(np.ceil(length * 16_000 / len(base))))[: int(length * 16_000)]
        signal = librosa.resample(signal, orig_sr=16_000, target_sr=44_100, res_type="soxr_hq")
        stereo = np.stack([signal, 0.7 * signal + 0.01 * rng.standard_normal(len(signal))], axis=1)
        write_audio(path, stereo.astype(np.float32), 44_100)
        path.with_suffix(".txt").write_text(f"utterance number {i}", encoding="utf-8")
    return paths


class Clock:
    """Wall time and CPU time of this process and its finished children."""

    def __enter__(self) -> Clock:
        self.wall = time.perf_counter()
        self.cpu = self._cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def naive(paths: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        audio, _ = librosa.load(path, sr=16_000, mono=True)
        sf.write(out / f"{path.stem}.wav", audio, 16_000, subtype="PCM_16")


def jobs_for(paths: list[Path], out: Path) -> list[ProcessJob]:
    """processed_audio's input: the inventory has already hashed every file (not timed here)."""
    policy = AudioPolicy()
    return [
        ProcessJob(
            p.stem,
            "bench",
            p.name,
            str(p),
            str(output_path(out, "bench", output_key(file_sha256(p), policy))),
            policy,
        )
        for p in paths
    ]


def ours(jobs: list[ProcessJob]) -> None:
    rows = process_items(jobs)
    assert all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"][:3]


def ingest_twice(uploads: Path) -> tuple[Clock, Clock]:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    (root / "uploads").mkdir()
    os.symlink(uploads, root / "uploads" / "bench")
    config = root / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump({"data_root": ".", "sources": [{"name": "bench"}]}))
    ingest = build_definitions(str(config)).resolve_job_def("ingest_source")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    clocks = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset_sources", ["bench"])
        for _ in range(2):
            with Clock() as clock:
                ingest.execute_in_process(partition_key="bench", instance=instance, run_config=quiet)
            clocks.append(clock)
    shutil.rmtree(root)
    return clocks[0], clocks[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    shutil.rmtree(OUT / "input", ignore_errors=True)
    paths = generate(OUT / "input", int(args.hours * 3600 / CLIP_SECONDS))
    hours = sum(sf.info(str(p)).duration for p in paths) / 3600
    print(
        f"{len(paths)} files, {hours:.2f} h of audio ({', '.join(FORMATS)}; 44.1 kHz stereo), {os.cpu_count()} cores"
    )

    librosa.load(paths[0], sr=16_000, mono=True)  # warm-up: librosa imports its parts lazily on first use
    naive_out, ours_out = OUT / "naive", OUT / "processed"
    for folder in (naive_out, ours_out):
        shutil.rmtree(folder, ignore_errors=True)
    jobs = jobs_for(paths, ours_out)
    with Clock() as base:
        naive(paths, naive_out)
    with Clock() as mine:
        ours(jobs)
    for name, clock in (("naive librosa loop", base), ("processed_audio (ours)", mine)):
        print(
            f"{name:24s} wall {clock.wall:7.1f} s  cpu {clock.cpu:7.1f} s  "
            f"{hours / (clock.wall / 60):6.2f} audio h per wall minute  "
            f"{hours / (clock.cpu / 60):6.2f} audio h per CPU minute"
        )
    print(f"speed-up: {base.wall / mine.wall:.2f}x wall, {base.cpu / mine.cpu:.2f}x CPU")

    first, again = ingest_twice(OUT / "input")
    print(
        f"ingest materialization: first {first.wall:.1f} s, no-change re-run {again.wall:.2f} s "
        f"({100 * again.wall / first.wall:.1f}% of the first)"
    )


if __name__ == "__main__":
    main()
