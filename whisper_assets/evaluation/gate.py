"""When a model may become the champion, and the settings that decide it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from whisper_assets.policy import Policy


class EvaluationSettings(Policy):
    """How models are judged, and when a new one becomes the champion."""

    wer_target: float | None = Field(None, ge=0, description="Normalized test WER a model must reach.")
    max_items: int | None = Field(None, ge=1, description="Evaluate on at most this many items per split.")
    batch_size: int = Field(16, ge=1)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def champion_gate(
    candidate_wer: float, base_wer: float, target: float | None, champion_wer: float | None = None
) -> GateDecision:
    """Promote only a model that is no worse than its base and the current champion, and meets the target."""
    if candidate_wer > base_wer:
        return GateDecision(
            False, f"test WER {candidate_wer:.4f} is worse than the base model's {base_wer:.4f}"
        )
    if target is not None and candidate_wer > target:
        return GateDecision(False, f"test WER {candidate_wer:.4f} misses the target {target:.4f}")
    if champion_wer is not None and candidate_wer > champion_wer:
        return GateDecision(
            False, f"test WER {candidate_wer:.4f} is worse than the champion's {champion_wer:.4f}"
        )
    return GateDecision(True, f"test WER {candidate_wer:.4f} (base {base_wer:.4f}, target {target})")
