"""Atomic file writes and JSON-lines files: a reader never sees half a file, and a crash leaves the old one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds, else removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically unless the file already holds exactly `data` (a re-run rewrites nothing, so the file keeps
    the mtime that change checks compare); True if written."""
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    write_bytes_atomic(path, data)
    return True


def write_text_if_changed(path: Path, text: str) -> bool:
    """`write_bytes_if_changed` for UTF-8 text."""
    return write_bytes_if_changed(path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: object, indent: int | None = None) -> None:
    write_text_atomic(path, json.dumps(payload, indent=indent, ensure_ascii=False, default=str))


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """One JSON object per line, UTF-8 (non-ASCII kept as is), newline-terminated."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> bytes:
    """Write rows as JSON lines atomically; return the bytes written (callers digest them)."""
    payload = jsonl_bytes(rows)
    write_bytes_atomic(path, payload)
    return payload


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
