"""Keystroke manifests: one row per usable (audio, timeline) pair, a stored train/test map, recorded rejections.

The split follows the design exactly: blake2s of the recording name, unique hashes sorted, the lowest 90% train
and the rest test. The map is stored beside the manifest and is authoritative: a recording keeps the split it was
first given, and only recordings new to the map are placed by their rank among all hashes, so adding recordings
never moves an old one between train and test.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.audio.decode import AudioDecodeError, probe
from whisper_assets.files import read_jsonl, write_json_atomic, write_jsonl_atomic
from whisper_assets.keystrokes.events import TimelineRejected, parse_timeline
from whisper_assets.sources.mirror import STATE as MIRROR_STATE

MANIFEST = "manifest.jsonl"
REJECTIONS = "rejections.jsonl"
SPLIT_MAP = "split_map.json"
TRAIN_SHARE = 0.9
MAX_SECONDS = 30.0  # Whisper's encoder hears 30 s at once


@dataclass(frozen=True)
class KeystrokeManifest:
    rows: list[dict]
    rejections: list[dict]
    split_map: dict[str, str]
    sha256: str  # of the manifest file's bytes

    def split(self, name: str) -> list[dict]:
        return [row for row in self.rows if row["split"] == name]


def name_hash(name: str) -> str:
    return hashlib.blake2s(name.encode("utf-8")).hexdigest()


def assign_splits(names: Iterable[str], stored: dict[str, str]) -> dict[str, str]:
    """The stored map, extended with every new name: lowest TRAIN_SHARE of the sorted hashes train, rest test."""
    every = {*names, *stored}
    ranked = sorted((name_hash(n), n) for n in every)
    cut = math.ceil(TRAIN_SHARE * len(ranked))
    by_rank = {name: ("train" if rank < cut else "test") for rank, (_, name) in enumerate(ranked)}
    return {name: stored.get(name, by_rank[name]) for name in sorted(every)}


def build_manifest(recordings: Path, out_dir: Path, data_root: Path) -> KeystrokeManifest:
    """Read every `<name>.webm` + `<name>.json` pair under `recordings`; write manifest, rejections and split map."""
    rows, rejections = [], []
    for audio in sorted(recordings.glob("*.webm")):
        try:
            rows.append(_row(audio, data_root))
        except (TimelineRejected, AudioDecodeError, OSError) as exc:
            rejections.append({"item": audio.name, "reason": str(exc)})
    for timeline in sorted(recordings.glob("*.json")):
        if timeline.name != MIRROR_STATE and not timeline.with_suffix(".webm").exists():
            rejections.append({"item": timeline.name, "reason": "timeline without a .webm recording"})
    stored = _read_map(out_dir / SPLIT_MAP)
    split_map = assign_splits((row["id"] for row in rows), stored)
    for row in rows:
        row["split"] = split_map[row["id"]]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = write_jsonl_atomic(out_dir / MANIFEST, rows)
    write_jsonl_atomic(out_dir / REJECTIONS, rejections)
    write_json_atomic(out_dir / SPLIT_MAP, {"train_share": TRAIN_SHARE, "splits": split_map}, indent=1)
    return KeystrokeManifest(rows, rejections, split_map, hashlib.sha256(written).hexdigest())


def read_manifest(out_dir: Path) -> KeystrokeManifest:
    path = out_dir / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no keystroke manifest at {path}: materialize keystroke_manifests first")
    rows = read_jsonl(path)
    rejections = read_jsonl(out_dir / REJECTIONS) if (out_dir / REJECTIONS).exists() else []
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return KeystrokeManifest(rows, rejections, _read_map(out_dir / SPLIT_MAP), sha256)


def _row(audio: Path, data_root: Path) -> dict:
    timeline = audio.with_suffix(".json")
    if not timeline.exists():
        raise TimelineRejected("no .json timeline beside the recording")
    duration = probe(audio).duration
    if duration > MAX_SECONDS:
        raise TimelineRejected(
            f"{duration:.1f} s long: the encoder hears at most {MAX_SECONDS:.0f} s at once"
        )
    raw = timeline.read_bytes()
    events = parse_timeline(raw, duration)
    return {
        "id": audio.stem,
        "audio": str(audio.resolve().relative_to(data_root.resolve())),
        "events": [event.as_row() for event in events],
        "duration": round(duration, 3),
        "json_sha256": hashlib.sha256(raw).hexdigest(),
        "audio_sha256": hashlib.sha256(audio.read_bytes()).hexdigest(),
        **_recording_meta(raw),
    }


def _recording_meta(raw: bytes) -> dict:
    """The keyboard and microphone a recorder names, kept for per-keyboard evaluation."""
    document = json.loads(raw)
    if not isinstance(document, dict):
        return {}
    return {k: str(document[k]) for k in ("keyboard", "microphone") if document.get(k) is not None}


def _read_map(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8"))["splits"])
