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
from whisper_assets.defs.ingest import ingest_assets
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.demo.data import speech_like

OUT = Path(__file__).parent / "out"
CLIP_SECONDS = 12.0
FORMATS = (".wav", ".mp3", ".flac")


def generate(folder: Path, hours: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    count = int(hours * 3600 / CLIP_SECONDS)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:05d}{FORMATS[i % len(FORMATS)]}"
        paths.append(path)
        if path.exists():
            continue
        base = speech_like(f"utterance number {i} " * 4, rate=16_000)
        signal = np.tile(base, int(np.ceil(CLIP_SECONDS * 16_000 / len(base))))[: int(CLIP_SECONDS * 16_000)]
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


def ours(paths: list[Path], out: Path) -> None:
    policy = AudioPolicy()
    jobs = [
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
    rows = process_items(jobs)
    assert all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"][:3]


def ingest_twice(uploads: Path) -> tuple[Clock, Clock]:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    (root / "uploads").mkdir()
    os.symlink(uploads, root / "uploads" / "bench")
    config = root / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump({"data_root": ".", "sources": [{"name": "bench"}]}))
    resources = {"platform": PlatformSettings(config_path=str(config))}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    clocks = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset_sources", ["bench"])
        for _ in range(2):
            with Clock() as clock:
                dg.materialize(
                    ingest_assets,
                    partition_key="bench",
                    instance=instance,
                    resources=resources,
                    run_config=quiet,
                )
            clocks.append(clock)
    shutil.rmtree(root)
    return clocks[0], clocks[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    paths = generate(OUT / "input", args.hours)
    hours = sum(sf.info(str(p)).duration for p in paths) / 3600
    print(
        f"{len(paths)} files, {hours:.2f} h of audio ({', '.join(FORMATS)}; 44.1 kHz stereo), {os.cpu_count()} cores"
    )

    librosa.load(paths[0], sr=16_000, mono=True)  # warm-up: librosa imports its parts lazily on first use
    results = {}
    for name, fn in (("naive librosa loop", naive), ("processed_audio (ours)", ours)):
        target = OUT / name.split()[0]
        shutil.rmtree(target, ignore_errors=True)
        with Clock() as clock:
            fn(paths, target)
        results[name] = clock
        print(
            f"{name:24s} wall {clock.wall:7.1f} s  cpu {clock.cpu:7.1f} s  "
            f"{hours / (clock.wall / 60):6.2f} audio h per wall minute  "
            f"{hours / (clock.cpu / 60):6.2f} audio h per CPU minute"
        )
    base, mine = results["naive librosa loop"], results["processed_audio (ours)"]
    print(f"speed-up: {base.wall / mine.wall:.2f}x wall, {base.cpu / mine.cpu:.2f}x CPU")

    first, again = ingest_twice(OUT / "input")
    print(
        f"ingest materialization: first {first.wall:.1f} s, no-change re-run {again.wall:.2f} s "
        f"({100 * again.wall / first.wall:.1f}% of the first)"
    )


if __name__ == "__main__":
    main()
