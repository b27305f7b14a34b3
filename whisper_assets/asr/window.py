"""Whisper's encoder window in seconds: the full one, one position, and the shortest that holds some audio."""

from __future__ import annotations

import math
from collections.abc import Iterable

FULL_WINDOW_SECONDS = 30.0  # what every released Whisper encodes at once
FRAME_SECONDS = 0.02  # one encoder output position


def positions_seconds(max_source_positions: int) -> float:
    """The audio an encoder with this many positions covers (at most Whisper's 30 s)."""
    return min(FULL_WINDOW_SECONDS, round(max_source_positions * FRAME_SECONDS, 2))


def holding_window(durations: Iterable[float]) -> float:
    """The shortest whole-second window that holds the longest of these durations (at most 30 s)."""
    return float(min(FULL_WINDOW_SECONDS, max(1, math.ceil(max(durations, default=FULL_WINDOW_SECONDS)))))
