"""Find exact and content duplicates within and across sources, and pick one canonical copy of each.

Exact duplicates share file bytes (sha256). Content duplicates decode to the same audio: identical 16 kHz PCM
(lossless re-encodes), or, for lossy re-encodes (mp3, opus, aac, an 8 kHz copy, a gain change), a voiced span of
the same length whose waveform lines up sample by sample with the other's (`waveform_similarity`). Only the pairs
that the landmark index proposes are compared (curation.landmark_index), so the cost grows with the items, not
with their square, and each pair is compared once ever (`PairVerdicts`). Two takes of the same words by the same
voice are different recordings and stay apart. Items merged while their transcripts differ are noted as such.

The canonical copy is chosen deterministically: lossless before lossy, higher sample rate first, then source
and path order. `cluster_items` over every source at once gives the same clusters whatever order sources came
in. Nothing is deleted; moving duplicates aside is a separate, explicit step.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from whisper_assets.audio.decode import AudioDecodeError, decode
from whisper_assets.audio.fingerprint import (
    COMPARE_RATE,
    Landmarks,
    comparable_waveform,
    correlation_size,
    energy,
    landmarks,
    pcm_sha256,
    similarities,
)
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.curation.landmark_index import candidate_pairs
from whisper_assets.curation.landmark_store import LandmarkStore
from whisper_assets.files import write_json_atomic
from whisper_assets.parallel import parallel_map
from whisper_assets.text.normalize import comparable

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
        ("note", pa.string()),
    ]
)
# Voiced spans of two encodes of one recording differ by codec delay and trimming: at most 0.05 s on FSDD.
_DURATION_SLACK_SECONDS = 0.1
_DURATION_SLACK_SHARE = 0.05
SAME_WAVEFORM = 0.93  # re-encodes >= 0.96, different takes by one voice <= 0.89 (bench/dedup_precision.py)
_IDENTITY_VERSION = 3  # bump when identities or the matching rule change: cached verdicts depend on both


@dataclass(frozen=True)
class AudioIdentity:
    """Content identity of one file, cached by its sha256 (a file's bytes fully determine it)."""

    sha256: str
    pcm_sha256: str | None
    landmarks_hex: str | None
    voiced_seconds: float | None
    error: str | None = None

    @property
    def landmarks(self) -> Landmarks | None:
        return None if self.landmarks_hex is None else Landmarks.from_hex(self.landmarks_hex)


@dataclass(frozen=True)
class DedupCandidate:
    id: str
    source: str
    rel_path: str
    sha256: str
    lossless: bool
    sample_rate: int
    identity: AudioIdentity
    path: str = ""  # the file, decoded again only to confirm a content match
    transcript: str | None = None  # comparable form (see text.normalize.comparable)

    @property
    def canonical_rank(self) -> tuple:
        return (not self.lossless, -self.sample_rate, self.source, self.rel_path)

    @classmethod
    def from_inventory(cls, row: dict, identity: AudioIdentity) -> DedupCandidate:
        return cls(
            row["id"],
            row["source"],
            row["rel_path"],
            row["sha256"],
            bool(row["lossless"]),
            row["sample_rate"],
            identity,
            row["abs_path"],
            comparable(row["transcript_raw"]) if row.get("transcript_raw") else None,
        )


def dedup_partition(
    scope: str, own_ids: Collection[str], inventory: Sequence[dict], cache_root: Path, workers: int = 0
) -> list[dict]:
    """Report rows for one partition's readable audio (the items `own_ids`), matched against itself and every
    other partition of every source.

    Identities are computed here for this partition's files only; another partition's files take part once
    their own step has indexed them in the landmark store (`splits` decides over all of them at once), so the
    shards of a source never decode each other's files. Only pairs the landmark index proposes are compared,
    each once ever.
    """
    readable = [r for r in inventory if r["is_audio"] and r["readable"]]
    own = {r["sha256"]: r["abs_path"] for r in readable if r["id"] in own_ids}
    store = open_landmark_store(cache_root, scope)
    identities = indexed_identities(store, {r["sha256"] for r in readable} - own.keys())
    identities |= audio_identities(own, cache_root, workers)
    candidates = [
        DedupCandidate.from_inventory(r, identities[r["sha256"]])
        for r in readable
        if r["sha256"] in identities
    ]
    rows = find_duplicates(candidates, PairVerdicts(cache_root, scope), store)
    return [r for r in rows if r["id"] in own_ids]


def cluster_items(
    inventory: Sequence[dict], cache_root: Path, scope: str = "all", workers: int = 0
) -> dict[str, dict]:
    """Duplicate clusters over every source at once: report row per readable audio item, by id.

    `scope` names the caller (a source's step, the splits), whose file of pair verdicts is kept beside the
    others'; every scope reads them all, so no pair is compared twice.
    """
    readable = [r for r in inventory if r["is_audio"] and r["readable"]]
    store = open_landmark_store(cache_root, scope)
    identities = indexed_identities(store, {r["sha256"] for r in readable})
    identities |= audio_identities(
        {r["sha256"]: r["abs_path"] for r in readable if r["sha256"] not in identities}, cache_root, workers
    )
    candidates = [DedupCandidate.from_inventory(r, identities[r["sha256"]]) for r in readable]
    return {row["id"]: row for row in find_duplicates(candidates, PairVerdicts(cache_root, scope), store)}


class PairVerdicts:
    """Waveform similarities of the pairs already compared, by content (a sha256 pair): whether two files are
    the same recording depends only on their bytes, so a pair is compared once ever.

    Each scope writes its own file (no two writers share one) with the verdicts its last run relied on; every
    scope reads all of them.
    """

    def __init__(self, cache_root: Path | None = None, scope: str = ""):
        self.folder = cache_root / f"verdicts-v{_IDENTITY_VERSION}" if cache_root else None
        self.known: dict[str, float] = {}
        if self.folder is not None:
            for path in sorted(self.folder.glob("*.json")):
                self.known.update(json.loads(path.read_text()))
        self.path = self.folder / f"{scope}.json" if self.folder else None
        self.used: dict[str, float] = {}

    @staticmethod
    def _key(a: str, b: str) -> str:
        return "|".join(sorted((a, b)))

    def get(self, a: str, b: str) -> float | None:
        similarity = self.known.get(self._key(a, b))
        if similarity is not None:
            self.used[self._key(a, b)] = similarity
        return similarity

    def record(self, a: str, b: str, similarity: float) -> None:
        self.known[self._key(a, b)] = self.used[self._key(a, b)] = similarity

    def save(self) -> None:
        if self.path is not None:
            write_json_atomic(self.path, dict(sorted(self.used.items())))


def open_landmark_store(cache_root: Path, scope: str) -> LandmarkStore:
    """The stored landmark index of every file any scope has identified; `scope` names the segments it adds."""
    return LandmarkStore(cache_root / f"landmarks-v{_IDENTITY_VERSION}", scope)


def indexed_identities(store: LandmarkStore, shas: Iterable[str]) -> dict[str, AudioIdentity]:
    """The identities of `shas` that the store holds (without their landmarks: the store has them indexed)."""
    return {
        sha: AudioIdentity(sha, found.pcm_sha256, None, found.voiced_seconds)
        for sha in shas
        if (found := store.indexed.get(sha)) is not None
    }


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
    return cache_root / f"identity-v{_IDENTITY_VERSION}" / sha256[:2] / f"{sha256}.json"


def audio_identities(
    paths_by_sha: dict[str, str], cache_root: Path, workers: int = 0
) -> dict[str, AudioIdentity]:
    """Identity of each file, computed once per content: cached as small JSON files keyed by sha256."""
    found = cached_identities(paths_by_sha, cache_root)
    missing = [(sha, path) for sha, path in paths_by_sha.items() if sha not in found]
    for identity in parallel_map(_compute_identity, missing, workers):
        found[identity.sha256] = identity
        if identity.error is None:  # errors may be transient (file replaced mid-read): retry next time
            write_json_atomic(identity_cache_path(cache_root, identity.sha256), identity.__dict__)
    return found


def cached_identities(shas: Iterable[str], cache_root: Path) -> dict[str, AudioIdentity]:
    """The identities already computed among `shas`."""
    found = {}
    for sha in shas:
        cached = identity_cache_path(cache_root, sha)
        if cached.exists():
            found[sha] = AudioIdentity(**json.loads(cached.read_text()))
    return found


def _compute_identity(job: tuple[str, str]) -> AudioIdentity:
    sha, path = job
    try:
        samples, rate = decode(path)
    except (AudioDecodeError, OSError) as exc:
        return AudioIdentity(sha, None, None, None, error=f"decode failed: {exc}")
    mono = to_mono_16k(samples, rate)
    waveform = comparable_waveform(mono)
    return AudioIdentity(sha, pcm_sha256(mono), landmarks(waveform).to_hex(), len(waveform) / COMPARE_RATE)


def find_duplicates(
    candidates: Sequence[DedupCandidate],
    verdicts: PairVerdicts | None = None,
    store: LandmarkStore | None = None,
) -> list[dict]:
    """One report row per candidate: its cluster, the cluster's canonical item and the kind of duplication.

    Candidate pairs come from `store` (which indexes the candidates it does not hold yet), or without one from
    an index of the candidates' landmarks built in memory."""
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

    verdicts = verdicts or PairVerdicts()
    best_similarity = _match_content(candidates, union, verdicts, store)
    verdicts.save()

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
                    "note": _transcript_note(c, canonical),
                }
            )
    return sorted(rows, key=lambda r: (r["source"], r["rel_path"]))


