"""Score a review database's unreviewed entries (see `review_policy`) and store the scores beside them.

Scores are absolute, so an entry scored once keeps its score until its transcript, its audio or the model
changes, and only those are scored again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from whisper_assets.asr.likelihood import transcript_logprobs
from whisper_assets.asr.metrics import score_utterance
from whisper_assets.asr.model import load_base, resolve_device
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.evaluation.review_policy import PrioritySettings, Signals, priority
from whisper_assets.sources import review_db


@dataclass(frozen=True)
class RankResult:
    scored: int
    reused: int
    unplayable: int
    model: str


def rank_pending(
    db: Path,
    model_id: str,
    model_label: str,
    language: str,
    settings: PrioritySettings,
    max_seconds: float = review_db.MAX_AUDIO_SECONDS,
    progress: Callable[[str], None] = lambda _line: None,
) -> RankResult:
    """Score the unreviewed entries whose transcript, audio or model changed since they were last scored, and
    store the scores in the review database (where the review app orders by them)."""
    pending = review_db.pending_entries(db)
    stored = review_db.priority_keys(db)
    todo = [e for e in pending if stored.get(e.id) != (e.key, model_label)]
    rows, unplayable = [], 0
    if todo:
        model, processor = load_base(model_id)
        model.to(resolve_device())
        for start in range(0, len(todo), settings.batch_size):
            batch = []
            for entry in todo[start : start + settings.batch_size]:
                try:
                    samples = review_db.entry_audio(db, entry.id, max_seconds)
                except review_db.CorruptBlob as exc:
                    unplayable += 1
                    rows.append(_row(entry, model_label, "", None, 1.0, [f"audio unplayable: {exc}"]))
                    continue
                batch.append(
                    (entry, {"samples": samples, "transcript": entry.transcript, "language": language})
                )
            items = [item for _, item in batch]
            hypotheses = transcribe(
                model, processor, items, language=language, batch_size=settings.batch_size
            )
            logprobs = transcript_logprobs(model, processor, items, settings.batch_size)
            for (entry, item), hypothesis, logprob in zip(batch, hypotheses, logprobs, strict=True):
                duration = len(item["samples"]) / 16_000
                disagreement = (
                    score_utterance(entry.transcript, hypothesis, language)["wer"]
                    if entry.transcript.strip()
                    else 1.0
                )
                mean, lowest = logprob or (None, None)
                signals = Signals(
                    disagreement, mean, lowest, len(entry.transcript.strip()) / duration if duration else 0.0
                )
                rows.append(_row(entry, model_label, hypothesis, signals, *priority(signals, settings)))
            progress(f"scored {min(start + settings.batch_size, len(todo))}/{len(todo)}")
    review_db.write_priorities(db, rows, keep=[e.id for e in pending])
    return RankResult(len(rows), len(pending) - len(todo), unplayable, model_label)


def _row(
    entry: review_db.PendingEntry,
    model: str,
    hypothesis: str,
    signals: Signals | None,
    score: float,
    reasons: list[str],
) -> dict:
    return {
        "entry_id": entry.id,
        "entry_key": entry.key,
        "model": model,
        "hypothesis": hypothesis,
        "score": score,
        "reasons": json.dumps(reasons),
        **(
            asdict(signals)
            if signals
            else dict.fromkeys(("disagreement", "logprob", "word_logprob", "chars_per_second"))
        ),
    }
