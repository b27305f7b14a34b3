"""The review app's data access: entries of the review database, edits with history, trash and restore.

The recordings table keeps exactly the schema the platform reads (`s2s_training_data`); the app adds two tables
beside it: `s2s_trash` (deleted entries, restorable under their id) and `s2s_edit_history` (who, when, before,
after). Every write is one `BEGIN IMMEDIATE` transaction, so the platform's reads and the app's writes coexist.
Edits carry the version they were made against; a stale version is refused with the current entry.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from whisper_assets.audio.levels import levels
from whisper_assets.sources import review_db

TRASH = "s2s_trash"
HISTORY = "s2s_edit_history"
_EXTRA_SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {TRASH} (
        id INTEGER PRIMARY KEY, transcript TEXT, audio_blob BLOB, is_reviewed INTEGER, is_trained INTEGER,
        timestamp DATETIME, deleted_at DATETIME DEFAULT CURRENT_TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id INTEGER NOT NULL, at DATETIME DEFAULT CURRENT_TIMESTAMP,
        who TEXT, action TEXT NOT NULL, before TEXT, after TEXT)""",
]
_SORTS = {
    "id": "id",
    "-id": "id DESC",
    "timestamp": "timestamp, id",
    "-timestamp": "timestamp DESC, id DESC",
    "hardest": "score IS NULL, score DESC, id",  # most likely wrong first; entries never scored last
}
_ENTRIES = f"{review_db.TABLE} LEFT JOIN {review_db.PRIORITY_TABLE} ON entry_id = id"
_COLUMNS = "id, transcript, is_reviewed, is_trained, timestamp, length(audio_blob)"


_CACHED_AUDIO = 8  # decoded entries kept, so seeking and the waveform do not decode a blob again


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The request cannot be carried out in the entry's current state; the message says what to do."""


class StaleVersion(Exception):
    """The entry changed since the client read it."""

    def __init__(self, current: dict):
        super().__init__("the entry was changed by someone else")
        self.current = current


def version_of(transcript: str | None, is_reviewed: int) -> str:
    return hashlib.blake2s(f"{transcript}\0{is_reviewed}".encode(), digest_size=6).hexdigest()


def _entry(row: tuple) -> dict:
    row_id, transcript, is_reviewed, is_trained, timestamp, blob_bytes = row
    return {
        "id": row_id,
        "transcript": transcript or "",
        "is_reviewed": bool(is_reviewed),
        "is_trained": bool(is_trained),
        "timestamp": timestamp,
        "blob_bytes": blob_bytes,
        "version": version_of(transcript, is_reviewed),
    }


def _fetch(con, columns: str, entry_id: int) -> tuple:
    """One entry's columns, or NotFound."""
    row = con.execute(f"SELECT {columns} FROM {review_db.TABLE} WHERE id = ?", (entry_id,)).fetchone()
    if row is None:
        raise NotFound(f"entry {entry_id} does not exist")
    return row


