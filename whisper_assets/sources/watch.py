"""Cheap change detection for upload folders, resumable across sensor ticks.

A folder's fingerprint combines (path, size, mtime) of every file with an order-independent sum, so a scan of
tens of thousands of files can stop when its time is up and continue on the next tick from a small state.
"""

from __future__ import annotations

import hashlib
import os
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

_MODULUS = 1 << 128
_PAGE = 2000


def walk_files(root: Path) -> Iterator[str]:
    """The relative POSIX path of every file under root, in a stable order, skipping hidden files and folders.

    Linked folders are listed (so they can be reported) but never descended into. Paths stay strings: this runs
    on every file of a source at every sensor tick and inventory.
    """
    top = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in linked)
        folder = os.path.relpath(dirpath, top).replace(os.sep, "/")
        prefix = "" if folder == "." else folder + "/"
        for name in sorted([*filenames, *linked]):
            if not name.startswith("."):
                yield prefix + name


@dataclass
class ScanProgress:
    """Where an unfinished scan of one folder stands: small enough for a sensor cursor."""

    source: str
    after: str = ""  # last relative path already counted
    total: str = "0"  # running sum, hex
    files: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def fingerprint_tree(root: Path, progress: ScanProgress, deadline: float) -> str | None:
    """Advance the scan in pages until done (return the fingerprint) or past `deadline` (return None).

    `progress` is updated in place, so a caller that runs out of time stores it and passes it back later.
    """
    names = sorted(walk_files(root)) if root.is_dir() else []
    start = bisect_right(names, progress.after) if progress.after else 0
    total = int(progress.total, 16)
    for page_start in range(start, len(names), _PAGE):
        for rel in names[page_start : page_start + _PAGE]:
            try:
                stat = os.stat(root / rel)
            except FileNotFoundError:
                continue
            digest = hashlib.blake2b(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}".encode(), digest_size=16)
            total = (total + int.from_bytes(digest.digest(), "big")) % _MODULUS
            progress.files += 1
            progress.after = rel
        progress.total = format(total, "x")
        if time.monotonic() > deadline and page_start + _PAGE < len(names):
            return None
    return f"{total:032x}-{progress.files}"
