"""Every knob of a fine-tuning run, as one validated model (the Dagster run config mirrors it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from whisper_assets.asr.window import FULL_WINDOW_SECONDS, holding_window

TrainingMethod = Literal["full", "lora", "freeze_encoder", "acoustic"]
# The auto window's floor: tiny.en on FSDD's <1 s clips trained at a 1 s window lost 14% test WER once back at
# 30 s; at 4 s, 3% (bench/fsdd_quality.py). A trimmed model must see some padding, as it will at 30 s.
MIN_AUTO_WINDOW_SECONDS = 4.0


class TrainingOptions(BaseModel):
    """Hyperparameters and data handling of one training run; defaults suit a small CPU run."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        "openai/whisper-tiny", description="Hub id or local path, loaded with from_pretrained."
    )
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = Field(
        None,
        description="One language for every sample; None uses each manifest item's language (multilingual).",
    )
    method: TrainingMethod = "full"
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] = ["q_proj", "k_proj", "v_proj", "out_proj"]
    learning_rate: float = Field(
        1e-5, gt=0, description="1e-5 learns a domain without forgetting (bench/recipes.py); 1e-4 forgets."
    )
    warmup_steps: int | None = Field(
        None,
        ge=0,
        description="Steps of linear learning-rate warm-up; None: a tenth of max_steps (at least 1). Without "
        "warm-up, LoRA at lr 1e-3 diverged on FSDD at its third step (loss 3.4 -> 19.8).",
    )
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_steps: int = Field(
        60,
        ge=1,
        description="Optimizer steps (60 x 8 is ~3 epochs of 180 clips); stops earlier only by early "
        "stopping.",
    )
    batch_size: int = Field(8, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16 where the GPU supports it, fp16 on other CUDA devices, fp32 on CPU."
    )
    gradient_checkpointing: bool = False
    spec_augment: bool = False
    augment_probability: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of training samples whose audio is augmented each epoch (0: off; extra `augment`).",
    )
    augment_speed: float = Field(0.1, ge=0, lt=0.5, description="Speed perturbation: 1 +- this factor.")
    augment_pitch_semitones: float = Field(2.0, ge=0, le=12)
    augment_noise_snr_db: float = Field(
        10.0, description="Lowest signal-to-noise ratio of added noise (to 40 dB)."
    )
    augment_gain_db: float = Field(6.0, ge=0)
    augment_reverb: bool = Field(True, description="Generated rooms with a 0.2-0.8 s reverberation time.")
    replay_share: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="Share of every batch drawn from the replay sets (sources with role: replay), so the model "
        "keeps the general speech it knew; ignored when there are none.",
    )
    eval_every: int = Field(50, ge=1, description="Validate (WER) every N optimizer steps and at the end.")
    save_every: int = Field(50, ge=1)
    keep_last: int = Field(2, ge=1, description="Checkpoints kept besides the latest and the best.")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Evaluations without WER improvement."
    )
    seed: int = 42
    dataloader_workers: int = Field(0, ge=0)
    group_by_length: bool = True
    packing: bool = Field(False, description="Pack short utterances of one speaker into <= window samples.")
    timestamp_probability: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of samples (with aligned phrases) trained with timestamp tokens, so the model keeps "
        "emitting segment timestamps (distil-whisper's default); needs a tokenizer with <|0.00|> ...",
    )
    window_seconds: float | None = Field(
        None,
        gt=0,
        le=30,
        description="Encoder window; below 30 trims positions. None (auto): the shortest whole second that holds "
        "the longest training item, at least 4 s (30 s when one is longer than 29 s, or with early "
        "stopping), so short clips do not pay for Whisper's 30 s window.",
    )
    full_window_steps: int | None = Field(
        None,
        ge=0,
        description="With a trimmed window: the last N optimizer steps train at the full 30 s window, so the "
        "model is a general one again (served, aligned and exported like its base); 0 keeps a specialist. "
        "None (auto): a sixth of max_steps.",
    )
    interpolation: float | None = Field(
        None,
        gt=0,
        le=1,
        description="WiSE-FT: the saved weights are this share of the fine-tuned model and the rest its base's, "
        "which forgets less; 1 saves the fine-tuned weights as they are. None (auto): the smallest share "
        "(0.3-0.9, else 1) whose validation WER is within interpolation_tolerance of the fine-tuned model's.",
    )
    interpolation_tolerance: float = Field(
        0.01, ge=0, description="auto interpolation: validation WER (absolute) the mix may give up."
    )
    interpolation_max_forgetting: float = Field(
        0.01,
        ge=0,
        description="auto interpolation: WER (absolute) the mix may lose against the base on the built-in general "
        "selection set (espeak-ng sentences that are not the gate's set); half the gate's default limit, so "
        "the gate's own set keeps a margin.",
    )
    distillation: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Weight of a KL term to the frozen base model's token distributions on the same batch "
        "(learning without forgetting); the cross-entropy keeps the rest. 0: off. Costs a copy of the base and "
        "one forward pass of it per batch.",
    )
    generation_max_tokens: int = Field(128, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    max_eval_items: int | None = Field(200, ge=1, description="Validation items used during training.")

    @property
    def warmup(self) -> int:
        """The warm-up steps this run takes."""
        return self.warmup_steps if self.warmup_steps is not None else max(1, self.max_steps // 10)

    def windows(self, durations: Sequence[float]) -> tuple[float, int]:
        """The encoder window this run trains at, given its training items' durations, and how many of its
        last steps train at the full 30 s window instead."""
        window = self.window_seconds
        if window is None:
            held = max(MIN_AUTO_WINDOW_SECONDS, holding_window(durations))
            window = FULL_WINDOW_SECONDS if self.early_stopping_patience else held
        steps = max(1, self.max_steps // 6) if self.full_window_steps is None else self.full_window_steps
        if window >= FULL_WINDOW_SECONDS or steps >= self.max_steps:  # a one-step run trains at 30 s
            return FULL_WINDOW_SECONDS, 0
        return window, steps

    @model_validator(mode="after")
    def _window_in_frames(self) -> TrainingOptions:
        window = self.window_seconds
        if window is not None and round(window * 50) != window * 50:
            raise ValueError("window_seconds must be a multiple of 0.02 s (one encoder position)")
        if (self.full_window_steps or 0) >= self.max_steps:
            raise ValueError("full_window_steps must be fewer than max_steps (they are its last steps)")
        if self.full_window_steps and self.early_stopping_patience:
            raise ValueError(
                "full_window_steps and early_stopping_patience do not combine: a run stopped early in its "
                "trimmed phase would end a specialist"
            )
        return self


class SweepOptions(BaseModel):
    """The search space and budget of a sweep; every other training option comes from the base options."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(8, ge=1, description="Trials to complete (pruned ones count).")
    learning_rate_min: float = Field(1e-6, gt=0)
    learning_rate_max: float = Field(1e-3, gt=0)
    max_steps: list[int] = Field([40, 80], min_length=1, description="Step budgets to choose from.")
    methods: list[str] = Field(
        ["full", "lora"], min_length=1, description="Among full, lora, freeze_encoder."
    )
    lora_ranks: list[int] = Field([8, 32], min_length=1)
    prune: bool = Field(
        True, description="Stop a trial whose validation WER is worse than the median so far."
    )
    pruning_startup_trials: int = Field(
        2, ge=0, description="Trials that always finish before pruning starts."
    )

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        # A plain list[str] field: Dagster run config cannot express a list of literals.
        unknown = sorted(set(methods) - set(get_args(TrainingMethod)))
        if unknown:
            raise ValueError(f"unknown training methods {unknown}; known: {list(get_args(TrainingMethod))}")
        return methods

    @model_validator(mode="after")
    def _learning_rate_range(self) -> SweepOptions:
        if self.learning_rate_min > self.learning_rate_max:
            raise ValueError("learning_rate_min must not exceed learning_rate_max")
        return self
