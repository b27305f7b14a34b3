"""Hugging Face datasets on disk (`save_to_disk` folders, or `audiofolder` layouts) as a source.

Rows are mirrored into a folder the inventory reads: audio bytes written (or audio files linked) under the row's
id, and a JSONL manifest with the mapped transcript, speaker and language columns. Audio is never decoded by
`datasets` (`Audio(decode=False)`), so nothing depends on torchcodec; our own decoders read the files.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

from pydantic import Field

from whisper_assets.sources.base import SourceBase
from whisper_assets.sources.mirror import MANIFEST, write_mirror
from whisper_assets.sources.watch import ScanProgress, fingerprint_tree


class HfDatasetSource(SourceBase):
    """A Hugging Face dataset on disk (save_to_disk folder or audiofolder layout), columns mapped to items."""

    path_fields: ClassVar[tuple[str, ...]] = ("path",)

    kind: Literal["hf_dataset"] = "hf_dataset"
    path: str
    split: str | None = Field(None, description="One split; None takes every split.")
    audio_column: str = "audio"
    text_column: str = "text"
    speaker_column: str | None = None
    language_column: str | None = None
    id_column: str | None = None

    def mirror(self, folder: Path) -> dict:
        columns = Columns(
            self.audio_column, self.text_column, self.speaker_column, self.language_column, self.id_column
        )
        return {"exported": export_dataset(Path(self.path), folder, self.split, columns, self.language)}

    def fingerprint(self, folder: Path, progress: ScanProgress, deadline: float) -> str | None:
        return fingerprint_tree(Path(self.path), progress, deadline)  # the dataset itself, not the mirror

    def link_roots(self) -> list[Path]:
        return [Path(self.path)]  # the mirror links to audio files of the dataset


@dataclass(frozen=True)
class Columns:
    audio: str = "audio"
    text: str = "text"
    speaker: str | None = None
    language: str | None = None
    id: str | None = None


def load_rows(path: Path, split: str | None, columns: Columns):
    """The dataset (one split, or every split concatenated) with undecoded audio; yields (split, row)."""
    from datasets import Audio, DatasetDict, load_from_disk

    if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        yield from _audiofolder_rows(path, columns)
        return
    loaded = load_from_disk(str(path))
    parts = loaded if isinstance(loaded, DatasetDict) else {"train": loaded}
    if split is not None:
        if split not in parts:
            raise ValueError(f"split {split!r} not in the dataset at {path} (it has {', '.join(parts)})")
        parts = {split: parts[split]}
    for name, dataset in parts.items():
        missing = [
            c
            for c in (columns.audio, columns.text, columns.speaker, columns.language, columns.id)
            if c and c not in dataset.column_names
        ]
        if missing:
            raise ValueError(f"columns {missing} not in split {name!r} (columns: {dataset.column_names})")
        for row in dataset.cast_column(columns.audio, Audio(decode=False)):
            yield name, row


def _audiofolder_rows(path: Path, columns: Columns):
    """An audiofolder layout read directly (datasets' audiofolder builder encodes audio through torchcodec):
    metadata.csv or metadata.jsonl in any folder, naming `file_name` relative to itself plus the other columns."""
    for metadata in sorted([*path.rglob("metadata.csv"), *path.rglob("metadata.jsonl")]):
        if metadata.suffix == ".csv":
            with open(metadata, encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
        else:
            rows = [
                json.loads(line) for line in metadata.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        for row in rows:
            if columns.text not in row:
                raise ValueError(f"column {columns.text!r} not in {metadata} (columns: {sorted(row)})")
            audio_path = (metadata.parent / row["file_name"]).resolve()
            yield "train", {**row, columns.audio: {"path": str(audio_path), "bytes": None}}


def export_dataset(path: Path, out_dir: Path, split: str | None, columns: Columns, language: str) -> int:
    """Mirror the dataset's rows into out_dir; return how many rows were exported."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest, kept = [], set()
    for index, (split_name, row) in enumerate(load_rows(path, split, columns)):
        item_id = str(row[columns.id]) if columns.id else f"{split_name}-{index:07d}"
        audio = row[columns.audio]
        suffix = PurePosixPath(audio.get("path") or "x.wav").suffix or ".wav"
        name = f"{item_id}{suffix}".replace("/", "_")
        target = out_dir / name
        if audio.get("bytes"):
            if not target.exists() or target.stat().st_size != len(audio["bytes"]):
                target.write_bytes(audio["bytes"])
        elif audio.get("path"):
            if target.is_symlink() or target.exists():
                target.unlink()
            os.symlink(Path(audio["path"]).resolve(), target)
        kept.add(name)
        manifest.append(
            {
                "id": item_id,
                "audio": name,
                "transcript": row[columns.text],
                "speaker": row[columns.speaker] if columns.speaker else None,
                "language": row[columns.language] if columns.language else language,
                "provenance": {"dataset": str(path), "split": split_name, "row": index},
            }
        )
    for stale in out_dir.iterdir():
        if stale.name not in kept and not stale.name.startswith((MANIFEST, ".", "_")):
            stale.unlink()
    write_mirror(out_dir, manifest, [])
    return len(manifest)
