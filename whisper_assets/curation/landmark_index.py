"""Candidate duplicate pairs from an inverted index of landmarks, without comparing every item with every item.

Each item's landmarks (audio.fingerprint.landmarks) are posted once, under (hash, duration band): two encodes of
one recording have voiced spans of about the same length, so an item looks up its hashes in its own band and
the two next to it. Items that share a hash are counted per time offset between them; a pair becomes a
candidate when enough of its landmarks agree on one offset, as in Shazam and audfprint. Hashes posted more
than `BUCKET_CAP` times in two neighbouring bands carry no information and are skipped (keys over the cap are
left out of the index), so a lookup costs the same however large the index grows.

An index is sorted arrays (16 bytes a posting, ~7 KB for a 3 s item) that can be saved and memory-mapped, so
a corpus is indexed in segments (one per batch of new items, as in Lucene) and a new batch is looked up
against the segments on disk without loading them: `Segments` sums a key's postings over every segment, so
the stop-list means the same however the items are split. Items are looked up in chunks: all of a pair's hits
come from its querying item's lookups, so a chunk's candidates are final and its hits are dropped before the
next chunk. Memory grows with the queried segment only; time with items x landmarks x bucket size.
Items may number up to 2^28.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from whisper_assets.audio.fingerprint import LANDMARK_FRAME_SECONDS, Landmarks

# More postings than this under one (hash, band) key: a stop-listed key (measured settings in the README).
BUCKET_CAP = 32
MIN_HITS = 4  # landmarks agreeing on one offset, at least
MIN_SHARE = 0.05  # ... and this share of the smaller item's landmarks
MIN_COVERAGE = 0.3  # ... from the first to the last hit, this share of the shorter item's voiced length
# Voiced spans of two encodes start within a few frames of each other (edge trimming; codec delay): offsets
# further apart than 0.5 s are not a re-encode (the waveform check looks only +-0.25 s around).
MAX_OFFSET_FRAMES = 64
_BAND_RATIO = np.log(1.06)  # band width (2 + s) * 0.058 s: wider than a duplicate's duration slack anywhere
_CHUNK_POSTINGS = 1 << 16  # landmarks looked up at once: bounds the hits held in memory


def duration_band(voiced_seconds: float) -> int:
    """Band of a voiced duration: items whose lengths differ by at most the duplicate slack are <= 1 apart."""
    return int(np.log1p(voiced_seconds / 2) / _BAND_RATIO)


def candidate_pairs(items: Sequence[tuple[Landmarks, float]]) -> list[tuple[int, int]]:
    """Pairs (i < j) of item indices whose landmarks agree on one time offset along a good part of their
    length (MIN_HITS, MIN_SHARE, MIN_COVERAGE); `items` are (landmarks, voiced seconds)."""
    return Segments([LandmarkIndex.build(items)]).pairs(0, [0])


def _key(hashes: np.ndarray, band: int) -> np.ndarray:
    return hashes.astype(np.int64) | (np.int64(band) << 32)


@dataclass(frozen=True)
class LandmarkIndex:
    """Every landmark of a set of items once, sorted by (hash, band) key, without the stop-listed keys."""

    keys: np.ndarray  # int64, sorted
    item: np.ndarray  # int32, the posting's item
    frame: np.ndarray  # int32, where its landmark starts
    stopped: np.ndarray  # int64, sorted: keys left out, over the cap ...
    stopped_sizes: np.ndarray  # int64: ... with this many postings
    counts: np.ndarray  # int64, landmarks per item (stop-listed ones too)
    frames: np.ndarray  # float64, voiced length per item in landmark frames

    @classmethod
    def build(cls, items: Sequence[tuple[Landmarks, float]]) -> LandmarkIndex:
        bands = [duration_band(seconds) for _, seconds in items]
        sizes = [len(landmarks.hashes) for landmarks, _ in items]
        keys = np.concatenate(
            [_key(landmarks.hashes, band) for (landmarks, _), band in zip(items, bands, strict=True)]
            or [np.zeros(0, np.int64)]
        )
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts, bucket = _runs(keys)
        keep = np.repeat(bucket <= BUCKET_CAP, bucket)
        return cls(
            keys=keys[keep],
            item=np.repeat(np.arange(len(items), dtype=np.int32), sizes)[order][keep],
            frame=np.concatenate(
                [landmarks.frames.astype(np.int32) for landmarks, _ in items] or [np.zeros(0, np.int32)]
            )[order][keep],
            stopped=keys[starts[bucket > BUCKET_CAP]],
            stopped_sizes=bucket[bucket > BUCKET_CAP].astype(np.int64),
            counts=np.array(sizes, dtype=np.int64),
            frames=np.array([seconds / LANDMARK_FRAME_SECONDS for _, seconds in items], dtype=np.float64),
        )

    @classmethod
    def merge(cls, indexes: Sequence[LandmarkIndex]) -> LandmarkIndex:
        """One index of several indexes' items (numbered in order): the same as building it from all their
        landmarks, since a stop-listed key keeps its count and a key over the cap together is stop-listed."""
        offsets = np.cumsum([0, *(len(x.counts) for x in indexes)])
        keys = np.concatenate([np.asarray(x.keys) for x in indexes])
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        item = np.concatenate([np.asarray(x.item) + o for x, o in zip(indexes, offsets[:-1], strict=True)])[
            order
        ]
        frame = np.concatenate([np.asarray(x.frame) for x in indexes])[order]
        starts, bucket = _runs(keys)
        counted = np.concatenate([keys[starts], *(np.asarray(x.stopped) for x in indexes)])
        sizes = np.concatenate([bucket, *(np.asarray(x.stopped_sizes) for x in indexes)])
        unique, where = np.unique(counted, return_inverse=True)
        total = np.bincount(where, weights=sizes).astype(np.int64)
        keep = np.repeat(total[np.searchsorted(unique, keys[starts])] <= BUCKET_CAP, bucket)
        return cls(
            keys=keys[keep],
            item=item[keep].astype(np.int32),
            frame=frame[keep],
            stopped=unique[total > BUCKET_CAP],
            stopped_sizes=total[total > BUCKET_CAP],
            counts=np.concatenate([np.asarray(x.counts) for x in indexes]),
            frames=np.concatenate([np.asarray(x.frames) for x in indexes]),
        )

    def save(self, folder: Path) -> None:
        """One .npy file per array, written to a temporary folder and renamed into place."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}")
        partial.mkdir()
        for field in fields(self):
            np.save(partial / f"{field.name}.npy", getattr(self, field.name))
        try:
            partial.rename(folder)
        except OSError:  # the same segment was saved meanwhile: its content is the same
            shutil.rmtree(partial)

    @classmethod
    def open(cls, folder: Path) -> LandmarkIndex:
        """A saved index, memory-mapped: a lookup reads the few pages it touches."""
        return cls(**{f.name: np.load(folder / f"{f.name}.npy", mmap_mode="r") for f in fields(cls)})

    def sizes(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each key's postings start, and how many it has (stop-listed ones counted too)."""
        left = np.searchsorted(self.keys, keys, "left")
        sizes = np.searchsorted(self.keys, keys, "right") - left
        if len(self.stopped):
            # a sorted lookup: np.isin re-sorts the stop-list on every call (~40% slower candidate search)
            at = np.minimum(np.searchsorted(self.stopped, keys), len(self.stopped) - 1)
            sizes = np.where(self.stopped[at] == keys, self.stopped_sizes[at], sizes)
        return left, sizes

    def queries(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """This index's own postings as lookups (key, item, frame), by item, in chunks of ~_CHUNK_POSTINGS.

        A landmark left out by the stop-list would find nothing (its key is over the cap here already)."""
        keys, item, frame = np.asarray(self.keys), np.asarray(self.item), np.asarray(self.frame)
        order = np.argsort(item, kind="stable")
        ends = np.searchsorted(
            item[order], np.arange(1, len(self.counts) + 1), "left"
        )  # each item's last + 1
        first = 0
        while first < len(order):
            stop = int(ends[min(np.searchsorted(ends, first + _CHUNK_POSTINGS), len(ends) - 1)])
            chunk = order[first:stop]
            yield keys[chunk], item[chunk], frame[chunk]
            first = stop


class Segments:
    """Several indexes looked up as one: a key's bucket is its postings in every segment, and items are
    numbered across segments (segment k's items follow segment k-1's)."""

    def __init__(self, segments: Sequence[LandmarkIndex]):
        self.segments = list(segments)
        self.offsets = np.cumsum([0, *(len(s.counts) for s in self.segments)])
        self.counts = np.concatenate([s.counts for s in self.segments] or [np.zeros(0, np.int64)])
        self.frames = np.concatenate([s.frames for s in self.segments] or [np.zeros(0)])

    def pairs(self, query: int, targets: Iterable[int]) -> list[tuple[int, int]]:
        """Candidate pairs (i < j, numbered across segments) between segment `query`'s items and the items of
        `targets`; within the query segment itself, each pair once."""
        targets = sorted(set(targets))
        found: set[tuple[int, int]] = set()
        for keys, item, frame in self.segments[query].queries():
            hits = self._hits(query, targets, keys, item, frame)
            found.update(_agreeing(hits, self.counts, self.frames))
        return sorted(found)

    def _hits(
        self, query: int, targets: list[int], keys: np.ndarray, item: np.ndarray, frame: np.ndarray
    ) -> np.ndarray:
        """(querying item, other item, offset, frame on the querying item's clock) for every landmark the
        query shares with an item of `targets` in its own or a neighbouring band.

        A hit between bands y-1 and y (or within y) counts when (hash, y-1) and (hash, y) together hold at most
        BUCKET_CAP postings over every segment: an item meets its neighbours' lengths, so the stop-list does
        too."""
        owner = item.astype(np.int64) + self.offsets[query]
        at = frame.astype(np.int64)
        wanted = {lift: keys + (np.int64(lift) << 32) for lift in (-1, 0, 1)}
        looked = {(k, lift): self.segments[k].sizes(wanted[lift]) for k in targets for lift in wanted}
        total = {lift: np.zeros(len(keys), np.int64) for lift in wanted}
        for k, segment in enumerate(self.segments):
            for lift in wanted:
                total[lift] += looked[k, lift][1] if k in targets else segment.sizes(wanted[lift])[1]
        below = total[-1] + total[0] <= BUCKET_CAP
        above = total[0] + total[1] <= BUCKET_CAP
        found = [np.zeros((0, 4), np.int64)]
        for k in targets:
            segment = self.segments[k]
            for lift, allowed in ((-1, below), (0, below), (1, above)):
                left, sizes = looked[k, lift]
                sizes = np.where(allowed, sizes, 0)
                row = np.repeat(np.arange(len(sizes)), sizes)
                target = left[row] + np.arange(len(row)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
                other = np.asarray(segment.item)[target].astype(np.int64) + self.offsets[k]
                keep = other > owner[row] if k == query else np.ones(len(row), bool)
                row, target, other = row[keep], target[keep], other[keep]
                offset = np.asarray(segment.frame)[target] - at[row]
                near = np.abs(offset) <= MAX_OFFSET_FRAMES
                found.append(np.stack([owner[row], other, offset, at[row]], axis=1)[near])
        return np.concatenate(found)


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of equal sorted keys starts, and its length."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return starts, np.diff(np.r_[starts, len(keys)])


def _agreeing(found: np.ndarray, counts: np.ndarray, frames: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i < j) with enough hits on one offset (within +-1 frame: counted in 2-frame bins at two phases),
    spread over most of the shorter item: two utterances that share one piece of audio (a take reused in both)
    agree only along that piece."""
    chosen: set[tuple[int, int]] = set()
    for phase in (0, 1) if len(found) else ():
        binned = (found[:, 2] + phase) // 2 + MAX_OFFSET_FRAMES
        keys = (found[:, 0] << 36) | (found[:, 1] << 8) | binned
        order = np.argsort(keys, kind="stable")
        keys, at = keys[order], found[order, 3]
        starts, hits = _runs(keys)
        span = np.maximum.reduceat(at, starts) - np.minimum.reduceat(at, starts)
        first, second = keys[starts] >> 36, (keys[starts] >> 8) & ((1 << 28) - 1)
        agree = (hits >= np.maximum(MIN_HITS, MIN_SHARE * np.minimum(counts[first], counts[second]))) & (
            span >= MIN_COVERAGE * np.minimum(frames[first], frames[second])
        )
        chosen.update(
            (min(a, b), max(a, b)) for a, b in zip(first[agree].tolist(), second[agree].tolist(), strict=True)
        )
    return sorted(chosen)
