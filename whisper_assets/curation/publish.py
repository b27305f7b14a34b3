"""Publish the split manifests: every source's trainable items joined, assigned to splits, and written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from whisper_assets.curation.manifests import split_manifest_path, write_manifest
from whisper_assets.curation.processing import STATUS_OK
from whisper_assets.curation.splits import SplitSettings, group_key, hours_by, leaks, split_items
from whisper_assets.tables import read_table_all, table_path, write_rows

SPLITS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("audio", pa.string()),
        ("transcript", pa.string()),
        ("duration", pa.float64()),
        ("language", pa.string()),
        ("speaker", pa.string()),
        ("source", pa.string()),
        ("group", pa.string()),
        ("content_hash", pa.string()),
    ]
)


def trainable_items(tables_root: Path, speaker_disjoint: dict[str, bool]) -> list[dict]:
    """Join processed audio, transcripts and inventory labels for every trainable item of every source."""
    inventory = {r["id"]: r for r in read_table_all(tables_root, "inventory")}
    transcripts = {r["id"]: r for r in read_table_all(tables_root, "normalized_transcripts") if r["accepted"]}
    identity = {r["id"]: r for r in read_table_all(tables_root, "dedup_report")}
    items = []
    for row in read_table_all(tables_root, "processed_audio"):
        if row["status"] != STATUS_OK or row["id"] not in transcripts or row["id"] not in identity:
            continue
        labels = inventory[row["id"]]
        content = identity[row["id"]]["cluster_id"]
        items.append(
            {
                "id": row["id"],
                "audio": row["audio"],
                "transcript": transcripts[row["id"]]["transcript"],
                "duration": round(row["duration"], 3),
                "language": labels["language"],
                "speaker": labels["speaker"],
                "source": row["source"],
                "content_hash": content,
                "group": group_key(
                    row["source"], labels["speaker"], content, speaker_disjoint.get(row["source"], True)
                ),
            }
        )
    return items


@dataclass(frozen=True)
class SplitsResult:
    """What `publish_splits` wrote: rows per split, manifest digests, leaks and empty transcripts found."""

    by_split: dict[str, list[dict]]
    digests: dict[str, str]
    leaked: dict[str, list[str]]
    empty: list[str]

    @property
    def rows(self) -> int:
        return sum(len(rows) for rows in self.by_split.values())

    def summary(self) -> list[dict]:
        return [
            {
                "split": name,
                "items": len(rows),
                "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
                "by_language": hours_by(rows, "language"),
                "by_source": hours_by(rows, "source"),
            }
            for name, rows in self.by_split.items()
        ]


def publish_splits(
    tables_root: Path, manifests_root: Path, speaker_disjoint: dict[str, bool], settings: SplitSettings
) -> SplitsResult:
    """Assign every trainable item to a split; write the manifests and the `splits` table."""
    by_split = split_items(trainable_items(tables_root, speaker_disjoint), settings)
    digests = {
        name: write_manifest(split_manifest_path(manifests_root, name), rows)
        for name, rows in by_split.items()
    }
    all_rows = [row | {"split": name} for name, rows in by_split.items() for row in rows]
    write_rows(table_path(tables_root, "splits"), all_rows, SPLITS_SCHEMA)
    empty = [r["id"] for r in all_rows if not r["transcript"].strip()]
    return SplitsResult(by_split, digests, leaks(by_split), empty)
