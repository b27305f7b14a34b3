"""The fine-tuning loop: resumable, checkpointed, evaluated on validation WER, logged as JSON lines.

A run lives in one folder. Calling `train` again on the same folder resumes from the newest complete checkpoint
(model, optimizer, scheduler, grad scaler, RNG states and position in the data), so a process that was killed
ends in the same state as one that was not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, broadcast_object_list
from transformers import get_scheduler

from whisper_assets.asr.metrics import HEARD_MAX_WER, aggregate, score_utterance
from whisper_assets.asr.model import (
    configure_language,
    is_multilingual,
    load_base,
    resolve_device,
    resolve_precision,
)
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.asr.window import FULL_WINDOW_SECONDS
from whisper_assets.parallel import default_workers, use_all_cores
from whisper_assets.training.augment import Augmenter
from whisper_assets.training.checkpoints import Checkpoints
from whisper_assets.training.data import (
    FeatureCache,
    ResumableBatchSampler,
    SpeechDataset,
    collate,
    fitting_labels,
    timestamp_begin,
    to_samples,
)
from whisper_assets.training.distillation import FrozenTeacher, kl_to_teacher
from whisper_assets.training.interpolation import choose_share, interpolate, largest_share_within
from whisper_assets.training.model import (
    apply_method,
    restore_encoder_window,
    save_model,
    trim_encoder_window,
    trim_feature_window,
)
from whisper_assets.training.options import TrainingOptions

log = logging.getLogger(__name__)
_MAX_GRAD_NORM = 1.0
# After warm-up, the median loss of the last 5 steps over 4x (and 2 nats above) that of the 20 before them:
# the run diverged.
_SPIKE_FACTOR, _SPIKE_HISTORY, _SPIKE_MIN_HISTORY, _SPIKE_RUN = 4.0, 20, 5, 5


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    best_wer: float | None
    best_step: int | None
    resumed_from_step: int
    samples: int
    audio_seconds: float
    train_seconds: float
    precision: str
    device: str
    history: list[dict] = field(default_factory=list)
    processes: int = 1  # data-parallel processes that trained it
    interpolation: float = 1.0  # share of the fine-tuned weights in the saved model (the rest: the base's)
    window_seconds: float = 30.0  # the encoder window it trained at (before its full-window steps)
    full_window_steps: int = 0  # its last steps, at the full 30 s window
    cache: dict = field(default_factory=dict)


class JsonLog:
    """Structured training log: one JSON object per line, appended (a resumed run continues the file).

    Only the main process of a multi-process run writes (`enabled`); the others' records are dropped.
    """

    def __init__(self, path: Path, sink: Callable[[dict], None] | None = None, enabled: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sink = sink
        self.enabled = enabled

    def write(self, **record) -> dict:
        record = {"timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"), **record, **_gpu_stats()}
        if not self.enabled:
            return record
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.sink:
            self.sink(record)
        return record


def train(
    options: TrainingOptions,
    train_items: Sequence[dict],
    validation_items: Sequence[dict],
    run_dir: Path,
    cache_root: Path,
    log_path: Path,
    on_record: Callable[[dict], None] | None = None,
    replay_items: Sequence[dict] = (),
    general_items: Sequence[dict] = (),
) -> TrainResult:
    """Fine-tune `options.base_model` on the items (mixing in `replay_items` at `options.replay_share` of each
    batch); resume if run_dir holds checkpoints; save run_dir/model. `general_items` (general speech that is
    not the gate's) hold the auto interpolation share to where they forget little.

    Device placement, mixed precision and data parallelism are accelerate's: started by `accelerate launch` or
    `torchrun` with several processes (GPUs, or CPU processes over gloo), each process takes its slice of every
    batch, so the global batch and the result match a single process; the main process alone evaluates, logs
    and saves.
    """
    wanted = resolve_device()
    precision = resolve_precision(options.precision, wanted)
    accelerator = _accelerator(precision, cpu=wanted.type == "cpu")
    device, main = accelerator.device, accelerator.is_main_process
    use_all_cores(max(1, default_workers() // accelerator.num_processes))  # CPU processes share the cores
    _seed_everything(options.seed)
    model, processor = load_base(options.base_model)
    multilingual = is_multilingual(model)
    language = options.language if multilingual else None
    configure_language(model, processor, language, options.task if multilingual else None)
    eval_items = list(validation_items)[: options.max_eval_items]
    checkpoints = Checkpoints(run_dir / "checkpoints")
    started = time.perf_counter()  # the run's cost: the base's validation and the interpolation included
    # The base at its full window, before any step: the WER a diverging run is held against.
    fresh = main and checkpoints.latest() is None
    base_wer = _validation_wer(model.to(device), processor, eval_items, options, language) if fresh else None
    trimmed, full_window_steps = options.windows([i["duration"] for i in train_items])
    full_window = trim_encoder_window(model, processor.feature_extractor, trimmed)
    teacher = FrozenTeacher(model, full_window).to(device) if options.distillation else None
    model = apply_method(model, options)
    # With a trimmed window, the last full_window_steps train at 30 s: the saved model is a general one again.
    finish_at = (
        options.max_steps - full_window_steps if full_window is not None and full_window_steps else None
    )

    timestamps = options.timestamp_probability
    if timestamps and timestamp_begin(processor.tokenizer) is None:
        log.warning("%s has no timestamp tokens: training without timestamps", options.base_model)
        timestamps = 0.0
    augment = Augmenter(options) if options.augment_probability > 0 else None
    max_tokens, start_token = model.config.max_target_positions, model.config.decoder_start_token_id
    caches: list[FeatureCache] = []

    def feed(window: float) -> tuple[int, SpeechDataset, ResumableBatchSampler, torch.utils.data.DataLoader]:
        """The training samples that fit `window` (replay mixed in), their sampler and their loader."""

        def fitting(items: Sequence[dict], pack: bool) -> list:
            found = to_samples(items, window, pack, timestamps, options.seed)
            return fitting_labels(found, processor, language, options.task, multilingual, max_tokens)

        samples = fitting(train_items, options.packing)
        if not samples:
            raise ValueError("no training samples: the train split is empty or every item exceeds the window")
        replay = fitting(replay_items, False)
        caches.append(cache := FeatureCache(cache_root, processor, options.task, multilingual))
        sampler = ResumableBatchSampler(
            [s.duration for s in samples],
            options.batch_size,
            options.seed,
            options.group_by_length,
            len(replay),
            _replay_per_batch(options, len(replay)),
        )
        dataset = SpeechDataset(samples + replay, cache, language, augment)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=partial(collate, decoder_start_token_id=start_token),
            num_workers=options.dataloader_workers,
        )
        return len(samples), dataset, sampler, loader

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate)
    scheduler = get_scheduler(options.scheduler, optimizer, options.warmup, options.max_steps)
    # accelerate's grad scaler with fp16 on CUDA; else a disabled one, so checkpoints keep one layout
    scaler = accelerator.scaler or torch.amp.GradScaler(device.type, enabled=False)

    state = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best_wer": None,
        "best_step": None,
        "evals_since_best": 0,
        "done": False,
        "base_wer": base_wer,
        "recent_losses": [],
    }
    if latest := checkpoints.latest():
        if finish_at is not None and Checkpoints.step_of(latest) >= finish_at:
            restore_encoder_window(model, processor.feature_extractor, full_window)
            if teacher:
                teacher.restore_window(processor.feature_extractor)
        state = {"base_wer": None, "recent_losses": []} | checkpoints.load(
            latest, model, optimizer, scheduler, scaler
        )
        state["done"] = (
            state["step"] >= options.max_steps
            or state.get("early_stopped", False)
            or state.get("diverged", False)
        )
        log.info("resuming from %s (step %d)", latest.name, state["step"])
    resumed_from, finished_before = state["step"], state["done"]
    model, optimizer = accelerator.prepare(model, optimizer)
    journal = JsonLog(log_path, on_record, enabled=main)

    def evaluate() -> float | None:
        return _validation_wer(accelerator.unwrap_model(model), processor, eval_items, options, language)

    if state["base_wer"] is not None and not resumed_from:
        journal.write(stage="base", step=0, base_wer=state["base_wer"])
    audio_seconds = 0.0
    micro = 0
    model.train()
    fed_window, training_samples = None, None
    while not state["done"]:
        window = trimmed
        if finish_at is not None and state["step"] >= finish_at:
            window = FULL_WINDOW_SECONDS
        if window != fed_window:
            samples, dataset, sampler, loader = feed(window)
            loader, fed_window = accelerator.prepare(loader), window
            training_samples = training_samples or samples
        sampler.epoch, sampler.start_batch = state["epoch"], state["batch_in_epoch"]
        dataset.epoch = state["epoch"]
        epoch_batches = sampler.batches(state["epoch"])
        for batch in loader:
            audio_seconds += sum(dataset.samples[i].duration for i in epoch_batches[state["batch_in_epoch"]])
            state["batch_in_epoch"] += 1
            with accelerator.autocast():
                out = model(input_features=batch["input_features"], labels=batch["labels"])
                loss = out.loss
                if teacher:
                    taught = teacher.logits(batch["input_features"], batch["labels"])
                    kl = kl_to_teacher(out.logits, taught, batch["labels"])
                    loss = (1 - options.distillation) * loss + options.distillation * kl
            accelerator.backward(loss / options.gradient_accumulation)
            micro += 1
            if micro % options.gradient_accumulation:
                continue
            grad_norm = float(accelerator.clip_grad_norm_(trainable, _MAX_GRAD_NORM))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state["step"] += 1
            loss_value = accelerator.reduce(loss.detach(), "mean").item()
            distilled = {"kl": round(accelerator.reduce(kl.detach(), "mean").item(), 5)} if teacher else {}
            journal.write(
                stage="train",
                step=state["step"],
                epoch=state["epoch"],
                loss=round(loss_value, 5),
                lr=scheduler.get_last_lr()[0],
                grad_norm=round(grad_norm, 5),
                **distilled,
            )
            if main:
                _after_step(state, options, evaluate, journal, loss_value)
            if accelerator.num_processes > 1:  # the main process evaluated: every process follows its state
                state = broadcast_object_list([state])[0]
            switch = state["step"] == finish_at and not state["done"]
            if switch:  # the full-window phase: a new model to choose among, fed afresh
                unwrapped = accelerator.unwrap_model(model)
                restore_encoder_window(unwrapped, processor.feature_extractor, full_window)
                if teacher:
                    teacher.restore_window(processor.feature_extractor)
                # the loss at 30 s is on another scale: spikes are judged against 30 s steps only
                state.update(
                    epoch=0,
                    batch_in_epoch=0,
                    best_wer=None,
                    best_step=None,
                    evals_since_best=0,
                    recent_losses=[],
                )
                journal.write(stage="full_window", step=state["step"])
            new_best = state["best_step"] == state["step"]  # saved so the best weights can be restored
            saved = state["step"] % options.save_every == 0 or state["done"] or new_best or switch
            if main and saved:
                checkpoints.save(
                    state["step"], accelerator.unwrap_model(model), optimizer, scheduler, scaler, state
                )
                checkpoints.rotate(options.keep_last, state["best_step"])
                journal.write(stage="checkpoint", step=state["step"])
            accelerator.wait_for_everyone()
            if state["done"] or switch:
                break
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0

    if training_samples is None:  # a finished run called again: count what it trained on
        training_samples = feed(trimmed)[0]
    model = accelerator.unwrap_model(model)
    if state["best_step"] is not None and checkpoints.path(state["best_step"]).exists():
        Checkpoints.load_weights(checkpoints.path(state["best_step"]), model)
    share = 1.0
    if main and state.get("diverged") and not _beat_the_base(state):
        model = load_base(options.base_model)[0]  # nothing better than the base was found: roll back to it
        configure_language(model, processor, language, options.task if multilingual else None)
        trim_feature_window(processor.feature_extractor, FULL_WINDOW_SECONDS)
    elif main and options.interpolation != 1.0:
        model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        chosen = _logged_share(log_path) if finished_before else None  # re-published: as chosen then
        evaluate_general = None
        if general_items:
            general = options.model_copy(update={"generation_max_tokens": GENERAL_MAX_TOKENS})
            evaluate_general = partial(_validation_wer, model, processor, general_items, general, language)
        share = _mix_with_base(model, options, evaluate, state, journal, chosen, evaluate_general)
    model_dir = run_dir / "model"
    if main:
        save_model(model, processor, model_dir)
    accelerator.wait_for_everyone()
    history = [json.loads(line) for line in log_path.read_text().splitlines()]
    return TrainResult(
        model_dir=model_dir,
        steps=state["step"],
        best_wer=state["best_wer"],
        best_step=state["best_step"],
        resumed_from_step=resumed_from,
        samples=training_samples,
        audio_seconds=audio_seconds,
        train_seconds=time.perf_counter() - started,
        precision=precision,
        device=device.type,
        history=history,
        cache={
            "hits": sum(c.hits for c in caches),
            "misses": sum(c.misses for c in caches),
            "repaired": sum(c.repaired for c in caches),
        },
        processes=accelerator.num_processes,
        interpolation=share,
        window_seconds=trimmed,
        full_window_steps=full_window_steps if full_window is not None else 0,
    )


def _validation_wer(
    model, processor, items: Sequence[dict], options: TrainingOptions, language: str | None
) -> float | None:
    """Normalized WER of the model on the validation items; None without any."""
    if not items:
        return None
    hypotheses = transcribe(
        model,
        processor,
        items,
        task=options.task,
        language=language,
        batch_size=options.eval_batch_size,
        max_new_tokens=options.generation_max_tokens,
    )
    scores = [
        score_utterance(i["transcript"], h, i["language"]) for i, h in zip(items, hypotheses, strict=True)
    ]
    return aggregate(scores)["wer_normalized"]


# A general selection set the base hears worse than this says nothing about forgetting (the gate's rule too).
MAX_SELECTION_BASE_WER = HEARD_MAX_WER
# General sentences run longer than a domain's validation items may: their decodes get their own budget.
GENERAL_MAX_TOKENS = 96


def _mix_with_base(
    model,
    options: TrainingOptions,
    evaluate: Callable[[], float | None],
    state: dict,
    journal: JsonLog,
    chosen: float | None = None,
    evaluate_general: Callable[[], float | None] | None = None,
) -> float:
    """Interpolate the fine-tuned weights with the base's (`options.interpolation`, else `chosen` by an earlier
    call, else chosen now); return the share kept. Auto (None) without validation items (nothing to choose on)
    keeps the fine-tuned weights; with `evaluate_general` (WER on a general selection set), the share is also
    held to where that WER stays within `interpolation_max_forgetting` of the base's."""
    tuned_wer = state["best_wer"]
    if options.interpolation is None and tuned_wer is None:
        return 1.0
    tuned = {name: weight.detach().clone() for name, weight in model.state_dict().items()}
    base = load_base(options.base_model)[0].state_dict()

    def apply(share: float) -> None:
        interpolate(model, base, tuned, share)

    general: dict = {}
    if options.interpolation is None and chosen is None:
        share, tried = choose_share(apply, evaluate, tuned_wer, options.interpolation_tolerance)
        if evaluate_general is not None:
            apply(0.0)
            general["base_wer"] = base_wer = evaluate_general()
            if base_wer is not None and base_wer <= MAX_SELECTION_BASE_WER:
                limit = base_wer + options.interpolation_max_forgetting
                general["share"], general["tried"] = largest_share_within(apply, evaluate_general, limit)
                general["domain_share"], share = share, min(share, general["share"])
        apply(share)
    else:
        share, tried = options.interpolation or chosen, {}
        apply(share)
    journal.write(
        stage="interpolation",
        step=state["step"],
        interpolation_share=share,
        tuned_wer=tuned_wer,
        tried=tried,
        **({"general": general} if general else {}),
    )
    return share


