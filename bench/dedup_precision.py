"""Benchmark: duplicate detection on real speech: no false merges, every re-encode found.

    .venv/bin/python bench/dedup_precision.py --data ../shared/data/fsdd-dev --reencoded 100

Precision: every FSDD dev recording is a distinct take (two speakers say each digit many times), so the
expected number of duplicate pairs among them is 0. Recall: `--reencoded` of them are re-encoded eight ways
(mp3 at 32/64/128 kbps, opus, aac, an 8 kHz copy, a gain change, stereo) into a second source; each re-encode
must land in its original's cluster and nowhere else. Both run through the real inventory and clustering.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from pathlib import Path

import numpy as np
import soxr

from whisper_assets.audio.decode import decode
from whisper_assets.audio.encode import write_audio
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.curation.dedup import cluster_items
from whisper_assets.curation.inventory import build_inventory

OUT = Path(__file__).parent / "out" / "dedup"
VARIANTS = {
    "mp3-32k": lambda x: (x, 16_000, ".mp3", 32_000),
    "mp3-64k": lambda x: (x, 16_000, ".mp3", 64_000),
    "mp3-128k": lambda x: (x, 16_000, ".mp3", 128_000),
    "opus": lambda x: (x, 16_000, ".opus", None),
    "aac": lambda x: (x, 16_000, ".m4a", None),
    "8khz": lambda x: (soxr.resample(x, 16_000, 8_000), 8_000, ".wav", None),
    "gain": lambda x: (0.5 * x, 16_000, ".wav", None),
    "stereo": lambda x: (np.stack([x, 0.9 * x], axis=1), 16_000, ".flac", None),
}


def reencode(originals: list[Path], folder: Path) -> dict[str, str]:
    """Write every variant of each original; return re-encode name -> original stem."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for path in originals:
        samples = to_mono_16k(*decode(path))
        for name, variant in VARIANTS.items():
            audio, rate, suffix, bitrate = variant(samples)
            target = folder / f"{path.stem}.{name}{suffix}"
            write_audio(target, audio, rate, bitrate)
            made[target.name] = path.stem
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--reencoded", type=int, default=100, help="originals to re-encode eight ways")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"needs {args.data} (the shared folder beside the checkout)")
    shutil.rmtree(OUT, ignore_errors=True)
    originals = sorted(args.data.glob("*.wav"))
    chosen = random.Random(0).sample(originals, min(args.reencoded, len(originals)))
    made = reencode(chosen, OUT / "reencoded")

    rows = build_inventory("fsdd", args.data, "en", []).rows
    started = time.perf_counter()
    alone = cluster_items(rows, OUT / "cache")
    seconds_alone = time.perf_counter() - started
    merged = [r for r in alone.values() if not r["is_canonical"]]
    print(
        f"FSDD dev alone: {len(alone)} recordings, {len(merged)} marked duplicates (expected 0), {seconds_alone:.1f} s"
    )
    for row in merged[:10]:
        print(
            f"  false merge: {row['rel_path']} -> {row['canonical_id']} (similarity {row['similarity']:.3f})"
        )

    rows += build_inventory("reencoded", OUT / "reencoded", "en", []).rows
    started = time.perf_counter()
    clusters = cluster_items(rows, OUT / "cache")
    seconds = time.perf_counter() - started
    stem_of = {r["id"]: Path(r["rel_path"]).stem for r in rows if r["source"] == "fsdd"}
    found, wrong = {name: 0 for name in VARIANTS}, 0
    for row in clusters.values():
        if row["source"] != "reencoded":
            continue
        original = made[row["rel_path"]]
        canonical = stem_of.get(row["canonical_id"])
        if canonical == original:
            found[row["rel_path"].split(".")[1]] += 1
        elif canonical is not None:
            wrong += 1
    false_merges = sum(1 for r in clusters.values() if r["source"] == "fsdd" and not r["is_canonical"])
    total = len(chosen)
    print(
        f"with {len(made)} re-encodes of {total} recordings: {len(clusters)} items clustered in {seconds:.1f} s"
    )
    for name, count in found.items():
        print(f"  {name:9s} recall {count}/{total} = {count / total:.1%}")
    recall = sum(found.values()) / len(made)
    print(
        f"recall {recall:.2%}; re-encodes merged with the wrong original: {wrong}; originals merged: {false_merges}"
    )


if __name__ == "__main__":
    main()
