"""`tts_dataset`: a Hugging Face `DatasetDict` (train/validation; audio, text, speaker_id) saved with
`save_to_disk`, and its dataset card.

The audio column is `Audio(sampling_rate=..., decode=False)` with the WAV bytes embedded: `load_from_disk` and
reading rows need no torchcodec (datasets 5 decodes only through it); trainers that want arrays cast the column
to `Audio(sampling_rate=...)` or decode the bytes with soundfile.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.files import write_text_atomic
from whisper_assets.reporting import hours_by, markdown_table
from whisper_assets.tts.profile import TtsProfile

SPLITS = ("train", "validation")
CARD_NAME = "README.md"


@dataclass(frozen=True)
class TtsDataset:
    folder: Path
    rows_by_split: dict[str, list[dict]]
    reused: bool

    def hours_by_speaker(self) -> dict[str, dict[str, float]]:
        """Hours per split and speaker."""
        return {split: hours_by(rows, "speaker_id") for split, rows in self.rows_by_split.items()}


def assign_validation(rows: Sequence[dict], share: float, seed: int) -> dict[str, list[dict]]:
    """Per speaker, a seeded shuffle puts round(share * n) clips in validation (at least one when the speaker
    has two or more and share > 0), so every speaker is heard in both splits."""
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["id"]):
        by_speaker[row["speaker_id"]].append(row)
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for speaker, clips in sorted(by_speaker.items()):
        random.Random(f"{seed}:{speaker}").shuffle(clips)
        count = round(share * len(clips))
        if share > 0 and len(clips) >= 2:
            count = min(max(count, 1), len(clips) - 1)
        out["validation"].extend(clips[:count])
        out["train"].extend(clips[count:])
    return {name: sorted(rows, key=lambda r: r["id"]) for name, rows in out.items()}


def build_dataset(
    rows: Sequence[dict], audio_folder: Path, profile: TtsProfile, root: Path, source: str, language: str
) -> TtsDataset:
    """Save the DatasetDict of `rows` (metadata rows with a `speaker_id`; `file_name` relative to
    `audio_folder`) as a new version folder under `root/dataset/`, with its card; an existing one is reused."""
    splits = assign_validation(rows, profile.validation_share, profile.seed)
    digest = hashlib.blake2s(
        json.dumps([str(audio_folder), profile.model_dump(), splits], sort_keys=True).encode(), digest_size=8
    )
    folder = root / "dataset" / digest.hexdigest()
    result = TtsDataset(folder, splits, reused=(folder / CARD_NAME).exists())
    if not result.reused:
        _save(splits, audio_folder, profile.sample_rate, folder)
        write_text_atomic(folder / CARD_NAME, dataset_card(result, source, language, profile.sample_rate))
    return result


def _save(splits: dict[str, list[dict]], audio_folder: Path, rate: int, folder: Path) -> None:
    from datasets import Audio, Dataset, DatasetDict

    def one(rows: list[dict]) -> Dataset:
        columns = {
            "audio": [str(audio_folder / r["file_name"]) for r in rows],
            "text": [r["text"] for r in rows],
            "speaker_id": [r["speaker_id"] for r in rows],
            "id": [r["id"] for r in rows],
            "duration": [float(r["duration"]) for r in rows],
        }
        return Dataset.from_dict(columns).cast_column("audio", Audio(sampling_rate=rate, decode=False))

    DatasetDict({name: one(rows) for name, rows in splits.items()}).save_to_disk(str(folder))


def dataset_card(dataset: TtsDataset, source: str, language: str, rate: int) -> str:
    """The dataset card: what it is, how to load it, and hours per speaker in each split."""
    hours = dataset.hours_by_speaker()
    speakers = sorted({s for split in hours.values() for s in split})
    table = [
        {
            "speaker_id": speaker,
            **{f"{split} hours": f"{hours[split].get(speaker, 0.0):.4f}" for split in SPLITS},
            **{
                f"{split} clips": sum(r["speaker_id"] == speaker for r in dataset.rows_by_split[split])
                for split in SPLITS
            },
        }
        for speaker in speakers
    ]
    columns = ("speaker_id", *(f"{s} hours" for s in SPLITS), *(f"{s} clips" for s in SPLITS))
    return "\n".join(
        [
            "---",
            f"language: [{language}]",
            "task_categories: [text-to-speech]",
            "---",
            f"# TTS dataset: {source}",
            "",
            f"{sum(len(r) for r in dataset.rows_by_split.values())} clips from the `{source}` source, "
            f"{rate} Hz mono, loudness-normalized; speakers from `tts_speakers` (the source's labels, the "
            "manual overrides, else clustered voices).",
            "",
            "```python",
            "from datasets import Audio, load_from_disk",
            f'ds = load_from_disk("{dataset.folder}")',
            f'ds = ds.cast_column("audio", Audio(sampling_rate={rate}))  # to decode (needs torchcodec)',
            "```",
            "",
            "## Hours per speaker",
            "",
            markdown_table(table, columns, limit=len(table)),
            "",
        ]
    )
