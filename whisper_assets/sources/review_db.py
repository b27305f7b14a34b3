"""The review database: a SQLite table of recordings that people correct and approve in a web app.

Only reviewed rows (`is_reviewed = 1`) become training data; each row's id is its stable item id. The platform
reads while the app writes, so connections use WAL mode, a busy timeout and short read transactions; the one
write the platform makes (marking rows as trained) takes the write lock up front with BEGIN IMMEDIATE.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from whisper_assets.audio.process import TARGET_RATE, write_pcm16
from whisper_assets.sources.base import SourceBase
from whisper_assets.sources.mirror import read_state, write_mirror, write_state
from whisper_assets.sources.watch import ScanProgress

TABLE = "s2s_training_data"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transcript TEXT,
    audio_blob BLOB,
    is_reviewed INTEGER DEFAULT 0,
    is_trained INTEGER DEFAULT 0,
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
)
"""
# Written by the platform's `review_priorities` asset, read by the review app: how likely each unreviewed
# entry's transcript is wrong, and what the model heard. `entry_key` ties a row to the entry's content.
PRIORITY_TABLE = "s2s_review_priority"
PRIORITY_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {PRIORITY_TABLE} (
    entry_id INTEGER PRIMARY KEY,
    entry_key TEXT NOT NULL,
    model TEXT NOT NULL,
    hypothesis TEXT,
    score REAL NOT NULL,
    reasons TEXT,
    disagreement REAL,
    logprob REAL,
    word_logprob REAL,
    chars_per_second REAL,
    scored_at DATETIME DEFAULT CURRENT_TIMESTAMP
)
"""
BUSY_TIMEOUT_MS = 10_000
MAX_AUDIO_SECONDS = 600.0  # a blob may inflate to at most this much 16 kHz audio (zlib bombs stop here)


class CorruptBlob(ValueError):
    """An audio blob that is not zlib-compressed 16-bit PCM."""


class ReviewDbSource(SourceBase):
    """Reviewed rows of a review database (SQLite, table s2s_training_data), mirrored into a folder."""

    path_fields: ClassVar[tuple[str, ...]] = ("path",)

    kind: Literal["review_db"] = "review_db"
    path: str = Field(description="The SQLite file the review app writes.")
    max_audio_seconds: float = Field(MAX_AUDIO_SECONDS, gt=0, description="Longer blobs are rejected.")

    def mirror(self, folder: Path) -> dict:
        return asdict(export_reviewed(Path(self.path), folder, self.language, self.max_audio_seconds))

    def fingerprint(self, folder: Path, progress: ScanProgress, deadline: float) -> str | None:
        return fingerprint(Path(self.path)) if Path(self.path).exists() else "missing"

    def mark_trained(self, item_ids: Sequence[str]) -> int | None:
        return mark_trained(Path(self.path), [int(i) for i in item_ids])


@contextmanager
def connect(path: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection in WAL mode with a busy timeout; closed on exit."""
    if readonly and not path.exists():
        raise FileNotFoundError(f"review database {path} does not exist")
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    with closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)) as con:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            con.execute("PRAGMA journal_mode = WAL")
        yield con


def create_database(path: Path) -> Path:
    """Create the review database (schema exactly as the review app expects) if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as con:
        con.execute(SCHEMA)
        con.execute(PRIORITY_SCHEMA)
    return path


@dataclass(frozen=True)
class PendingEntry:
    """An unreviewed entry; `key` changes whenever its transcript or audio does."""

    id: int
    transcript: str
    key: str


def pending_entries(path: Path, only: int | None = None) -> list[PendingEntry]:
    """Every unreviewed entry, or just the one with id `only` if it is unreviewed (no blobs read)."""
    where = "is_reviewed = 0" + ("" if only is None else " AND id = ?")
    with connect(path, readonly=True) as con:
        rows = con.execute(
            f"SELECT id, transcript, length(audio_blob), timestamp FROM {TABLE} WHERE {where} ORDER BY id",
            () if only is None else (only,),
        ).fetchall()
    return [
        PendingEntry(
            row[0], row[1] or "", hashlib.blake2s(json.dumps(row).encode(), digest_size=8).hexdigest()
        )
        for row in rows
    ]


def pending_fingerprint(path: Path) -> str:
    """Changes whenever an unreviewed entry is added, edited, reviewed or deleted (no blobs read)."""
    keys = "".join(f"{e.id}:{e.key};" for e in pending_entries(path))
    return hashlib.blake2s(keys.encode(), digest_size=8).hexdigest()


def entry_audio(path: Path, entry_id: int, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """One entry's decoded samples (CorruptBlob when they cannot be)."""
    with connect(path, readonly=True) as con:
        (blob,) = con.execute(f"SELECT audio_blob FROM {TABLE} WHERE id = ?", (entry_id,)).fetchone()
    return decode_blob(blob, max_seconds)


def priority_keys(path: Path) -> dict[int, tuple[str, str]]:
    """entry id -> (entry key, model) of the priorities already stored."""
    create_database(path)
    with connect(path, readonly=True) as con:
        rows = con.execute(f"SELECT entry_id, entry_key, model FROM {PRIORITY_TABLE}").fetchall()
    return {row_id: (key, model) for row_id, key, model in rows}


