"""Evaluate a model on manifest items: per-utterance rows, breakdowns, and the champion gate."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from whisper_assets.asr.metrics import aggregate, breakdown, duration_bucket, score_utterance
from whisper_assets.asr.model import load_base, resolve_device
from whisper_assets.asr.transcribe import transcribe

UTTERANCE_SCHEMA = pa.schema(
    [
        ("run", pa.string()),
        ("model", pa.string()),
        ("split", pa.string()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("language", pa.string()),
        ("speaker", pa.string()),
        ("duration", pa.float64()),
        ("duration_bucket", pa.string()),
        ("reference", pa.string()),
        ("hypothesis", pa.string()),
        ("wer", pa.float64()),
        ("cer", pa.float64()),
        ("word_errors", pa.int64()),
        ("ref_words", pa.int64()),
        ("hallucination", pa.list_(pa.string())),
    ]
)
BREAKDOWNS = ("language", "source", "speaker", "duration_bucket")


def evaluate_model(
    model_id: str,
    items_by_split: dict[str, Sequence[dict]],
    *,
    task: str,
    language: str | None,
    batch_size: int,
    max_new_tokens: int = 128,
) -> list[dict]:
    """Transcribe every split's items with one model and score them; one row per utterance."""
    model, processor = load_base(model_id)
    model.to(resolve_device())
    rows = []
    for split, items in items_by_split.items():
        hypotheses = transcribe(
            model,
            processor,
            items,
            task=task,
            language=language,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
        )
        for item, hypothesis in zip(items, hypotheses, strict=True):
            score = score_utterance(item["transcript"], hypothesis, item["language"])
            rows.append(
                {
                    "split": split,
                    "id": item["id"],
                    "source": item["source"],
                    "language": item["language"],
                    "speaker": item.get("speaker"),
                    "duration": item["duration"],
                    "duration_bucket": duration_bucket(item["duration"]),
                    "reference": item["transcript"],
                    "hypothesis": hypothesis,
                    **score,
                }
            )
    return rows


def summarize(rows: Sequence[dict]) -> dict:
    """Overall metrics in every view plus breakdowns per language, source, speaker and duration."""
    return {"overall": aggregate(rows), **{f"by_{field}": breakdown(rows, field) for field in BREAKDOWNS}}


def table_rows(rows: Sequence[dict], run: str, model: str) -> list[dict]:
    """Per-utterance rows in the queryable table's shape."""
    return [
        {
            "run": run,
            "model": model,
            **{
                k: r[k]
                for k in (
                    "split",
                    "id",
                    "source",
                    "language",
                    "speaker",
                    "duration",
                    "duration_bucket",
                    "reference",
                    "hypothesis",
                    "wer",
                    "cer",
                    "hallucination",
                )
            },
            "word_errors": r["normalized_word_errors"],
            "ref_words": r["normalized_ref_words"],
        }
        for r in rows
    ]
