"""Keystroke accuracy: token accuracy (1 - token edit distance / reference length, over the corpus) and
sequence accuracy (the share of recordings decoded exactly)."""

from __future__ import annotations

from collections.abc import Sequence

import jiwer


def token_accuracy(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """1 - (substitutions + deletions + insertions) / reference tokens, over all recordings; at least 0."""
    if not references:
        raise ValueError("no recordings to score")
    scored = jiwer.process_words([" ".join(r) for r in references], [" ".join(h) for h in hypotheses])
    errors = scored.substitutions + scored.deletions + scored.insertions
    return max(0.0, 1.0 - errors / sum(len(r) for r in references))


def sequence_accuracy(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    return sum(list(r) == list(h) for r, h in zip(references, hypotheses, strict=True)) / len(references)
