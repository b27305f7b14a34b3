"""Publish the split manifests: every source's trainable items joined, assigned to splits, and written."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from whisper_assets.curation.dedup import cluster_items
from whisper_assets.curation.manifests import publish_staged, stage_manifests
from whisper_assets.curation.processing import STATUS_OK
from whisper_assets.curation.splits import Placement, SplitSettings, group_key, leaks, split_items
from whisper_assets.reporting import hours_by
from whisper_assets.tables import read_table_all, table_path, write_rows

SPLITS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("parent_id", pa.string()),
        ("offset", pa.float64()),
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


def trainable_items(
    tables_root: Path, inventory: Sequence[dict], cache_root: Path, placement: dict[str, Placement]
) -> list[dict]:
    """Every speech source's trainable utterances (whole items and segments of long ones), one recording per
    content cluster.

    Clusters are decided here over all sources at once, so the result does not depend on the order sources
    arrived in: a better copy that came later replaces an earlier source's copy. Segments inherit their
    recording's cluster and group, so the segments of one recording share a split. A source whose speakers are
    clustered (`Placement.speaker_ids`) takes each utterance's speaker from the `speakers` table, and groups a
    recording by its main speaker (most speech).
    """
    inventory = [r for r in inventory if placement.get(r["source"], Placement()).speech]
    labels = {r["id"]: r for r in inventory}
    clusters = cluster_items(inventory, cache_root, "all")
    attributed = {
        r["id"]: r
        for r in read_table_all(tables_root, "speakers")
        if r["speaker"] and placement.get(r["source"], Placement()).speaker_ids
    }
    main_speaker = _main_speakers(attributed.values())
    items = []
    for row in read_table_all(tables_root, "segments"):
        cluster = clusters.get(row["parent_id"])  # None for sources that do not feed speech recognition
        if row["status"] != STATUS_OK or not (cluster and cluster["is_canonical"]):
            continue
        item = labels[row["parent_id"]]
        speaker = attributed[row["id"]]["speaker"] if row["id"] in attributed else item["speaker"]
        items.append(
            {
                "id": row["id"],
                "parent_id": row["parent_id"],
                "offset": row["offset"],
                "audio": row["audio"],
                "transcript": row["transcript"],
                "duration": round(row["duration"], 3),
                "language": item["language"],
                "speaker": speaker,
                "source": row["source"],
                "pseudo_label": bool(row.get("pseudo_label")),
                "timestamps": json.loads(row["phrases"]) if row.get("phrases") else None,
                "content_hash": cluster["cluster_id"],
                "group": group_key(
                    row["source"],
                    main_speaker.get(row["parent_id"], item["speaker"]),
                    cluster["cluster_id"],
                    placement.get(row["source"], Placement()).by_speaker,
                ),
            }
        )
    return items


def _main_speakers(rows: Iterable[dict]) -> dict[str, str]:
    """Per recording, the speaker with the most seconds among its utterances."""
    seconds: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        seconds[row["parent_id"]][row["speaker"]] += row["duration"]
    return {parent: counts.most_common(1)[0][0] for parent, counts in seconds.items()}


def content_leaks(
    by_split: dict[str, list[dict]], inventory: Sequence[dict], cache_root: Path
) -> dict[str, list[str]]:
    """Recordings in two splits, found again from their audio (PCM hashes, waveform matches), not from ids; a
    recording's segments count as the recording."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for split, rows in by_split.items():
        for row in rows:
            splits_of[row["parent_id"]].add(split)
    leaked = {
        f"segments of one recording: {parent}": sorted(splits)
        for parent, splits in splits_of.items()
        if len(splits) > 1
    }
    chosen = [r for r in inventory if r["id"] in splits_of]
    for row in cluster_items(chosen, cache_root, "published").values():
        if row["is_canonical"]:
            continue
        splits = sorted(splits_of[row["id"]] | splits_of[row["canonical_id"]])
        if len(splits) > 1:
            leaked[f"same audio: {row['id']} and {row['canonical_id']}"] = splits
    return leaked


@dataclass(frozen=True)
class SplitsResult:
    """What `publish_splits` found: rows per split, digests, leaks and empty transcripts; published or not."""

    by_split: dict[str, list[dict]]
    digests: dict[str, str]
    leaked: dict[str, list[str]]
    empty: list[str]

    @property
    def published(self) -> bool:
        return not self.leaked and not self.empty

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
    tables_root: Path,
    manifests_root: Path,
    cache_root: Path,
    placement: dict[str, Placement],
    settings: SplitSettings,
) -> SplitsResult:
    """Assign every trainable item to a split (or its regression set) and stage the manifests; publish them
    (and the `splits` table) only when no recording leaks between any two and no transcript is empty."""
    inventory = read_table_all(tables_root, "inventory")
    by_split = split_items(
        trainable_items(tables_root, inventory, cache_root, placement), settings, placement
    )
    digests = stage_manifests(manifests_root, by_split)
    all_rows = [row | {"split": name} for name, rows in by_split.items() for row in rows]
    leaked = leaks(by_split) | content_leaks(by_split, inventory, cache_root)
    result = SplitsResult(
        by_split, digests, leaked, [r["id"] for r in all_rows if not r["transcript"].strip()]
    )
    if result.published:
        publish_staged(manifests_root, digests)
        write_rows(table_path(tables_root, "splits"), all_rows, SPLITS_SCHEMA)
    return result
