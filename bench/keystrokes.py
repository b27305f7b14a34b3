"""Keystroke model benchmark: train on generated typing recordings, report accuracy and what it cost.

    .venv/bin/python bench/keystrokes.py --base ../shared/models/whisper-tiny.en --recordings 8000 --words 1 1 \
        --options '{"decoder_layers": 2, "micro_batch": 16, "eval_every": 113, "max_eval_items": 200,
                    "learning_rate": 1e-3, "max_epochs": 4}'

(the CPU recipe of the figures in the README; the design's whisper-small recipe needs a GPU)

Generates recordings on three keyboards (train and test, split by the manifest's hash rule) and a held-out
set on a fourth keyboard the model never hears, trains with the design's recipe (or the options given), and
prints: recordings and hours, training wall time, test token/sequence accuracy over the last three
evaluations, accuracy per keyboard, on the unseen keyboard, and the latency of decoding one recording at a time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from whisper_assets.demo.typing import KEYBOARDS, generate_typing_recordings
from whisper_assets.keystrokes.features import KeystrokeFeatureCache
from whisper_assets.keystrokes.inference import KeyDecoder
from whisper_assets.keystrokes.manifests import build_manifest
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.keystrokes.trainer import score_rows, train_keystrokes, window_for
from whisper_assets.keystrokes.vocabulary import save_tokenizer
from whisper_assets.training.run_manifest import content_name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="base Whisper (path or id) whose encoder is used")
    parser.add_argument("--root", type=Path, default=Path("/tmp/keystroke-bench"))
    parser.add_argument("--recordings", type=int, default=1500)
    parser.add_argument("--unseen", type=int, default=150, help="recordings on the held-out keyboard")
    parser.add_argument("--words", type=int, nargs=2, default=(1, 2), help="words per recording: min max")
    parser.add_argument("--options", default="{}", help="KeystrokeOptions fields as JSON")
    args = parser.parse_args()

    root = args.root
    known, unseen_board = KEYBOARDS[:3], KEYBOARDS[3]
    started = time.perf_counter()
    if not (root / "recordings").exists():
        generate_typing_recordings(root / "recordings", args.recordings, 1, known, words=tuple(args.words))
        generate_typing_recordings(root / "unseen", args.unseen, 2, (unseen_board,), words=tuple(args.words))
    generated = time.perf_counter() - started
    manifest = build_manifest(root / "recordings", root / "manifests", root)
    unseen = build_manifest(root / "unseen", root / "unseen-manifests", root)
    tokenizer, _ = save_tokenizer(manifest.rows, root / "tokenizer")
    options = KeystrokeOptions(base_model=args.base, **json.loads(args.options))
    hours = sum(r["duration"] for r in manifest.rows) / 3600
    print(
        f"recordings: {len(manifest.rows)} ({len(manifest.split('train'))} train, {len(manifest.split('test'))} test)"
        f", {hours:.3f} h, {len(manifest.rejections)} rejected; unseen keyboard: {len(unseen.rows)}"
        f"; generated in {generated:.0f} s; vocabulary {len(tokenizer)}; window {window_for(manifest.rows, options)} s"
    )
    run_dir = root / content_name("run", options.model_dump(mode="json"))
    result = train_keystrokes(
        options, manifest.rows, tokenizer, root, run_dir, root / "features", root / "train-log.jsonl",
        lambda record, _samples: print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}), flush=True),
    )  # fmt: skip
    print(
        f"training: {result.steps} steps in {result.train_seconds:.0f} s on {result.device}; failed: {result.failed}"
    )
    last = result.evaluations[-3:]
    for metric in ("test_token_accuracy", "test_sequence_accuracy", "test_teacher_forced_accuracy"):
        print(f"{metric} over the last {len(last)} evaluations: {[round(e[metric], 4) for e in last]}")
    if result.model_dir is None:
        return  # the run failed (the reason is printed above): there is no model to score

    decoder = KeyDecoder.from_model_dir(result.model_dir)
    cache = KeystrokeFeatureCache(root / "features", decoder.extractor, tokenizer, root)
    max_new = 2 * max(len(r["events"]) for r in manifest.rows) + 8

    def score(rows: list[dict]) -> dict:
        rows = [{**r, "split": "test"} for r in rows]
        scores = score_rows(decoder.model, cache, tokenizer, rows, 8, max_new, decoder.model.device, "fp32")
        return {k: round(v, 4) for k, v in scores.metrics.items()}

    test = manifest.split("test")
    for board in known:
        print(f"best model, test on {board}: {score([r for r in test if r.get('keyboard') == board])}")
    print(f"best model, all test: {score(test)}")
    print(f"best model, unseen keyboard {unseen_board}: {score(unseen.rows)}")
    one_by_one = test[:20]
    started = time.perf_counter()
    for row in one_by_one:
        decoder.decode_file(root / row["audio"])
    latency = 1000 * (time.perf_counter() - started) / len(one_by_one)
    print(
        f"one recording at a time (decode-keys/server path, audio decoding included): {latency:.0f} ms each"
    )


if __name__ == "__main__":
    main()
