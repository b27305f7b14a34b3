"""The files a source mirror writes beside the audio: the items it mirrored, what it could not, its own state.

Every non-folder kind writes through these functions, atomically, so the inventory never reads half a manifest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from whisper_assets.files import jsonl_bytes, write_bytes_if_changed, write_json_atomic

MANIFEST = "manifest.jsonl"  # {"id", "audio", "transcript", "language", "speaker", "provenance"} per item
REJECTIONS = "_rejected.jsonl"  # {"item", "reason"} for everything that could not be mirrored
STATE = "_state.json"  # the kind's own bookkeeping (versions of what was mirrored)


def write_mirror(folder: Path, items: Iterable[dict], rejections: Iterable[dict]) -> None:
    """Replace the mirror's manifest and its recorded rejections, where they changed: an unchanged mirror keeps
    its files' mtimes, so the inventory sees nothing new."""
    write_bytes_if_changed(folder / MANIFEST, jsonl_bytes(items))
    write_bytes_if_changed(folder / REJECTIONS, jsonl_bytes(rejections))


def read_state(folder: Path) -> dict:
    path = folder / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def write_state(folder: Path, state: dict) -> None:
    write_json_atomic(folder / STATE, state, indent=1)
