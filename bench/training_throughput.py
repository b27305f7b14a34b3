"""Benchmark: training throughput and quality per minute, ours against the plain Hugging Face recipe.

    .venv/bin/python bench/training_throughput.py --base ../shared/models/whisper-tiny.en \
        --data ../shared/data/fsdd-dev --steps 20

Side by side on the same model, data and machine:
- plain: the fine-tune-whisper blog recipe (features precomputed with the processor, a padding collator,
  Seq2SeqTrainer), 30 s windows;
- ours: `whisper_assets.training.trainer.train` without packing, again with a warm feature cache, with packing
  (one speaker's clips packed into 30 s), and with a shorter encoder window.
Each run then transcribes the held-out clips (every 10th) so quality per wall minute can be compared.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
from transformers import (
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from whisper_assets.evaluation.report import evaluate_model, summarize
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train


def fsdd_items(folder: Path) -> list[dict]:
    with open(folder / "metadata.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "id": r["file_name"],
            "audio": str(folder / r["file_name"]),
            "transcript": r["transcription"],
            "duration": sf.info(str(folder / r["file_name"])).duration,
            "language": "en",
            "speaker": r["speaker_id"],
            "source": "fsdd",
        }
        for r in rows
    ]


class PaddingCollator:
    """The blog's DataCollatorSpeechSeq2SeqWithPadding."""

    def __init__(self, processor: WhisperProcessor, decoder_start_token_id: int):
        self.processor = processor
        self.decoder_start_token_id = decoder_start_token_id

    def __call__(self, features: list[dict]) -> dict:
        inputs = [{"input_features": f["input_features"]} for f in features]
        batch = self.processor.feature_extractor.pad(inputs, return_tensors="pt")
        labels_batch = self.processor.tokenizer.pad(
            [{"input_ids": f["labels"]} for f in features], return_tensors="pt"
        )
        labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        if (labels[:, 0] == self.decoder_start_token_id).all().cpu().item():
            labels = labels[:, 1:]
        batch["labels"] = labels
        return batch


def plain_recipe(base: str, items: list[dict], steps: int, batch: int, out: Path) -> dict:
    processor = WhisperProcessor.from_pretrained(base)
    model = WhisperForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    started = time.perf_counter()
    dataset = [
        {
            "input_features": processor.feature_extractor(
                sf.read(i["audio"], dtype="float32")[0], sampling_rate=16_000
            ).input_features[0],
            "labels": processor.tokenizer(i["transcript"]).input_ids,
        }
        for i in items
    ]
    features_seconds = time.perf_counter() - started
    args = Seq2SeqTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=1e-5,
        warmup_steps=5,
        report_to=[],
        save_strategy="no",
        logging_steps=steps,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        seed=42,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=PaddingCollator(processor, model.config.decoder_start_token_id),
    )
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    model.save_pretrained(out / "model")
    processor.save_pretrained(out / "model")
    mean = sum(i["duration"] for i in items) / len(items)
    return {
        "samples": steps * batch,
        "audio_seconds": steps * batch * mean,
        "train_seconds": train_seconds,
        "setup_seconds": features_seconds,
        "model_dir": out / "model",
    }


def ours(base: str, items: list[dict], steps: int, batch: int, out: Path, cache: Path, **knobs) -> dict:
    options = TrainingOptions(
        base_model=base,
        max_steps=steps,
        batch_size=batch,
        learning_rate=1e-5,
        warmup_steps=5,
        eval_every=10**6,
        save_every=10**6,
        **knobs,
    )
    result = train(options, items, [], out, cache, out / "log.jsonl")
    per_sample = result.audio_seconds / (steps * batch)
    return {
        "samples": steps * batch,
        "audio_seconds": result.audio_seconds,
        "train_seconds": result.train_seconds,
        "setup_seconds": 0.0,
        "model_dir": result.model_dir,
        "per_sample_audio": per_sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="../shared/models/whisper-tiny.en")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fsdd-dev"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    items = fsdd_items(args.data)
    test = items[::10]
    train_items = [i for k, i in enumerate(items) if k % 10]
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    cache = work / "cache"
    runs = {
        "plain Seq2SeqTrainer": lambda: plain_recipe(
            args.base, train_items, args.steps, args.batch, work / "plain"
        ),
        "ours (cold cache)": lambda: ours(args.base, train_items, args.steps, args.batch, work / "a", cache),
        "ours (warm cache)": lambda: ours(args.base, train_items, args.steps, args.batch, work / "b", cache),
        "ours + packing": lambda: ours(
            args.base, train_items, args.steps, args.batch, work / "c", cache, packing=True
        ),
        "ours + 2 s window": lambda: ours(
            args.base, train_items, args.steps, args.batch, work / "d", cache, window_seconds=2.0
        ),
    }
    print(
        f"{len(train_items)} training clips, {len(test)} test clips; {args.steps} steps of batch {args.batch}; "
        f"device {'cuda' if torch.cuda.is_available() else 'cpu'}"
    )
    baseline = None
    for name, run in runs.items():
        figures = run()
        rate = figures["audio_seconds"] / figures["train_seconds"]
        baseline = baseline or rate
        wer = summarize(
            evaluate_model(
                str(figures["model_dir"]),
                {"test": test},
                task="transcribe",
                language=None,
                batch_size=32,
                max_new_tokens=16,
            )
        )["overall"]["wer_normalized"]
        print(
            f"{name:22s} train {figures['train_seconds']:6.1f} s (+{figures['setup_seconds']:4.1f} s features)  "
            f"{figures['samples'] / figures['train_seconds']:6.2f} samples/s  {rate:7.2f} audio s/s  "
            f"x{rate / baseline:5.2f}  test WER {wer:.3f}"
        )
    base_wer = summarize(
        evaluate_model(
            args.base, {"test": test}, task="transcribe", language=None, batch_size=32, max_new_tokens=16
        )
    )["overall"]["wer_normalized"]
    print(f"base model test WER {base_wer:.3f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
