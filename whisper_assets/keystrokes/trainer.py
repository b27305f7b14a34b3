"""Training the keystroke model: resumable, checkpointed, evaluated on train and test, stopped early or failed.

A run lives in one folder: `model_config/` (the model's shape, so a resume needs no download), `tokenizer/`,
`options.json`, `checkpoints/` (latest, best and the last `keep_last`; each restores model, optimizer, scheduler and scaler),
`eval_samples/` (decoded against true events after each evaluation) and, when done, `model/`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast, get_cosine_schedule_with_warmup, set_seed

from whisper_assets.asr.model import resolve_device, resolve_precision
from whisper_assets.asr.window import holding_window
from whisper_assets.files import write_json_atomic
from whisper_assets.keystrokes.events import KeyEvent, tokens
from whisper_assets.keystrokes.features import KeystrokeFeatureCache
from whisper_assets.keystrokes.metrics import sequence_accuracy, token_accuracy
from whisper_assets.keystrokes.model import (
    from_saved_config,
    greedy_decode,
    new_model,
    save_plain,
    with_adapters,
)
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.keystrokes.vocabulary import decode
from whisper_assets.parallel import use_all_cores
from whisper_assets.training.checkpoints import Checkpoints
from whisper_assets.training.data import IGNORED_LABEL
from whisper_assets.training.trainer import JsonLog

log = logging.getLogger(__name__)
MAX_GRAD_NORM = 1.0
SAMPLES_FILE = "decoded_samples.json"
OPTIONS_FILE = "options.json"


@dataclass
class KeystrokeResult:
    model_dir: Path | None  # None when the run failed
    steps: int
    best_step: int | None
    best_token_accuracy: float | None
    resumed_from_step: int
    failed: str | None
    window_seconds: float
    train_seconds: float
    device: str
    precision: str
    evaluations: list[dict] = field(default_factory=list)
    cache: dict = field(default_factory=dict)


def window_for(rows: Sequence[dict], options: KeystrokeOptions) -> float:
    """The encoder window: the option, else the longest recording rounded up to a whole second."""
    return options.window_seconds or holding_window(r["duration"] for r in rows)


def judge(state: dict, test_accuracy: float, options: KeystrokeOptions) -> str:
    """Update the run state with a test token accuracy: "failed" on a relative drop above the limit from an
    evaluation at or above `drop_alarm_from` (the best checkpoint stays), "improved" when it beats the best,
    else "flat"; stop after `patience` evaluations without a gain of `min_gain`."""
    previous = state["last_test_accuracy"]
    armed = previous is not None and previous > 0 and previous >= options.drop_alarm_from
    if armed and (previous - test_accuracy) / previous > options.max_relative_drop:
        state["failed"] = (
            f"test token accuracy fell from {previous:.4f} to {test_accuracy:.4f} at step {state['step']} "
            f"(more than {options.max_relative_drop:.0%} relative): run stopped, best checkpoint kept"
        )
        state["done"] = True
        return "failed"
    state["last_test_accuracy"] = test_accuracy
    best = state["best_accuracy"]
    gained = best is None or test_accuracy >= best + options.min_gain
    state["evals_since_gain"] = 0 if gained else state["evals_since_gain"] + 1
    if state["evals_since_gain"] >= options.patience:
        state["done"] = state["early_stopped"] = True
    if best is None or test_accuracy > best:
        state["best_accuracy"], state["best_step"] = test_accuracy, state["step"]
        return "improved"
    return "flat"


def train_keystrokes(
    options: KeystrokeOptions,
    rows: Sequence[dict],
    tokenizer: PreTrainedTokenizerFast,
    data_root: Path,
    run_dir: Path,
    cache_root: Path,
    log_path: Path,
    on_eval: Callable[[dict, Path], None] = lambda _record, _samples: None,
) -> KeystrokeResult:
    """Train (or resume) the run in run_dir on the manifest rows' train split, evaluating on train and test."""
    device = resolve_device()
    use_all_cores()
    precision = resolve_precision(options.precision, device)
    set_seed(options.seed)
    train_rows = [r for r in rows if r["split"] == "train"]
    test_rows = [r for r in rows if r["split"] == "test"]
    if not train_rows or not test_rows:
        raise ValueError(f"need train and test recordings; have {len(train_rows)} and {len(test_rows)}")
    checkpoints = Checkpoints(run_dir / "checkpoints")
    latest = checkpoints.latest()
    window = window_for(rows, options)
    if latest is None:
        model, extractor = new_model(options, tokenizer, window)
        model.save_pretrained(run_dir / "model_config", safe_serialization=True)
        extractor.save_pretrained(run_dir / "model_config")
        (
            run_dir / "model_config" / "model.safetensors"
        ).unlink()  # the shape only; weights are in checkpoints
        tokenizer.save_pretrained(run_dir / "tokenizer")
        write_json_atomic(run_dir / OPTIONS_FILE, options.model_dump(mode="json"), indent=1)
    else:
        model, extractor = from_saved_config(run_dir / "model_config")
    model = with_adapters(model, options).to(device)
    cache = KeystrokeFeatureCache(cache_root, extractor, tokenizer, data_root)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=options.learning_rate, betas=(0.9, 0.98), weight_decay=options.weight_decay
    )
    micro_per_epoch = math.ceil(len(train_rows) / options.micro_batch)
    total_steps = max(1, math.ceil(options.max_epochs * micro_per_epoch / options.accumulation))
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(options.warmup_share * total_steps), total_steps
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    state = {
        "step": 0,
        "micro": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best_accuracy": None,
        "best_step": None,
        "last_test_accuracy": None,
        "evals_since_gain": 0,
        "early_stopped": False,
        "failed": None,
        "done": False,
    }
    if latest is not None:
        state = checkpoints.load(latest, model, optimizer, scheduler, scaler)
        log.info("resuming keystroke run %s from %s (step %d)", run_dir.name, latest.name, state["step"])
    resumed_from = state["step"]
    journal = JsonLog(log_path)
    evaluator = _Evaluator(model, cache, tokenizer, options, device, precision, train_rows, test_rows)
    started = last_eval = time.monotonic()
    evaluations: list[dict] = []

    def save(samples: Path | None = None) -> None:
        folder = checkpoints.save(state["step"], model, optimizer, scheduler, scaler, state)
        if samples is not None:
            shutil.copy(samples, folder / SAMPLES_FILE)
        checkpoints.rotate(options.keep_last, state["best_step"])
        journal.write(stage="checkpoint", step=state["step"])

    model.train()
    while not state["done"]:
        order = list(range(len(train_rows)))
        random.Random(options.seed * 1_000_003 + state["epoch"]).shuffle(order)
        batches = [order[i : i + options.micro_batch] for i in range(0, len(order), options.micro_batch)]
        for batch in batches[state["batch_in_epoch"] :]:
            state["batch_in_epoch"] += 1
            features, labels = _collate([cache.get(train_rows[i]) for i in batch], device)
            with _autocast(device, precision):
                loss = model(input_features=features, labels=labels).loss
            scaler.scale(loss / options.accumulation).backward()
            state["micro"] += 1
            if state["micro"] % options.accumulation:
                continue
            scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state["step"] += 1
            journal.write(
                stage="train", step=state["step"], epoch=state["epoch"], loss=round(loss.item(), 5),
                lr=scheduler.get_last_lr()[0], grad_norm=round(grad_norm, 5),
            )  # fmt: skip
            finished = state["step"] >= total_steps
            due = (
                state["step"] % options.eval_every == 0
                or time.monotonic() - last_eval >= options.eval_minutes * 60
            )
            verdict = None
            if due or finished:
                record, samples = evaluator.run(state["step"], run_dir)
                verdict = judge(state, record["test_token_accuracy"], options)
                record.update(verdict=verdict, epoch=state["epoch"])
                journal.write(stage="eval", **record)
                evaluations.append(record)
                on_eval(record, samples)
                last_eval = time.monotonic()
                model.train()
            if verdict == "failed":
                journal.write(stage="failed", step=state["step"], reason=state["failed"])
                break
            state["done"] = state["done"] or finished
            if state["step"] % options.save_every == 0 or verdict == "improved" or state["done"]:
                save(samples if verdict else None)
            if state["done"]:
                break
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0

    model_dir = None
    if not state["failed"]:
        if state["best_step"] is not None:
            Checkpoints.load_weights(checkpoints.path(state["best_step"]), model)
        model_dir = save_plain(model, extractor, tokenizer, run_dir / "model")
    return KeystrokeResult(
        model_dir=model_dir,
        steps=state["step"],
        best_step=state["best_step"],
        best_token_accuracy=state["best_accuracy"],
        resumed_from_step=resumed_from,
        failed=state["failed"],
        window_seconds=window,
        train_seconds=time.monotonic() - started,
        device=device.type,
        precision=precision,
        evaluations=evaluations,
        cache={"hits": cache.hits, "misses": cache.misses, "repaired": cache.repaired},
    )


