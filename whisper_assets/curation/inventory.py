"""Inventory: one row per file of a source, with what the audio is and why it cannot be used, if so."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from whisper_assets.audio.decode import AudioDecodeError, probe
from whisper_assets.audio.fingerprint import file_sha256
from whisper_assets.parallel import parallel_map
from whisper_assets.partition_keys import SourcePartition
from whisper_assets.sources.base import SourceBase
from whisper_assets.sources.folder import FolderEntry, TreeFile, scan_folder

INVENTORY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("rel_path", pa.string()),
        ("abs_path", pa.string()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("sha256", pa.string()),
        ("duration", pa.float64()),
        ("sample_rate", pa.int32()),
        ("channels", pa.int32()),
        ("codec", pa.string()),
        ("container", pa.string()),
        ("lossless", pa.bool_()),
        ("is_audio", pa.bool_()),
        ("transcript_present", pa.bool_()),
        ("transcript_raw", pa.string()),
        ("transcript_origin", pa.string()),
        ("transcript_encoding", pa.string()),
        ("timings", pa.string()),
        ("language", pa.string()),
        ("speaker", pa.string()),
        ("readable", pa.bool_()),
        ("audio_error", pa.string()),
        ("rejection_reason", pa.string()),
        ("provenance", pa.string()),
    ]
)
# Fields read from the audio bytes: reused while (path, size, mtime) are unchanged.
_AUDIO_FIELDS = (
    "sha256",
    "duration",
    "sample_rate",
    "channels",
    "codec",
    "container",
    "lossless",
    "readable",
    "audio_error",
)


def item_id(source: str, rel_path: str) -> str:
    """Stable id of a file in a source: survives re-runs and other files coming and going."""
    return f"{source}-{hashlib.blake2s(rel_path.encode(), digest_size=6).hexdigest()}"


def ingest_digest(tree: str, settings: str, overrides: bytes) -> str:
    """What a partition's ingest starts from: its folder's `tree_signature` (path, size and mtime of every file,
    which the inventory's audio cache trusts too), the settings (as JSON), the speaker overrides a person wrote
    and the package's code. Two runs with the same digest produce the same outputs."""
    payload = json.dumps({"tree": tree, "settings": settings, "code": _code_digest()}, sort_keys=True)
    return hashlib.sha256(payload.encode() + b"\0" + overrides).hexdigest()


@functools.cache
def _code_digest() -> str:
    """The package's Python sources (a new release or a local edit changes it)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def mark_trained(sources: Sequence[SourceBase], items: Sequence[dict]) -> dict[str, int]:
    """Tell each source's origin which of its items a model trained on; counts per source that records it."""
    keys: dict[str, dict[str, None]] = defaultdict(dict)  # ordered sets
    for item in items:  # a segment marks the recording it was cut from, once
        keys[item["source"]][item.get("parent_id", item["id"]).removeprefix(f"{item['source']}-")] = None
    marked = {}
    for source in sources:
        if (count := source.mark_trained(list(keys.get(source.name, {})))) is not None:
            marked[source.name] = count
    return marked


@dataclass(frozen=True)
class InventoryResult:
    rows: list[dict]
    probed: int
    reused: int

    @property
    def audio(self) -> list[dict]:
        return [r for r in self.rows if r["is_audio"]]

    @property
    def hours(self) -> float:
        return sum(r["duration"] or 0 for r in self.audio if r["readable"]) / 3600


def take_inventory(
    source: SourceBase,
    folder: Path,
    previous: list[dict],
    workers: int = 0,
    part: SourcePartition | None = None,
    listed: Sequence[TreeFile] | None = None,
) -> InventoryResult:
    """Describe every file of the source's (mirrored) folder, of the partition `part` when it is sharded
    (`listed`: the folder's `list_tree`, when the caller has it already)."""
    declared = {"source": source.name, "kind": source.kind, "license": source.license}
    return build_inventory(
        source.name,
        folder,
        source.language,
        previous,
        workers,
        {**declared, "provenance": source.provenance},
        source.link_roots(),
        part.holds if part else None,
        listed,
    )


def build_inventory(
    source: str,
    folder: Path,
    language: str,
    previous: list[dict],
    workers: int = 0,
    provenance: dict | None = None,
    link_roots: Sequence[Path] = (),
    holds: Callable[[str], bool] | None = None,
    listed: Sequence[TreeFile] | None = None,
) -> InventoryResult:
    """Scan `folder` and describe every file (`holds`: only those whose path it accepts); audio unchanged since
    `previous` is not read again."""
    entries = scan_folder(folder, language, link_roots, listed)
    cache = {(r["rel_path"], r["bytes"], r["mtime_ns"]): r for r in previous if r.get("is_audio")}
    to_probe = [
        e
        for e in entries
        if e.is_audio
        and (e.rel_path, e.size, e.mtime_ns) not in cache
        and (holds is None or holds(e.rel_path))
    ]
    probed = dict(
        zip(
            (e.rel_path for e in to_probe),
            parallel_map(_read_audio_fields, [str(folder / e.rel_path) for e in to_probe], workers),
            strict=True,
        )
    )
    rows = []
    seen_keys: set[str] = set()
    for entry in entries:
        if entry.item_key in seen_keys:  # a manifest id used twice: the path keeps the ids unique
            entry.item_key = None
        seen_keys.add(entry.item_key or "")
        if holds is not None and not holds(entry.rel_path):
            continue
        if entry.is_audio:
            cached = cache.get((entry.rel_path, entry.size, entry.mtime_ns))
            audio = {k: cached[k] for k in _AUDIO_FIELDS} if cached else probed[entry.rel_path]
        else:
            audio = {"readable": False}
        rows.append(_row(source, folder, language, entry, audio, provenance or {}))
    return InventoryResult(rows=rows, probed=len(to_probe), reused=len(rows) - len(to_probe))


def _read_audio_fields(path: str) -> dict:
    """Probe one file (module-level so worker processes can run it). Never raises for bad audio."""
    fields: dict = {"sha256": file_sha256(path)}
    try:
        info = probe(path)
    except AudioDecodeError as exc:
        return fields | {"readable": False, "audio_error": str(exc)}
    return fields | {
        "duration": info.duration,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "codec": info.codec,
        "container": info.container,
        "lossless": info.lossless,
        "readable": True,
        "audio_error": None,
    }


def _row(source: str, folder: Path, language: str, entry: FolderEntry, audio: dict, provenance: dict) -> dict:
    reason = audio.get("audio_error") or entry.problem
    return {
        "id": f"{source}-{entry.item_key}" if entry.item_key else item_id(source, entry.rel_path),
        "source": source,
        "rel_path": entry.rel_path,
        "abs_path": str(folder / entry.rel_path.split("#", 1)[0]),
        "bytes": entry.size,
        "mtime_ns": entry.mtime_ns,
        "is_audio": entry.is_audio,
        "transcript_present": entry.transcript is not None,
        "transcript_raw": entry.transcript,
        "transcript_origin": entry.transcript_origin,
        "transcript_encoding": entry.transcript_encoding,
        "timings": entry.timings,
        "language": entry.language or language,
        "speaker": entry.speaker,
        **{k: audio.get(k) for k in _AUDIO_FIELDS},
        "rejection_reason": reason,
        "provenance": _provenance(folder, entry, provenance),
    }


def _provenance(folder: Path, entry: FolderEntry, source_level: dict) -> str:
    """Per-item provenance: what the source declares, the file, and what the item's manifest recorded."""
    modified = datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC).isoformat(timespec="seconds")
    own = json.loads(entry.provenance) if entry.provenance else {}
    return json.dumps(
        {**source_level, "path": str(folder / entry.rel_path), "file_modified": modified, **own},
        ensure_ascii=False,
    )