class ReviewStore:
    def __init__(self, path: Path, max_audio_seconds: float = review_db.MAX_AUDIO_SECONDS):
        self.path = review_db.create_database(path)
        self.max_audio_seconds = max_audio_seconds
        self._audio: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._audio_lock = threading.Lock()
        with review_db.connect(self.path) as con:
            for statement in _EXTRA_SCHEMA:
                con.execute(statement)

    @contextmanager
    def _write(self) -> Iterator:
        with review_db.connect(self.path) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def list(
        self,
        *,
        page: int = 1,
        page_size: int = 50,
        reviewed: bool | None = None,
        since: str | None = None,
        until: str | None = None,
        query: str | None = None,
        sort: str = "id",
    ) -> tuple[list[dict], int]:
        where, params = ["1 = 1"], []
        if reviewed is not None:
            where.append("is_reviewed = ?")
            params.append(int(reviewed))
        if since:
            where.append("timestamp >= ?")
            params.append(since)
        if until:
            where.append("timestamp <= ?")
            params.append(until)
        if query:
            where.append("transcript LIKE ? ESCAPE '\\'")
            params.append("%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        clause = " AND ".join(where)
        with review_db.connect(self.path, readonly=True) as con:
            total = con.execute(f"SELECT count(*) FROM {review_db.TABLE} WHERE {clause}", params).fetchone()[
                0
            ]
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM {_ENTRIES} WHERE {clause} ORDER BY {_SORTS[sort]} LIMIT ? OFFSET ?",
                [*params, page_size, (page - 1) * page_size],
            ).fetchall()
        return [_entry(r) for r in rows], total

    def get(self, entry_id: int) -> dict:
        with review_db.connect(self.path, readonly=True) as con:
            return _entry(_fetch(con, _COLUMNS, entry_id))

    def neighbours(self, entry_id: int, order: str = "id") -> dict:
        """Previous and next ids, and the next unreviewed one, for keyboard navigation. In the "hardest" order
        "next" and "next unreviewed" are the highest-scored entry still waiting (the work queue), not the next id."""
        queries = {
            "previous": f"SELECT max(id) FROM {review_db.TABLE} WHERE id < ?",
            "next": f"SELECT min(id) FROM {review_db.TABLE} WHERE id > ?",
            "next_unreviewed": f"SELECT min(id) FROM {review_db.TABLE} WHERE id > ? AND is_reviewed = 0",
        }
        if order == "hardest":
            queries["next"] = queries["next_unreviewed"] = (
                f"SELECT id FROM {_ENTRIES} WHERE id <> ? AND is_reviewed = 0 ORDER BY {_SORTS['hardest']} LIMIT 1"
            )
        with review_db.connect(self.path, readonly=True) as con:
            found = {name: con.execute(sql, (entry_id,)).fetchone() for name, sql in queries.items()}
        return {name: row[0] if row else None for name, row in found.items()}

    def audio(self, entry_id: int) -> np.ndarray:
        """The entry's decoded samples, cached per audio version (blob length and timestamp)."""
        with review_db.connect(self.path, readonly=True) as con:
            key = _fetch(con, "id, length(audio_blob), timestamp", entry_id)
            with self._audio_lock:
                if key in self._audio:
                    self._audio.move_to_end(key)
                    return self._audio[key]
            (blob,) = _fetch(con, "audio_blob", entry_id)
        samples = review_db.decode_blob(blob, self.max_audio_seconds)
        with self._audio_lock:
            self._audio[key] = samples
            while len(self._audio) > _CACHED_AUDIO:
                self._audio.popitem(last=False)
        return samples

    def priority(self, entry_id: int) -> dict | None:
        """What the review order knows of the entry: the model's transcript, the score and its reasons; None when
        it was never scored, or scored before its transcript or audio last changed."""
        current = {e.id: e.key for e in review_db.pending_entries(self.path, only=entry_id)}
        with review_db.connect(self.path, readonly=True) as con:
            row = con.execute(
                f"SELECT entry_key, model, hypothesis, score, reasons FROM {review_db.PRIORITY_TABLE} "
                "WHERE entry_id = ?",
                (entry_id,),
            ).fetchone()
        if row is None or current.get(entry_id) != row[0]:
            return None
        return {"model": row[1], "hypothesis": row[2], "score": row[3], "reasons": json.loads(row[4] or "[]")}

    def details(self, entry_id: int, order: str = "id") -> dict:
        entry = self.get(entry_id)
        try:
            samples = self.audio(entry_id)
            entry |= {
                "duration": round(samples.size / 16_000, 3),
                "levels": levels(samples),
                "audio_error": None,
            }
        except review_db.CorruptBlob as exc:
            entry |= {"duration": None, "levels": None, "audio_error": str(exc)}
        return entry | self.neighbours(entry_id, order) | {"priority": self.priority(entry_id)}

    def update(
        self,
        entry_id: int,
        version: str,
        who: str,
        transcript: str | None = None,
        is_reviewed: bool | None = None,
    ) -> dict:
        with self._write() as con:
            before = _entry(_fetch(con, _COLUMNS, entry_id))
            if before["version"] != version:
                raise StaleVersion(before)
            after_text = before["transcript"] if transcript is None else transcript
            after_reviewed = before["is_reviewed"] if is_reviewed is None else is_reviewed
            if (after_text, after_reviewed) == (before["transcript"], before["is_reviewed"]):
                return before  # nothing changed: no write, no history entry
            con.execute(
                f"UPDATE {review_db.TABLE} SET transcript = ?, is_reviewed = ? WHERE id = ?",
                (after_text, int(after_reviewed), entry_id),
            )
            self._record(
                con, entry_id, who, "edit", before, {"transcript": after_text, "is_reviewed": after_reviewed}
            )
        return self.get(entry_id)

    def delete(self, entry_id: int, who: str) -> None:
        with self._write() as con:
            moved = con.execute(
                f"INSERT INTO {TRASH} (id, transcript, audio_blob, is_reviewed, is_trained, timestamp) "
                f"SELECT id, transcript, audio_blob, is_reviewed, is_trained, timestamp FROM {review_db.TABLE} "
                "WHERE id = ?",
                (entry_id,),
            ).rowcount
            if not moved:
                raise NotFound(f"entry {entry_id} does not exist")
            con.execute(f"DELETE FROM {review_db.TABLE} WHERE id = ?", (entry_id,))
            self._record(con, entry_id, who, "delete", None, None)

    def restore(self, entry_id: int, who: str) -> dict:
        with self._write() as con:
            try:
                restored = con.execute(
                    f"INSERT INTO {review_db.TABLE} (id, transcript, audio_blob, is_reviewed, is_trained, "
                    f"timestamp) SELECT id, transcript, audio_blob, is_reviewed, is_trained, timestamp FROM {TRASH} "
                    "WHERE id = ?",
                    (entry_id,),
                ).rowcount
            except sqlite3.IntegrityError as exc:
                raise Conflict(
                    f"entry {entry_id} cannot be restored: a new entry has its id now. Delete that entry first, "
                    "or keep the trashed one deleted"
                ) from exc
            if not restored:
                raise NotFound(f"entry {entry_id} is not in the trash")
            con.execute(f"DELETE FROM {TRASH} WHERE id = ?", (entry_id,))
            self._record(con, entry_id, who, "restore", None, None)
        return self.get(entry_id)

    def trash(self) -> list[dict]:
        with review_db.connect(self.path, readonly=True) as con:
            rows = con.execute(
                f"SELECT id, transcript, deleted_at FROM {TRASH} ORDER BY deleted_at DESC"
            ).fetchall()
        return [{"id": r[0], "transcript": r[1], "deleted_at": r[2]} for r in rows]

    def history(self, entry_id: int) -> list[dict]:
        with review_db.connect(self.path, readonly=True) as con:
            rows = con.execute(
                f"SELECT at, who, action, before, after FROM {HISTORY} WHERE entry_id = ? ORDER BY seq",
                (entry_id,),
            ).fetchall()
        return [
            {
                "at": a,
                "who": w,
                "action": x,
                "before": json.loads(b or "null"),
                "after": json.loads(c or "null"),
            }
            for a, w, x, b, c in rows
        ]

    def stats(self) -> dict:
        with review_db.connect(self.path, readonly=True) as con:
            total, reviewed, trained, waiting = con.execute(
                f"SELECT count(*), total(is_reviewed), total(is_trained), total(is_reviewed AND NOT is_trained) "
                f"FROM {review_db.TABLE}"
            ).fetchone()
            edits = con.execute(f"SELECT count(*) FROM {HISTORY} WHERE action = 'edit'").fetchone()[0]
        return {
            "total": total,
            "reviewed": int(reviewed),
            "trained": int(trained),
            "reviewed_not_trained": int(waiting),
            "edits": edits,
        }

    @staticmethod
    def _record(con, entry_id: int, who: str, action: str, before: dict | None, after: dict | None) -> None:
        before = None if before is None else {k: before[k] for k in ("transcript", "is_reviewed")}
        con.execute(
            f"INSERT INTO {HISTORY} (entry_id, who, action, before, after) VALUES (?, ?, ?, ?, ?)",
            (entry_id, who, action, json.dumps(before), json.dumps(after)),
        )
