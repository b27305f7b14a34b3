"""Split manifests: where they live, how they are written, read and digested (one place for all stages)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.files import read_jsonl, write_jsonl_atomic

SPLITS = ("train", "validation", "test")
MANIFEST_FIELDS = ("id", "audio", "transcript", "duration", "language", "speaker", "source")


def split_manifest_path(manifests_root: Path, split: str) -> Path:
    return manifests_root / "splits" / f"{split}.jsonl"


def write_manifest(path: Path, rows: Sequence[dict]) -> str:
    """Write one JSONL manifest atomically (manifest fields only); return its sha256."""
    payload = write_jsonl_atomic(path, ({k: row[k] for k in MANIFEST_FIELDS} for row in rows))
    return hashlib.sha256(payload).hexdigest()


def read_manifest(path: Path) -> list[dict]:
    return read_jsonl(path)


def manifest_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ManifestRef:
    """One split manifest as a stage consumed it: its path and the sha256 of the bytes read."""

    path: Path
    sha256: str


def current_split_manifests(manifests_root: Path) -> dict[str, ManifestRef]:
    """The published train/validation/test manifests with their digests; a clear error when one is missing."""
    refs = {}
    for split in SPLITS:
        path = split_manifest_path(manifests_root, split)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: materialize `splits` first")
        refs[split] = ManifestRef(path, manifest_digest(path))
    return refs