def _transcript_note(item: DedupCandidate, canonical: DedupCandidate) -> str | None:
    if (
        item is canonical
        or not (item.transcript and canonical.transcript)
        or item.transcript == canonical.transcript
    ):
        return None
    return f"same audio as {canonical.id} but a different transcript: check which one is right"


def _match_content(
    candidates: Sequence[DedupCandidate], union, verdicts: PairVerdicts, store: LandmarkStore | None
) -> dict[int, float]:
    """Union candidates whose voiced spans agree in length and whose waveforms line up (lossy re-encodes).

    Pairs come from the landmark index; a pair decided before (`verdicts`) is not compared again.
    """
    first_of: dict[str, int] = {}  # one entry per content: copies with equal bytes are united already
    for i, c in enumerate(candidates):
        if c.identity.voiced_seconds is not None:
            first_of.setdefault(c.sha256, i)
    if store is None:
        indexed = list(first_of.values())
        items = [(candidates[i].identity.landmarks, candidates[i].identity.voiced_seconds) for i in indexed]
        proposed = [(indexed[a], indexed[b]) for a, b in candidate_pairs(items)]
    else:
        new = [candidates[i] for sha, i in first_of.items() if sha not in store.indexed]
        store.add(
            [(c.sha256, c.identity.pcm_sha256, c.identity.landmarks, c.identity.voiced_seconds) for c in new]
        )
        proposed = [(first_of[a], first_of[b]) for a, b in store.pairs(first_of)]
    best: dict[int, float] = {}

    def decide(i: int, j: int, similarity: float) -> None:
        if similarity >= SAME_WAVEFORM:
            union(i, j)
            for k in (i, j):
                best[k] = max(best.get(k, 0.0), similarity)

    undecided: dict[int, list[int]] = defaultdict(list)
    for i, j in proposed:
        seconds = sorted((candidates[i].identity.voiced_seconds, candidates[j].identity.voiced_seconds))
        if seconds[1] - seconds[0] > _slack(seconds[0]):
            continue
        known = verdicts.get(candidates[i].sha256, candidates[j].sha256)
        if known is None:
            undecided[i].append(j)
        else:
            decide(i, j, known)

    waveforms = _Waveforms(candidates)
    for i, others in undecided.items():
        size = correlation_size(*(len(waveforms.get(k)) for k in (i, *others)))
        values = similarities(
            waveforms.spectrum(i, size),
            waveforms.energy(i),
            np.stack([waveforms.spectrum(j, size) for j in others]),
            np.array([waveforms.energy(j) for j in others]),
            size,
        )
        for j, value in zip(others, values, strict=True):
            similarity = round(float(value), 4)  # as stored: a verdict read back decides the same
            verdicts.record(candidates[i].sha256, candidates[j].sha256, similarity)
            decide(i, j, similarity)
    return best


