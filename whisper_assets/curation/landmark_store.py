"""The landmark index of every identified file, kept on disk in segments, so that a run indexes only its new
files and looks them up against the others' segments (memory-mapped) instead of rebuilding one index of the
whole corpus in memory.

A segment holds one batch of new files: its index arrays (curation.landmark_index), their content identity
(sha256, decoded-PCM sha256, voiced seconds) and the candidate pairs its files found when they were looked up
against every segment that existed then (`seen`). So every pair is proposed once, by whichever file came
later. Two runs that added segments at the same time (the shards of a source) did not see each other's:
`pairs` first looks such segments up against each other (once: the result is kept as a link file).

A scope that would hold more than `MERGE_AT` segments merges its own into one (as Lucene merges segments), so a
source fed by many small drops keeps a few segments, and a lookup a few binary searches. A merge writes the
merged segment before it removes the old ones; a reader that listed a segment which is gone by the time it
opens it leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.audio.fingerprint import Landmarks
from whisper_assets.curation.landmark_index import LandmarkIndex, Segments
from whisper_assets.files import write_json_atomic

MERGE_AT = 8  # segments of one scope, at most


@dataclass(frozen=True)
class Indexed:
    """What the store knows of one file without decoding it again."""

    pcm_sha256: str
    voiced_seconds: float


@dataclass(frozen=True, eq=False)  # one segment is one object: its arrays are not compared
class _Segment:
    name: str
    scope: str
    index: LandmarkIndex
    shas: list[str]
    known: dict[str, Indexed]
    seen: frozenset[str]
    pairs: list[tuple[str, str]]


class LandmarkStore:
    """The segments under `folder`; `scope` (the caller: a source's step, the splits) names the ones it adds."""

    def __init__(self, folder: Path, scope: str):
        self.folder = folder
        self.scope = scope
        opened = (self._open(meta.parent) for meta in sorted(folder.glob("*/meta.json")))
        self.segments = [segment for segment in opened if segment is not None]
        self.indexed = {sha: found for s in self.segments for sha, found in s.known.items()}

    def add(self, files: Sequence[tuple[str, str, Landmarks, float]]) -> None:
        """Index files (sha256, pcm sha256, landmarks, voiced seconds) not indexed yet as a new segment, and
        look them up against every segment."""
        files = sorted({f[0]: f for f in files if f[0] not in self.indexed}.values(), key=lambda f: f[0])
        if not files:
            return
        index = LandmarkIndex.build([(landmarks, seconds) for _, _, landmarks, seconds in files])
        shas = [f[0] for f in files]
        looked = Segments([index, *(s.index for s in self.segments)])
        numbered = [*shas, *(sha for s in self.segments for sha in s.shas)]
        pairs = _by_sha(looked.pairs(0, range(len(looked.segments))), numbered)
        known = [Indexed(f[1], f[3]) for f in files]
        seen = {s.name for s in self.segments}
        own = [s for s in self.segments if s.scope == self.scope]
        merging = len(own) + 1 > MERGE_AT
        if merging:
            index = LandmarkIndex.merge([*(s.index for s in own), index])
            shas = [*(sha for s in own for sha in s.shas), *shas]
            known = [*(s.known[sha] for s in own for sha in s.shas), *known]
            pairs = sorted({*map(tuple, pairs), *(pair for s in own for pair in s.pairs)})
            seen = {z.name for z in self.segments if z not in own and all(self._met(a, z) for a in own)}
        self._save(index, shas, known, seen, pairs)
        for old in own if merging else ():
            shutil.rmtree(self.folder / old.name, ignore_errors=True)
            self.segments.remove(old)

    def _save(
        self,
        index: LandmarkIndex,
        shas: list[str],
        known: list[Indexed],
        seen: set[str],
        pairs: Sequence[Sequence[str]],
    ) -> None:
        name = f"{self.scope}-{hashlib.sha256(' '.join(shas).encode()).hexdigest()[:16]}"
        index.save(self.folder / name)
        write_json_atomic(
            self.folder / name / "meta.json",
            {
                "scope": self.scope,
                "shas": shas,
                "pcm_sha256": [k.pcm_sha256 for k in known],
                "voiced_seconds": [k.voiced_seconds for k in known],
                "seen": sorted(seen),
                "pairs": [list(pair) for pair in pairs],
            },
        )
        self.segments.append(self._open(self.folder / name))
        self.indexed |= self.segments[-1].known

    def pairs(self, wanted: Collection[str]) -> list[tuple[str, str]]:
        """Candidate pairs (sha256s, sorted) among `wanted` files, from every segment and catch-up."""
        self._catch_up()
        wanted = set(wanted)
        found = set()
        lists = [s.pairs for s in self.segments]
        lists += [json.loads(p.read_text()) for p in sorted((self.folder / "links").glob("*.json"))]
        for pairs in lists:
            found.update((a, b) for a, b in pairs if a in wanted and b in wanted)
        return sorted(found)

    def _catch_up(self) -> None:
        """Look up against each other the segments that were added at the same time (neither saw the other)."""
        looked = Segments([s.index for s in self.segments])
        numbered = [sha for s in self.segments for sha in s.shas]
        for later, y in enumerate(self.segments):
            for earlier, x in enumerate(self.segments[:later]):
                if not self._met(x, y):
                    pairs = looked.pairs(later, [earlier])
                    write_json_atomic(self._link(x.name, y.name), _by_sha(pairs, numbered))

    def _met(self, x: _Segment, y: _Segment) -> bool:
        """Whether two segments were looked up against each other."""
        return x.name in y.seen or y.name in x.seen or self._link(x.name, y.name).exists()

    def _link(self, a: str, b: str) -> Path:
        return self.folder / "links" / ("+".join(sorted((a, b))) + ".json")

    @staticmethod
    def _open(folder: Path) -> _Segment | None:
        """A segment, or None when a merge removed it since it was listed."""
        try:
            meta = json.loads((folder / "meta.json").read_text())
            index = LandmarkIndex.open(folder)
        except FileNotFoundError:
            return None
        shas = meta["shas"]
        return _Segment(
            folder.name,
            meta["scope"],
            index,
            shas,
            {
                sha: Indexed(pcm, seconds)
                for sha, pcm, seconds in zip(shas, meta["pcm_sha256"], meta["voiced_seconds"], strict=True)
            },
            frozenset(meta["seen"]),
            [tuple(pair) for pair in meta["pairs"]],
        )


def _by_sha(pairs: Sequence[tuple[int, int]], numbered: Sequence[str]) -> list[list[str]]:
    """Pairs of item numbers as sorted pairs of their sha256s."""
    return sorted(sorted((numbered[a], numbered[b])) for a, b in pairs)