def _logged_share(log_path: Path) -> float | None:
    """The interpolation share the run's log recorded last, if any."""
    if not log_path.exists():
        return None
    shares = [
        r["interpolation_share"]
        for r in map(json.loads, log_path.read_text().splitlines())
        if r["stage"] == "interpolation"
    ]
    return shares[-1] if shares else None


def _after_step(
    state: dict, options: TrainingOptions, evaluate: Callable[[], float | None], journal: JsonLog, loss: float
) -> None:
    """Evaluate on schedule, track the best step, and decide whether training is done: at max_steps, by early
    stopping, or when the run diverges (losses that stay high, or a validation WER worse than the base's)."""
    finished = state["step"] >= options.max_steps
    if reason := _loss_diverging(state, options, loss):
        journal.write(stage="diverged", step=state["step"], reason=reason, best_step=state["best_step"])
        state["diverged"] = state["done"] = True
        return
    if state["step"] % options.eval_every == 0 or finished:
        wer = evaluate()
        if wer is not None:
            journal.write(stage="eval", step=state["step"], wer=wer)
            if state["best_wer"] is None or wer < state["best_wer"]:
                state["best_wer"], state["best_step"], state["evals_since_best"] = wer, state["step"], 0
            else:
                state["evals_since_best"] += 1
            base_wer = _base_bar(state)
            if base_wer is not None and wer > base_wer:
                reason = f"validation WER {wer:.3f} is worse than the base's {base_wer:.3f}"
                journal.write(
                    stage="diverged", step=state["step"], reason=reason, best_step=state["best_step"]
                )
                state["diverged"] = finished = True
            patience = options.early_stopping_patience
            if patience and state["evals_since_best"] >= patience:
                journal.write(stage="early_stop", step=state["step"], best_step=state["best_step"])
                state["early_stopped"] = finished = True
    state["done"] = finished


