"""Weight-space interpolation with the base model (WiSE-FT): keep the domain, forget less.

Fine-tuning on one narrow domain moves every weight towards it, and the model gets worse at everything else.
A mix `share x fine-tuned + (1 - share) x base` keeps most of the domain gain at a share well below 1 while
giving back most of what was forgotten (Wortsman et al., 2022; on Whisper it is the best method that needs no
replay data). The share is chosen on held-out validation: the smallest one whose domain WER stays within a
tolerance of the fine-tuned model's, and, where a general selection set exists, no larger than the largest one
whose WER there stays within a limit of the base's. The selection set is not the gate's general set, so the gate
still judges the result on speech nothing chose on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# The shares tried, smallest first: below 0.3 a few dozen steps of fine-tuning are mostly undone.
SHARES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def interpolate(
    model: torch.nn.Module, base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], share: float
):
    """Set the model's floating-point weights to share x tuned + (1 - share) x base, in place.

    A weight the base holds more rows of (a trimmed encoder window's positions) mixes with the base's first rows.
    """
    mixed = {}
    for name, weight in tuned.items():
        start = base.get(name)
        if start is None or not weight.is_floating_point():
            continue
        if start.shape != weight.shape:
            start = start[: weight.shape[0]]
        mixed[name] = torch.lerp(start.to(weight), weight, share)
    model.load_state_dict(mixed, strict=False)


def choose_share(
    apply: Callable[[float], None],
    evaluate: Callable[[], float],
    tuned_wer: float,
    tolerance: float,
) -> tuple[float, dict[float, float]]:
    """The smallest of SHARES whose validation WER is at most `tuned_wer + tolerance` (1.0 when none is), by
    bisection, since WER falls as the share grows towards the fine-tuned model; and the WER of each share tried.
    `apply(share)` sets the model's weights; the model is left at the chosen share."""
    tried: dict[float, float] = {}
    low, high = 0, len(SHARES)  # the answer's index in SHARES + (1.0,) lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        apply(SHARES[middle])
        tried[SHARES[middle]] = wer = evaluate()
        if wer <= tuned_wer + tolerance:
            high = middle
        else:
            low = middle + 1
    chosen = SHARES[low] if low < len(SHARES) else 1.0
    apply(chosen)
    return chosen, tried


def largest_share_within(
    apply: Callable[[float], None], evaluate: Callable[[], float], limit: float
) -> tuple[float, dict[float, float]]:
    """The largest of SHARES + (1.0,) whose WER on a general set is at most `limit` (the smallest share when
    none is), by bisection, since that WER grows with the share as the model forgets; and the WER of each share
    tried. The model is left at the last share tried."""
    candidates = (*SHARES, 1.0)
    tried: dict[float, float] = {}
    low, high = 0, len(candidates) - 1  # the answer's index lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        apply(candidates[middle])
        tried[candidates[middle]] = wer = evaluate()
        if wer <= limit:
            low = middle
        else:
            high = middle - 1
    return candidates[low], tried