def write_priorities(path: Path, rows: Sequence[dict], keep: Iterable[int]) -> None:
    """Store new priorities and drop those of entries no longer pending (reviewed or deleted), in one write."""
    keep = set(keep)
    with connect(path) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            stale = [i for (i,) in con.execute(f"SELECT entry_id FROM {PRIORITY_TABLE}") if i not in keep]
            con.executemany(f"DELETE FROM {PRIORITY_TABLE} WHERE entry_id = ?", [(i,) for i in stale])
            con.executemany(
                f"INSERT OR REPLACE INTO {PRIORITY_TABLE} (entry_id, entry_key, model, hypothesis, score, reasons, "
                "disagreement, logprob, word_logprob, chars_per_second) VALUES (:entry_id, :entry_key, :model, "
                ":hypothesis, :score, :reasons, :disagreement, :logprob, :word_logprob, :chars_per_second)",
                rows,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def encode_blob(samples: np.ndarray) -> bytes:
    """float samples at 16 kHz mono -> zlib-compressed int16 PCM, as the review app stores them."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    return zlib.compress(pcm.tobytes())


def decode_blob(blob: bytes | None, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """zlib-compressed int16 PCM -> float32 samples; CorruptBlob with the reason otherwise.

    Inflation stops at `max_seconds` of audio, so a small blob that inflates to gigabytes costs nothing.
    """
    if not blob:
        raise CorruptBlob("empty audio blob")
    limit = 2 * round(max_seconds * TARGET_RATE)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise CorruptBlob(f"audio blob is not zlib data ({exc})") from exc
    if len(raw) > limit:
        raise CorruptBlob(
            f"audio blob inflates to more than {max_seconds:g} s of 16 kHz audio (the limit; a decompression "
            "bomb or a recording to split)"
        )
    if not inflater.eof:
        raise CorruptBlob("audio blob is not zlib data (incomplete or truncated stream)")
    if len(raw) % 2:
        raise CorruptBlob(f"audio blob holds {len(raw)} bytes: an odd count cannot be 16-bit PCM")
    if not raw:
        raise CorruptBlob("audio blob decompresses to no samples")
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def fingerprint(path: Path) -> str:
    """Changes whenever a reviewed row is added, edited or deleted; reads ids, lengths and transcripts, no blobs."""
    digest = hashlib.blake2b(digest_size=16)
    with connect(path, readonly=True) as con:
        rows = con.execute(
            f"SELECT id, length(audio_blob), transcript, timestamp FROM {TABLE} WHERE is_reviewed = 1 ORDER BY id"
        )
        for row in rows:
            digest.update(json.dumps(row).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ExportStats:
    exported: int
    written: int
    removed: int
    rejected: int


def export_reviewed(
    path: Path, out_dir: Path, language: str, max_seconds: float = MAX_AUDIO_SECONDS
) -> ExportStats:
    """Mirror reviewed rows into a folder source: `<id>.wav` files, a JSONL manifest and recorded rejections.

    Only rows whose audio changed are decoded and written again; files of rows that are gone (deleted or no
    longer reviewed) are removed from the mirror. The database itself is only read.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, str] = read_state(out_dir)
    with connect(path, readonly=True) as con:
        meta = con.execute(
            f"SELECT id, transcript, length(audio_blob), timestamp FROM {TABLE} WHERE is_reviewed = 1 ORDER BY id"
        ).fetchall()
    manifest, rejections, new_state = [], [], {}
    written = 0
    for row_id, transcript, blob_length, timestamp in meta:
        name = f"{row_id}.wav"
        version = f"{blob_length}:{timestamp}"
        if state.get(name) != version or not (out_dir / name).exists():
            with connect(path, readonly=True) as con:  # one short read per blob: writers are not held up
                (blob,) = con.execute(f"SELECT audio_blob FROM {TABLE} WHERE id = ?", (row_id,)).fetchone()
            try:
                write_pcm16(out_dir / name, decode_blob(blob, max_seconds), TARGET_RATE)
            except CorruptBlob as exc:
                (out_dir / name).unlink(missing_ok=True)
                rejections.append({"item": f"row {row_id}", "reason": str(exc)})
                continue
            written += 1
        new_state[name] = version
        manifest.append(
            {
                "id": str(row_id),
                "audio": name,
                "transcript": transcript or "",
                "language": language,
                "provenance": {"review_db": str(path), "row_id": row_id, "timestamp": timestamp},
            }
        )
    removed = 0
    for name in set(state) - set(new_state):
        (out_dir / name).unlink(missing_ok=True)
        removed += 1
    write_mirror(out_dir, manifest, rejections)
    write_state(out_dir, new_state)
    return ExportStats(exported=len(manifest), written=written, removed=removed, rejected=len(rejections))


def mark_trained(path: Path, row_ids: Iterable[int]) -> int:
    """Set is_trained = 1 for exactly these rows, in one write transaction; return how many changed."""
    ids = sorted(set(row_ids))
    if not ids:
        return 0
    with connect(path) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            changed = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                changed += con.execute(
                    f"UPDATE {TABLE} SET is_trained = 1 WHERE is_trained = 0 AND id IN ({marks})", chunk
                ).rowcount
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return changed