class _Evaluator:
    """Scores the model on a fixed subset of train and on test: free-running and teacher-forced."""

    def __init__(self, model, cache, tokenizer, options, device, precision, train_rows, test_rows):
        self.model, self.cache, self.tokenizer, self.options = model, cache, tokenizer, options
        self.device, self.precision = device, precision
        subset = random.Random(options.seed).sample(train_rows, min(len(train_rows), options.max_eval_items))
        self.splits = {"train": subset, "test": test_rows[: options.max_eval_items]}
        longest = max(len(r["events"]) for r in [*train_rows, *test_rows])
        self.max_new_tokens = min(2 * longest + 8, model.config.max_target_positions - 1)

    def run(self, step: int, run_dir: Path) -> tuple[dict, Path]:
        record: dict = {"step": step}
        decoded_test: list[list[str]] = []
        for split, rows in self.splits.items():
            scores = score_rows(
                self.model, self.cache, self.tokenizer, rows, self.options.micro_batch, self.max_new_tokens,
                self.device, self.precision,
            )  # fmt: skip
            record.update({f"{split}_{name}": value for name, value in scores.metrics.items()})
            if split == "test":
                decoded_test = scores.hypotheses
        rows = self.splits["test"]
        picks = random.Random(self.options.seed + step).sample(
            range(len(rows)), min(len(rows), self.options.decode_samples)
        )
        samples = [
            {
                "id": rows[i]["id"],
                "audio": rows[i]["audio"],
                "true": tokens([KeyEvent.from_row(e) for e in rows[i]["events"]]),
                "decoded": decoded_test[i],
            }
            for i in picks
        ]
        path = run_dir / "eval_samples" / f"step-{step:08d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(samples, indent=1), encoding="utf-8")
        return record, path