def _slack(seconds: float) -> float:
    """How far apart two encodes' voiced spans may be in length."""
    return max(_DURATION_SLACK_SECONDS, _DURATION_SLACK_SHARE * seconds)


class _Waveforms:
    """Comparable waveforms and their spectra, computed on first use; the most recent kept within a budget.

    An item is compared with all its proposed partners at once, so each waveform is needed in few places.
    """

    def __init__(self, candidates: Sequence[DedupCandidate], budget_bytes: int = 256 * 2**20):
        self.candidates = candidates
        self.budget = budget_bytes
        self.cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.size = 0

    def get(self, index: int) -> np.ndarray:
        return self._cached((self.candidates[index].sha256,), lambda: self._load(self.candidates[index].path))

    def spectrum(self, index: int, size: int) -> np.ndarray:
        key = (self.candidates[index].sha256, size)
        return self._cached(key, lambda: np.fft.rfft(self.get(index), size))

    def energy(self, index: int) -> float:
        return energy(self.get(index))

    def _cached(self, key: tuple, compute) -> np.ndarray:
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        value = self.cache[key] = compute()
        self.size += value.nbytes
        while self.size > self.budget and len(self.cache) > 4:
            self.size -= self.cache.popitem(last=False)[1].nbytes
        return value

    @staticmethod
    def _load(path: str) -> np.ndarray:
        try:
            return comparable_waveform(to_mono_16k(*decode(path)))
        except (AudioDecodeError, OSError):
            return np.zeros(0, dtype=np.float32)


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