def _loss_diverging(state: dict, options: TrainingOptions, loss: float) -> str | None:
    """Why the losses mean the run diverged, or None: a loss that is not finite, or, after warm-up, losses that
    stay high: the median of the last _SPIKE_RUN steps over 4x (and 2 nats above) the median of the steps
    before them. A single hard batch is no divergence (the demo's tiny model has 4x spikes it recovers from)."""
    recent = state["recent_losses"]
    recent.append(loss)
    del recent[: -(_SPIKE_HISTORY + _SPIKE_RUN)]
    if not math.isfinite(loss):
        return f"loss is {loss}"
    if state["step"] <= options.warmup or len(recent) < _SPIKE_MIN_HISTORY + _SPIKE_RUN:
        return None
    before, last = statistics.median(recent[:-_SPIKE_RUN]), statistics.median(recent[-_SPIKE_RUN:])
    if last > max(_SPIKE_FACTOR * before, before + 2):
        return f"loss median {last:.3f} over the last {_SPIKE_RUN} steps, against {before:.3f} before them"
    return None


def _base_bar(state: dict) -> float | None:
    """The base's validation WER, which a run must not end worse than; None when it was not measured or the
    base hears nothing (WER >= 1: a random or foreign-language base sets no bar)."""
    base_wer = state["base_wer"]
    return base_wer if base_wer is not None and base_wer < 1.0 else None


