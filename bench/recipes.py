"""Benchmark: which fine-tuning recipe learns the domain and keeps general speech, through the product's own step.

    .venv/bin/python bench/recipes.py [--recipes default lora_r8_lr1e-3 ...] [--seeds 42 1 7] \
        [--data-sets all jackson]

Every (recipe, data set, seed) is one `bench/fsdd_quality.py` process: the Dagster training step with the
product's defaults for every option the recipe leaves out (auto window, interpolation with the selection set),
then `eval_metrics` and the champion gate. One process per run, so step times do not drift. Data sets:
- `all`: both FSDD-dev speakers, split by content; the test clips are other takes of the trained speakers;
- a speaker's name: trained on that speaker alone; the test WER reported is the other speakers' (unseen voices).
Forgetting is the built-in `general_en` set (espeak-ng; base 32.6% on tiny.en) with its paired bootstrap interval.
Prints a row per run as it ends, then the table per recipe and data set over the seeds.

Run folders are named by options and data, not by code: clear `bench/out/fsdd*/models` after a code change.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPES: dict[str, list[str]] = {
    "default": [],
    "lr1e-4": ["--learning-rate", "1e-4"],
    "lora_r8_lr1e-3": ["--method", "lora", "--learning-rate", "1e-3"],
    "acoustic_lr1e-5": ["--method", "acoustic", "--learning-rate", "1e-5"],
    "distillation_0.5": ["--distillation", "0.5"],
    "window_30s": ["--window", "30"],
}


def domain_wer(figures: dict) -> float:
    """Test WER: the unseen speakers' mean when one speaker trained, else the whole test split's."""
    speaker = figures["train_speaker"]
    if speaker is None:
        return figures["test"]["finetuned"]
    unseen = [wer for name, wer in figures["test_by_speaker"]["finetuned"].items() if name != speaker]
    return statistics.mean(unseen)


def run(recipe: str, data_set: str, seed: int, base: Path, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        command = [
            sys.executable,
            str(Path(__file__).parent / "fsdd_quality.py"),
            *("--base", str(base), "--data", str(data), "--seed", str(seed), "--json", str(out)),
            *RECIPES[recipe],
            *(["--train-speaker", data_set] if data_set != "all" else []),
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, default=Path("../shared/models/whisper-tiny.en"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--recipes", nargs="+", default=["default"], choices=sorted(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    parser.add_argument("--data-sets", nargs="+", default=["all", "jackson"])
    args = parser.parse_args()
    rows = []
    for recipe in args.recipes:
        for data_set in args.data_sets:
            for seed in args.seeds:
                figures = run(recipe, data_set, seed, args.base, args.data)
                general = figures["forgetting"]["general_en"]
                row = {
                    "recipe": recipe,
                    "data": data_set,
                    "seed": seed,
                    "domain_wer": domain_wer(figures),
                    "general_points": general["points"],
                    "general_interval": general["interval"],
                    "share": figures["interpolation_share"],
                    "train_seconds": figures["train_seconds"],
                    "gate_passed": figures["gate_passed"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| recipe | data | seeds | domain WER | general_en points (95% interval) | share | train s |")
    print("|---|---|---|---|---|---|---|")
    for recipe in args.recipes:
        for data_set in args.data_sets:
            runs = [r for r in rows if (r["recipe"], r["data"]) == (recipe, data_set)]
            cells = [
                " / ".join(show(r) for r in runs)
                for show in (
                    lambda r: f"{r['domain_wer']:.1%}",
                    lambda r: "{:+.1f} ({:+.1f} to {:+.1f})".format(
                        r["general_points"], *r["general_interval"]
                    ),
                    lambda r: f"{r['share']:g}",
                    lambda r: f"{r['train_seconds']:.0f}",
                )
            ]
            print(f"| {recipe} | {data_set} | {len(runs)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
