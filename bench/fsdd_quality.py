"""Benchmark: base vs fine-tuned WER on real speech, through the real graph.

    .venv/bin/python bench/fsdd_quality.py --base ../shared/models/whisper-tiny.en --data ../shared/data/fsdd-dev

The data folder becomes an upload source (symlinked, never modified); the whole graph runs in Dagster on a
temporary instance: inventory -> ... -> splits -> whisper_model -> eval_metrics. Prints the test WER of base and fine-tuned, every
regression set's (the built-in general set when no regression source exists: forgetting) and the gate's decision.
FSDD has two speakers, so the source splits by content (two speakers cannot fill three speaker-disjoint splits;
the test clips are other takes of the trained speakers) and keeps clips from 0.2 s. With `--train-speaker
jackson`, one speaker's clips are the source and every other speaker's clips a second source pinned to test:
the test WER per speaker then includes speakers the model never heard.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import yaml

from whisper_assets.definitions import build_definitions

OUT = Path(__file__).parent / "out" / "fsdd"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, default=Path("../shared/models/whisper-tiny.en"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    # Training options left out take the product's defaults (the default recipe through the Dagster step).
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--method", choices=["full", "lora", "freeze_encoder", "acoustic"])
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--window", type=float, help="encoder window in seconds (default: auto)")
    parser.add_argument("--full-window-steps", type=int, help="last steps at 30 s after a trimmed window")
    parser.add_argument("--interpolation", type=float, help="share of the fine-tuned weights (default: auto)")
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--distillation", type=float, help="weight of the KL term to the frozen base")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", type=Path, help="also write the figures to this file (bench/recipes.py)")
    parser.add_argument(
        "--train-speaker",
        help="train on this FSDD speaker alone; the other speakers' clips are all test (unseen)",
    )
    args = parser.parse_args()
    if not args.base.exists() or not args.data.exists():
        raise SystemExit(f"needs {args.base} and {args.data} (the shared folder beside the checkout)")

    out = OUT.with_name(f"fsdd-{args.train_speaker}") if args.train_speaker else OUT
    (out / "uploads").mkdir(parents=True, exist_ok=True)
    source = {"name": "fsdd", "language": "en", "split_by": "content", "license": "CC-BY-SA-4.0"}
    source["audio"] = {"min_seconds": 0.2}
    sources = [source]
    if args.train_speaker:
        speakers = speaker_folders(args.data, out / "uploads", args.train_speaker)
        sources.append({**source, "name": speakers, "split": "test", "split_by": "speaker"})
    elif not (link := out / "uploads" / "fsdd").exists():
        os.symlink(args.data.resolve(), link)
    chosen = {
        "max_steps": args.steps,
        "batch_size": args.batch,
        "method": args.method,
        "learning_rate": args.learning_rate,
        "window_seconds": args.window,
        "full_window_steps": args.full_window_steps,
        "interpolation": args.interpolation,
        "packing": args.packing or None,
        "distillation": args.distillation,
        "seed": args.seed,
    }
    training = {
        "base_model": str(args.base.resolve()),
        **{key: value for key, value in chosen.items() if value is not None},
        "generation_max_tokens": 16,  # digits: validation decodes stop early
        "eval_batch_size": 32,
    }
    settings = {
        "data_root": ".",
        "sources": sources,
        "training": training,
    }
    config = out / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump(settings))
    defs = build_definitions(str(config))
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.instance_for_test() as instance:
        names = [s["name"] for s in sources]
        instance.add_dynamic_partitions("dataset_sources", names)
        for name in names:
            defs.resolve_job_def("ingest_source").execute_in_process(
                partition_key=name, instance=instance, run_config=quiet
            )
        defs.resolve_job_def("publish_splits").execute_in_process(instance=instance, run_config=quiet)
        started = time.perf_counter()
        result = defs.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=instance,
            run_config=quiet,
            asset_selection=[dg.AssetKey("whisper_model"), dg.AssetKey("eval_metrics")],
            raise_on_error=False,  # a refused champion (a failed blocking check) is a result to print
        )
        elapsed = time.perf_counter() - started
    events = {
        e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    trained, evaluated = events["whisper_model"], events["eval_metrics"]
    report = json.loads(Path(evaluated["report"].value).read_text())
    print(
        f"options {chosen}: steps {trained['steps'].value}, window {trained['window_seconds'].value} s (last "
        f"{trained['full_window_steps'].value} steps at 30 s), interpolation share "
        f"{trained['interpolation_share'].value}, training {trained['train_seconds'].value} s, train+eval wall "
        f"{elapsed:.0f} s, {trained['audio_seconds_per_second'].value} audio s/s"
    )
    for model in ("base", "finetuned"):
        test = report[model]["test"]["overall"]
        print(
            f"{model:10s} test WER normalized {test['wer_normalized']:.3f}  orthographic "
            f"{test['wer_orthographic']:.3f}  CER {test['cer_normalized']:.3f}  ({test['utterances']} utterances)"
        )
        for speaker, scores in sorted(report[model]["test"]["by_speaker"].items()):
            print(f"    {speaker}: WER {scores['wer_normalized']:.3f} ({scores['utterances']} utterances)")
    for name in sorted(set(report["finetuned"]) - {"test", "validation"}):  # forgetting (regression sets)
        base, tuned = (report[m][name]["overall"] for m in ("base", "finetuned"))
        print(
            f"{name}: WER {base['wer_normalized']:.3f} -> {tuned['wer_normalized']:.3f}, "
            f"CER {base['cer_normalized']:.3f} -> {tuned['cer_normalized']:.3f}"
        )
    gate = result.get_asset_check_evaluations()[0]
    print(f"champion gate: {'passed' if gate.passed else 'refused'}: {gate.description}")
    if args.json:
        figures = {
            "options": chosen,
            "train_speaker": args.train_speaker,
            "window_seconds": trained["window_seconds"].value,
            "full_window_steps": trained["full_window_steps"].value,
            "interpolation_share": trained["interpolation_share"].value,
            "train_seconds": trained["train_seconds"].value,
            "test": {m: report[m]["test"]["overall"]["wer_normalized"] for m in ("base", "finetuned")},
            "test_by_speaker": {
                m: {k: v["wer_normalized"] for k, v in report[m]["test"]["by_speaker"].items()}
                for m in ("base", "finetuned")
            },
            "forgetting": {
                name: {"base": report["base"][name]["overall"]["wer_normalized"], **rise}
                | {"finetuned": report["finetuned"][name]["overall"]["wer_normalized"]}
                for name, rise in report["forgetting"].items()
            },
            "gate_passed": gate.passed,
        }
        args.json.write_text(json.dumps(figures, indent=2))


def speaker_folders(data: Path, uploads: Path, train_speaker: str) -> str:
    """Two upload folders holding copies from `data`: `fsdd` with the training speaker's clips and one with everyone
    else's (pinned to test); return the second one's source name."""
    with open(data / "metadata.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    others = "fsdd_unseen"
    for name, keep in (
        ("fsdd", lambda r: r["speaker_id"] == train_speaker),
        (others, lambda r: r["speaker_id"] != train_speaker),
    ):
        folder = uploads / name
        chosen = [r for r in rows if keep(r)]
        if not chosen:
            raise SystemExit(
                f"no clips for source {name} (speakers: {sorted({r['speaker_id'] for r in rows})})"
            )
        folder.mkdir(exist_ok=True)
        for row in chosen:
            if not (folder / row["file_name"]).exists():  # copies: a source refuses links inside it
                shutil.copy2(data / row["file_name"], folder / row["file_name"])
        with open(folder / "metadata.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(chosen)
    return others


if __name__ == "__main__":
    main()
