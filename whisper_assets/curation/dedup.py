"""Find exact and content duplicates within and across sources, and pick one canonical copy of each.

Exact duplicates share file bytes (sha256). Content duplicates decode to the same audio: identical 16 kHz PCM
(lossless re-encodes) or a perceptual fingerprint match (lossy re-encodes such as wav -> mp3). The canonical copy
is chosen deterministically: lossless before lossy, higher sample rate first, then source and path order.
Nothing is deleted; moving duplicates aside is a separate, explicit step.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from whisper_assets.audio.decode import AudioDecodeError, decode
from whisper_assets.audio.fingerprint import DUPLICATE_SIMILARITY, Fingerprint, fingerprint, pcm_sha256
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.files import write_json_atomic
from whisper_assets.parallel import parallel_map

DEDUP_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("rel_path", pa.string()),
        ("sha256", pa.string()),
        ("pcm_sha256", pa.string()),
        ("cluster_id", pa.string()),
        ("cluster_size", pa.int32()),
        ("canonical_id", pa.string()),
        ("is_canonical", pa.bool_()),
        ("duplicate_kind", pa.string()),
        ("similarity", pa.float64()),
        ("error", pa.string()),
    ]
)
_DURATION_SLACK_SECONDS = 0.15
_DURATION_SLACK_SHARE = 0.05


@dataclass(frozen=True)
class AudioIdentity:
    """Content identity of one file, cached by its sha256 (a file's bytes fully determine it)."""

    sha256: str
    pcm_sha256: str | None
    fingerprint_hex: str | None
    voiced_seconds: float | None
    error: str | None = None

    @property
    def fingerprint(self) -> Fingerprint | None:
        if self.fingerprint_hex is None or self.voiced_seconds is None:
            return None
        return Fingerprint.from_hex(self.fingerprint_hex, self.voiced_seconds)


@dataclass(frozen=True)
class DedupCandidate:
    id: str
    source: str
    rel_path: str
    sha256: str
    lossless: bool
    sample_rate: int
    identity: AudioIdentity

    @property
    def canonical_rank(self) -> tuple:
        return (not self.lossless, -self.sample_rate, self.source, self.rel_path)


def dedup_source(source: str, inventory: Sequence[dict], cache_root: Path, workers: int = 0) -> list[dict]:
    """Report rows for one source's readable audio, matched against itself and every other source.

    Other sources' files are decoded only when their duration could match one of ours.
    """
    readable = [r for r in inventory if r["is_audio"] and r["readable"]]
    ours = [r for r in readable if r["source"] == source]
    durations = [r["duration"] for r in ours]
    rows = ours + [r for r in readable if r["source"] != source and could_match(r["duration"], durations)]
    identities = audio_identities({r["sha256"]: r["abs_path"] for r in rows}, cache_root, workers)
    candidates = [
        DedupCandidate(
            r["id"],
            r["source"],
            r["rel_path"],
            r["sha256"],
            bool(r["lossless"]),
            r["sample_rate"],
            identities[r["sha256"]],
        )
        for r in rows
    ]
    return [r for r in find_duplicates(candidates) if r["source"] == source]


def move_duplicates(
    report: Sequence[dict], inventory: Sequence[dict], source_root: Path, duplicates_root: Path
) -> list[str]:
    """Move the report's non-canonical files (and sidecars) aside; return where they went."""
    abs_paths = {r["id"]: Path(r["abs_path"]) for r in inventory}
    moved = []
    for row in report:
        path = abs_paths.get(row["id"])
        if not row["is_canonical"] and path is not None and path.exists():
            moved.append(str(move_aside(path, source_root, duplicates_root, row["source"])))
    return moved


def identity_cache_path(cache_root: Path, sha256: str) -> Path:
    return cache_root / "identity" / sha256[:2] / f"{sha256}.json"


def audio_identities(
    paths_by_sha: dict[str, str], cache_root: Path, workers: int = 0
) -> dict[str, AudioIdentity]:
    """Identity of each file, computed once per content: cached as small JSON files keyed by sha256."""
    found: dict[str, AudioIdentity] = {}
    missing = []
    for sha, path in paths_by_sha.items():
        cached = identity_cache_path(cache_root, sha)
        if cached.exists():
            found[sha] = AudioIdentity(**json.loads(cached.read_text()))
        else:
            missing.append((sha, path))
    for identity in parallel_map(_compute_identity, missing, workers):
        found[identity.sha256] = identity
        if identity.error is None:  # errors may be transient (file replaced mid-read): retry next time
            write_json_atomic(identity_cache_path(cache_root, identity.sha256), identity.__dict__)
    return found


def _compute_identity(job: tuple[str, str]) -> AudioIdentity:
    sha, path = job
    try:
        samples, rate = decode(path)
    except (AudioDecodeError, OSError) as exc:
        return AudioIdentity(sha, None, None, None, error=f"decode failed: {exc}")
    mono = to_mono_16k(samples, rate)
    print_ = fingerprint(mono)
    return AudioIdentity(sha, pcm_sha256(mono), print_.to_hex(), print_.voiced_seconds)


def find_duplicates(candidates: Sequence[DedupCandidate]) -> list[dict]:
    """One report row per candidate: its cluster, the cluster's canonical item and the kind of duplication."""
    parent = list(range(len(candidates)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[root(i)] = root(j)

    first_by_key: dict[tuple[str, str], int] = {}
    for i, c in enumerate(candidates):
        for key in (("sha", c.sha256), ("pcm", c.identity.pcm_sha256 or "")):
            if key[1]:
                union(i, first_by_key.setdefault(key, i))

    best_similarity = _match_fingerprints(candidates, union)

    clusters: dict[int, list[int]] = {}
    for i in range(len(candidates)):
        clusters.setdefault(root(i), []).append(i)
    rows = []
    for members in clusters.values():
        canonical = candidates[min(members, key=lambda k: candidates[k].canonical_rank)]
        for k in members:
            c = candidates[k]
            kind = None
            if c is not canonical:
                kind = "exact" if c.sha256 == canonical.sha256 else "content"
            rows.append(
                {
                    "id": c.id,
                    "source": c.source,
                    "rel_path": c.rel_path,
                    "sha256": c.sha256,
                    "pcm_sha256": c.identity.pcm_sha256,
                    "cluster_id": canonical.identity.pcm_sha256 or canonical.sha256,
                    "cluster_size": len(members),
                    "canonical_id": canonical.id,
                    "is_canonical": c is canonical,
                    "duplicate_kind": kind,
                    "similarity": 1.0 if kind == "exact" or c is canonical else best_similarity.get(k, 1.0),
                    "error": c.identity.error,
                }
            )
    return sorted(rows, key=lambda r: (r["source"], r["rel_path"]))


def _match_fingerprints(candidates: Sequence[DedupCandidate], union) -> dict[int, float]:
    """Union candidates whose fingerprints agree; compare only pairs of similar voiced duration."""
    indexed = [(c.identity.fingerprint, i) for i, c in enumerate(candidates)]
    indexed = sorted(((p.voiced_seconds, i, p) for p, i in indexed if p is not None), key=lambda t: t[:2])
    if not indexed:
        return {}
    seconds = np.array([t[0] for t in indexed])
    bits = np.stack([t[2].bits for t in indexed])
    best: dict[int, float] = {}
    for a, (start, i, _) in enumerate(indexed):
        end = int(
            np.searchsorted(
                seconds, start + max(_DURATION_SLACK_SECONDS, _DURATION_SLACK_SHARE * start), "right"
            )
        )
        if end <= a + 1:
            continue
        similarity = (bits[a + 1 : end] == bits[a]).mean(axis=1)
        for offset in np.flatnonzero(similarity >= DUPLICATE_SIMILARITY):
            j, value = indexed[a + 1 + offset][1], float(similarity[offset])
            union(i, j)
            for k in (i, j):
                best[k] = max(best.get(k, 0.0), value)
    return best


def could_match(duration: float, others: Sequence[float]) -> bool:
    """Cheap pre-filter on container durations before decoding another source's file."""
    slack = 0.5 + 0.1 * duration
    return any(abs(duration - d) <= slack for d in others)


def move_aside(abs_path: Path, source_root: Path, duplicates_root: Path, source: str) -> Path:
    """Move a duplicate (and its sidecar transcripts) to uploads/duplicates/<source>/, keeping its sub-path."""
    rel = abs_path.relative_to(source_root)
    target = duplicates_root / source / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(abs_path, target)
    stem = abs_path.with_suffix("")
    for sidecar in (stem.with_name(stem.name + ".txt"), stem.with_name(stem.name + ".norm.txt")):
        if sidecar.exists():
            shutil.move(sidecar, target.parent / sidecar.name)
    return target
