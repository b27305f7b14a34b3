"""Benchmark: how the per-source assets and `splits` grow with the number of clips.

    .venv/bin/python bench/corpus_scale.py --sizes 1000 5000 20000
    .venv/bin/python bench/corpus_scale.py --sizes 500 1000 2000 --model ../shared/models/whisper-tiny.en

Each size is a new upload source of N distinct utterances built from real FSDD takes (two or three digits with
random gain and 0.2-0.8 s pauses, 8 kHz, 2-4 s; no two utterances share their takes in the same order) with
transcripts. Each asset of the source is materialized in turn through the project's own Dagster jobs, then
`splits`. Reports seconds per asset, the process's peak memory, the growth exponent between successive sizes
(log of the time ratio over log of the size ratio: 1.0 is linear) and the time extrapolated to 100 and 1,000
hours of such audio on this machine. `--shards N` splits the source into N shards whose per-source assets run at
once, each in its own process (`--workers 1`: one core each, as one pod per shard would be). Without `--model` the alignment model is one that cannot be loaded, so
`segments` keeps items whole without word timings (alignment is measured on its own with `--model`).
Then a second, late source of `--late` clips arrives: its `dedup_report` (`late_dedup_report`) is the cost of
looking a new source up against the stored index of the big one, and should not grow with N.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import dagster as dg
import numpy as np
import soundfile as sf
import soxr
import yaml

from whisper_assets.definitions import build_definitions
from whisper_assets.demo.long_form import assemble

DIGITS = "zero one two three four five six seven eight nine".split()
PER_SOURCE = ("inventory", "dedup_report", "normalized_transcripts", "processed_audio", "segments")


def generate(folder: Path, count: int, data: Path) -> float:
    """`count` distinct utterances with .txt transcripts under `folder`; their total seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    takes = sorted(data.glob("*.wav"))
    audio = [sf.read(p, dtype="float32")[0] for p in takes]
    digits = [DIGITS[int(re.match(r"(\d)_", p.name).group(1))] for p in takes]
    rng = np.random.default_rng(count)
    seen: set[tuple[int, ...]] = set()
    total = 0.0
    while len(seen) < count:
        picks = tuple(int(k) for k in rng.integers(len(takes), size=int(rng.integers(2, 4))))
        if picks in seen:
            continue
        seen.add(picks)
        gain = float(rng.uniform(0.2, 1.0))
        recording = assemble([(gain * audio[k], digits[k]) for k in picks], seed=len(seen), pause=(0.2, 0.8))
        name = folder / f"u{len(seen):06d}"
        sf.write(
            name.with_suffix(".wav"), soxr.resample(recording.audio, 16_000, 8_000), 8_000, subtype="PCM_16"
        )
        name.with_suffix(".txt").write_text(recording.transcript, encoding="utf-8")
        total += len(recording.audio) / 16_000
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_assets(config: str, partition: str | None, assets: tuple[str, ...], workers: int) -> dict:
    """Materialize `assets` in turn, in this process, as one run each; seconds per asset and peak memory."""
    defs = build_definitions(config, workers=workers)
    job = defs.resolve_job_def("ingest_source" if partition else "publish_splits")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    timings = {}
    with dg.instance_for_test() as instance:
        if partition:
            instance.add_dynamic_partitions("dataset_sources", [partition])
        for asset in assets:
            started = time.perf_counter()
            result = job.execute_in_process(
                partition_key=partition,
                instance=instance,
                run_config=quiet,
                asset_selection=[dg.AssetKey(asset)],
                raise_on_error=False,
            )
            timings[asset] = round(time.perf_counter() - started, 2)
            if not result.success:
                raise SystemExit(f"{asset} failed on {partition}")
    return {"seconds": timings, "peak_mb": peak_rss_mb()}


def measure(count: int, data: Path, model: str, shards: int, workers: int, late: int) -> dict:
    """The per-source assets of every shard at once (each shard its own process, as the run launcher or a
    Kubernetes pod runs it), then `splits`."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-scale-{count}-"))
    try:
        seconds = generate(root / "uploads" / "scale", count, data)
        config = root / "whisper_assets.yaml"
        settings = {
            "data_root": ".",
            "sources": [
                {"name": "scale", "language": "en", "shards": shards},
                {"name": "late", "language": "en"},
            ],
            "segmentation": {"alignment_model": model},
        }
        config.write_text(yaml.safe_dump(settings))
        keys = ["scale"] if shards == 1 else [f"scale~{k}" for k in range(shards)]
        started = time.perf_counter()
        with ProcessPoolExecutor(len(keys), mp_context=get_context("spawn")) as pool:
            per_shard = list(
                pool.map(run_assets, [str(config)] * shards, keys, [PER_SOURCE] * shards, [workers] * shards)
            )
        ingest_wall = round(time.perf_counter() - started, 2)
        generate(root / "uploads" / "late", late, data)
        arrived = run_assets(str(config), "late", ("inventory", "dedup_report"), workers)
        merged = run_assets(str(config), None, ("splits",), workers)
        timings = (
            {asset: max(shard["seconds"][asset] for shard in per_shard) for asset in PER_SOURCE}
            | {"late_dedup_report": arrived["seconds"]["dedup_report"]}
            | merged["seconds"]
        )
        return {
            "clips": count,
            "audio_hours": round(seconds / 3600, 3),
            "seconds": timings,  # per-source assets: the slowest shard's
            "per_source_wall": ingest_wall,  # all shards, process start-up included
            "peak_mb": max([merged["peak_mb"], *(shard["peak_mb"] for shard in per_shard)]),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--model", default="no-such-owner/unloadable-model", help="the alignment model")
    parser.add_argument("--shards", type=int, default=1, help="split the source; shards run in parallel")
    parser.add_argument("--workers", type=int, default=0, help="processes per step (0: every core)")
    parser.add_argument("--late", type=int, default=200, help="clips of the source that arrives afterwards")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"needs {args.data} (the shared folder beside the checkout)")
    results = []
    for count in args.sizes:
        results.append(measure(count, args.data, args.model, args.shards, args.workers, args.late))
        row = results[-1]
        print(
            f"{count} clips ({row['audio_hours']} h, {args.shards} shard(s), workers {args.workers}): "
            f"{row['seconds']}, per-source wall {row['per_source_wall']} s, peak {row['peak_mb']:.0f} MB",
            flush=True,
        )
    for small, large in itertools.pairwise(results):
        ratio = math.log(large["clips"] / small["clips"])
        exponents = {
            asset: round(
                math.log(max(large["seconds"][asset], 0.01) / max(small["seconds"][asset], 0.01)) / ratio, 2
            )
            for asset in large["seconds"]
        }
        print(f"growth exponent {small['clips']} -> {large['clips']}: {exponents}")
    last = results[-1]
    per_hour = sum(v for k, v in last["seconds"].items() if k != "late_dedup_report") / last["audio_hours"]
    print(
        f"extrapolated from {last['clips']} clips ({per_hour:.0f} s per audio hour): 100 h {per_hour * 100 / 3600:.1f} h, "
        f"1,000 h {per_hour * 1000 / 3600:.1f} h on this machine; divide by N for N such machines (shards)"
    )


if __name__ == "__main__":
    main()