def _beat_the_base(state: dict) -> bool:
    """Whether there is a best checkpoint and it validated no worse than the base."""
    if state["best_step"] is None:
        return False
    return (bar := _base_bar(state)) is None or state["best_wer"] <= bar


def _replay_per_batch(options: TrainingOptions, replay_samples: int) -> int:
    """Replay samples in each batch: the share of the batch, at least one and never the whole batch."""
    if not options.replay_share:
        return 0
    if not replay_samples:
        log.info(
            "replay_share %.2f but no replay set (a source with role: replay): training without replay",
            options.replay_share,
        )
        return 0
    return min(max(round(options.batch_size * options.replay_share), 1), options.batch_size - 1)


def _accelerator(precision: str, cpu: bool) -> Accelerator:
    """accelerate for this process: its device, mixed precision, and (when launched with several processes) the
    process group; `cpu` makes several CPU processes one group over gloo. Each process gets its slice of every
    batch (split_batches), so the global batch is the same however many processes share it."""
    mixed = {"bf16": "bf16", "fp16": "fp16"}.get(precision, "no")
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed:
        AcceleratorState._reset_state()  # an earlier run in this process used another precision
    return Accelerator(
        cpu=cpu, mixed_precision=mixed, dataloader_config=DataLoaderConfiguration(split_batches=True)
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _gpu_stats() -> dict:
    if not torch.cuda.is_available():
        return {}
    stats = {"gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    with contextlib.suppress(Exception):  # utilization needs NVML (pynvml); memory is reported regardless
        stats["gpu_utilization"] = torch.cuda.utilization()
    return stats
