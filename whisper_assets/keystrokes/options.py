"""Every knob of a keystroke training run (the settings file's `keystrokes:` and the Dagster run config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KeystrokeOptions(BaseModel):
    """The design's recipe by default: LoRA r16/a32 on the encoder's self-attention, a fully trained new decoder,
    AdamW 2e-4 (0.9, 0.98) wd 0.01, cosine with warmup, clipping 1.0, effective batch 32, 10 epochs at most."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        "openai/whisper-small", description="Hub id or local path whose encoder is used (from_pretrained)."
    )
    decoder_layers: int | None = Field(None, ge=1, description="New decoder's depth; None: the base's.")
    lora_rank: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_share: float = Field(
        0.05, ge=0, lt=1, description="Share of all optimizer steps spent warming up."
    )
    effective_batch: int = Field(32, ge=1, description="Recordings per optimizer step.")
    micro_batch: int = Field(
        8, ge=1, description="Recordings per forward pass; accumulated to effective_batch."
    )
    max_epochs: int = Field(10, ge=1)
    patience: int = Field(
        3, ge=1, description="Evaluations without a min_gain token-accuracy gain before stopping."
    )
    min_gain: float = Field(0.005, ge=0)
    max_relative_drop: float = Field(
        0.05,
        gt=0,
        description="A larger relative drop in test token accuracy between evaluations fails the run.",
    )
    drop_alarm_from: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The drop alarm compares only from an evaluation at or above this test token accuracy: "
        "before the decoder has learned where to stop, free-running accuracy swings by more than 5%.",
    )
    eval_every: int = Field(250, ge=1, description="Optimizer steps between evaluations.")
    eval_minutes: float = Field(15.0, gt=0, description="Evaluate at least this often (wall clock).")
    max_eval_items: int = Field(256, ge=1, description="Recordings per split and evaluation.")
    decode_samples: int = Field(
        3, ge=0, description="Test recordings decoded and stored after each evaluation."
    )
    save_every: int = Field(500, ge=1)
    keep_last: int = Field(3, ge=1)
    window_seconds: float | None = Field(
        None, gt=0, le=30, description="Encoder window; None: the longest recording, rounded up to a second."
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    seed: int = 0

    @property
    def accumulation(self) -> int:
        return max(1, self.effective_batch // self.micro_batch)
