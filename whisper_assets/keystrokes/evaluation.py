"""A trained keystroke model on the test split: overall and per keyboard, written as a JSON report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.files import write_json_atomic
from whisper_assets.keystrokes.features import KeystrokeFeatureCache
from whisper_assets.keystrokes.inference import KeyDecoder
from whisper_assets.keystrokes.trainer import score_rows
from whisper_assets.layout import DataLayout

REPORT = "evaluation.json"
_BATCH = 8


@dataclass(frozen=True)
class KeystrokeReport:
    overall: dict[str, float]
    by_keyboard: list[dict]
    recordings: int
    path: Path
    columns: tuple[str, ...] = ("keyboard", "recordings", "token_accuracy", "sequence_accuracy")


def evaluate_model(model_dir: str | Path, test_rows: Sequence[dict], layout: DataLayout) -> KeystrokeReport:
    """Decode every test recording with the exported model and score it, overall and per keyboard."""
    if not test_rows:
        raise ValueError("the keystroke manifest has no test recordings")
    model_dir = Path(model_dir)
    decoder = KeyDecoder.from_model_dir(model_dir)
    cache = KeystrokeFeatureCache(
        layout.features_root / "keystrokes", decoder.extractor, decoder.tokenizer, layout.data_root
    )
    longest = max(len(r["events"]) for r in test_rows)
    limit = min(2 * longest + 8, decoder.model.config.max_target_positions - 1)
    device = next(decoder.model.parameters()).device

    def score(rows: Sequence[dict]) -> dict[str, float]:
        return score_rows(
            decoder.model, cache, decoder.tokenizer, list(rows), _BATCH, limit, device, "fp32"
        ).metrics

    overall = score(test_rows)
    boards = sorted({r.get("keyboard", "unknown") for r in test_rows})
    by_keyboard = []
    for board in boards:
        rows = [r for r in test_rows if r.get("keyboard", "unknown") == board]
        by_keyboard.append({"keyboard": board, "recordings": len(rows), **score(rows)})
    path = model_dir.parent / REPORT
    write_json_atomic(
        path, {"overall": overall, "by_keyboard": by_keyboard, "recordings": len(test_rows)}, indent=1
    )
    return KeystrokeReport(overall, by_keyboard, len(test_rows), path)
