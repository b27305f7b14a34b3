"""Split manifests: where they live, how they are written, read and digested (one place for all stages)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.files import read_jsonl, write_json_atomic, write_jsonl_atomic

SPLITS = ("train", "validation", "test")
SET_ROLES = ("regression", "replay")  # sources kept whole in their own manifest: <role>/<source>.jsonl
MANIFEST_FIELDS = (
    "id",
    "parent_id",
    "offset",
    "audio",
    "transcript",
    "duration",
    "language",
    "speaker",
    "source",
)
# Fields a row may lack (written by older steps or by hand), with the value a manifest gets then.
OPTIONAL_MANIFEST_FIELDS = {
    "pseudo_label": False,  # the transcript is a model's, not a person's
    "timestamps": None,  # [[start, end, text], ...] phrases relative to the audio start, when aligned
}
PUBLISHED = "_published.json"  # the digests of the manifests `splits` published after its checks passed


class ManifestsNotPublished(RuntimeError):
    """The split manifests on disk are not the ones a passing `splits` run published."""


def split_manifest_path(manifests_root: Path, split: str) -> Path:
    return manifests_root / "splits" / f"{split}.jsonl"


def role_set(role: str, source: str) -> str:
    """The manifest name of a source kept whole in its role's set (a regression or replay set)."""
    if role not in SET_ROLES:
        raise ValueError(f"role {role!r} has no set of its own (one of {', '.join(SET_ROLES)})")
    return f"{role}/{source}"


def staging_folder(manifests_root: Path) -> Path:
    """Where `splits` writes manifests before its blocking checks decide whether to publish them."""
    return manifests_root / "splits" / "staging"


def stage_manifests(manifests_root: Path, by_split: dict[str, Sequence[dict]]) -> dict[str, str]:
    """Write every split's manifest into the staging folder; return their sha256 digests."""
    return {
        split: write_manifest(staging_folder(manifests_root) / f"{split}.jsonl", rows)
        for split, rows in by_split.items()
    }


def publish_staged(manifests_root: Path, digests: dict[str, str]) -> None:
    """Move the staged manifests into place and record their digests: training reads only these."""
    for split in digests:
        target = split_manifest_path(manifests_root, split)
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging_folder(manifests_root) / f"{split}.jsonl").replace(target)
    write_json_atomic(manifests_root / "splits" / PUBLISHED, {"sha256": digests}, indent=1)


def write_manifest(path: Path, rows: Sequence[dict]) -> str:
    """Write one JSONL manifest atomically (manifest fields only); return its sha256."""
    payload = write_jsonl_atomic(
        path,
        (
            {k: row[k] for k in MANIFEST_FIELDS}
            | {k: row.get(k, v) for k, v in OPTIONAL_MANIFEST_FIELDS.items()}
            for row in rows
        ),
    )
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
    """The published train/validation/test manifests with their digests.

    Refused unless each file is exactly what a `splits` run published after its blocking checks passed.
    """
    return _published(manifests_root, SPLITS)


def current_role_manifests(manifests_root: Path, role: str) -> dict[str, ManifestRef]:
    """The published sets of one role (`regression/<source>`, `replay/<source>`), checked like the splits."""
    prefix = role_set(role, "")
    names = [name for name in _published_digests(manifests_root) or {} if name.startswith(prefix)]
    return _published(manifests_root, names)


def training_manifests(manifests_root: Path, replay: bool) -> dict[str, ManifestRef]:
    """The published manifests a training run reads: the splits, and the replay sets when it mixes them in."""
    manifests = current_split_manifests(manifests_root)
    return manifests | current_role_manifests(manifests_root, "replay") if replay else manifests


def training_digests(published: dict[str, str], replay: bool) -> dict[str, str]:
    """Of the published manifests' digests, those a training run reads: the splits, and the replay sets when it
    mixes them in (regression sets are only evaluated: a change there needs no new model)."""
    prefix = role_set("replay", "")
    return {k: v for k, v in published.items() if k in SPLITS or (replay and k.startswith(prefix))}


def _published_digests(manifests_root: Path) -> dict[str, str] | None:
    record = manifests_root / "splits" / PUBLISHED
    return json.loads(record.read_text(encoding="utf-8"))["sha256"] if record.exists() else None


def _published(manifests_root: Path, names: Sequence[str]) -> dict[str, ManifestRef]:
    published = _published_digests(manifests_root)
    if published is None:
        raise ManifestsNotPublished(
            f"no published split manifests under {manifests_root / 'splits'}: materialize `splits` (its checks "
            "must pass)"
        )
    refs = {}
    for name in names:
        path = split_manifest_path(manifests_root, name)
        digest = manifest_digest(path) if path.exists() else None
        if digest != published.get(name):
            raise ManifestsNotPublished(
                f"{path} is not the manifest `splits` published after its checks passed (changed, missing or "
                "left from a failed run): materialize `splits` again"
            )
        refs[name] = ManifestRef(path, digest)
    return refs