@dataclass(frozen=True)
class Scores:
    metrics: dict[str, float]
    hypotheses: list[list[str]]


@torch.no_grad()
def score_rows(model, cache, tokenizer, rows, batch_size, max_new_tokens, device, precision) -> Scores:
    """token_accuracy and sequence_accuracy of greedy decoding, teacher_forced_accuracy, avg_decode_latency_ms."""
    model.eval()
    references, hypotheses = [], []
    correct = counted = 0
    decode_seconds = 0.0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        features, labels = _collate([cache.get(r) for r in batch], device)
        with _autocast(device, precision):
            logits = model(input_features=features, labels=labels).logits
            decoded = greedy_decode(
                model, features, tokenizer.bos_token_id, tokenizer.eos_token_id, max_new_tokens
            )
        known = labels != IGNORED_LABEL
        correct += int((logits.argmax(-1) == labels)[known].sum())
        counted += int(known.sum())
        decode_seconds += decoded.seconds
        references.extend(tokens([KeyEvent.from_row(e) for e in r["events"]]) for r in batch)
        hypotheses.extend(decode(tokenizer, ids) for ids in decoded.ids)
    metrics = {
        "token_accuracy": token_accuracy(references, hypotheses),
        "teacher_forced_accuracy": correct / counted,
        "sequence_accuracy": sequence_accuracy(references, hypotheses),
        "avg_decode_latency_ms": 1000 * decode_seconds / len(rows),
    }
    return Scores(metrics, hypotheses)


def _collate(examples, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.from_numpy(np.stack([np.asarray(e.features) for e in examples])).to(device)
    longest = max(len(e.labels) for e in examples)
    labels = torch.full((len(examples), longest), IGNORED_LABEL, dtype=torch.long)
    for i, e in enumerate(examples):
        labels[i, : len(e.labels)] = torch.from_numpy(np.asarray(e.labels))
    return features, labels.to(device)


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
