"""Candidate duplicate pairs from an inverted index of landmarks, without comparing every item with every item.

Each item's landmarks (audio.fingerprint.landmarks) are posted once, under (hash, duration band): two encodes of
one recording have voiced spans of about the same length, so an item looks up its hashes in its own band and
the two next to it. Items that share a hash are counted per time offset between them; a pair becomes a
candidate when enough of its landmarks agree on one offset, as in Shazam and audfprint. Hashes posted more
than `BUCKET_CAP` times in two neighbouring bands carry no information and are skipped (keys over the cap are
left out of the index), so a lookup costs the same however large the index grows.

The index is sorted arrays (16 bytes a posting, ~7 KB for a 3 s item), and items are looked up in chunks: all
of a pair's hits come from the lookups of its first item, so a chunk's candidates are final and its hits are
dropped before the next chunk. Memory grows with the index only; time with items x landmarks x bucket size.
Items may number up to 2^28.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
    index = _LandmarkIndex(items)
    counts = np.array([len(landmarks.hashes) for landmarks, _ in items])
    frames = np.array([seconds / LANDMARK_FRAME_SECONDS for _, seconds in items])
    pairs: list[tuple[int, int]] = []
    for first, stop in _chunks(counts):
        pairs.extend(_agreeing(index.hits(items, first, stop), counts, frames))
    return sorted(pairs)


def _key(hashes: np.ndarray, band: int | np.ndarray) -> np.ndarray:
    """(hash, band) keys: one band for all hashes, or one band per hash."""
    return hashes.astype(np.int64) | (np.asarray(band, dtype=np.int64) << 32)


class _LandmarkIndex:
    """Every landmark of every item once, sorted by (hash, band) key, without the stop-listed keys."""

    def __init__(self, items: Sequence[tuple[Landmarks, float]]):
        self.bands = np.array([duration_band(seconds) for _, seconds in items], dtype=np.int64)
        sizes = [len(landmarks.hashes) for landmarks, _ in items]
        keys = np.concatenate(
            [_key(landmarks.hashes, band) for (landmarks, _), band in zip(items, self.bands, strict=True)]
            or [np.zeros(0, np.int64)]
        )
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
        bucket = np.diff(np.r_[starts, len(keys)])
        keep = np.repeat(bucket <= BUCKET_CAP, bucket)
        self.stopped = keys[starts[bucket > BUCKET_CAP]]
        self.keys = keys[keep]
        del keys
        self.item = np.repeat(np.arange(len(items), dtype=np.int32), sizes)[order][keep]
        self.frame = np.concatenate(
            [landmarks.frames.astype(np.int32) for landmarks, _ in items] or [np.zeros(0, np.int32)]
        )[order][keep]

    def hits(self, items: Sequence[tuple[Landmarks, float]], first: int, stop: int) -> np.ndarray:
        """(low, high, offset, frame on low's clock) for every landmark that items first..stop-1 (the low
        items) share with a later item of their own or a neighbouring band.

        A hit between bands y-1 and y (or within y) counts when (hash, y-1) and (hash, y) together hold at most
        BUCKET_CAP postings: an item meets its neighbours' lengths, so the stop-list does too."""
        query = range(first, stop)
        hashes = np.concatenate([items[i][0].hashes for i in query])
        owner = np.repeat(np.arange(first, stop), [len(items[i][0].hashes) for i in query])
        at = np.concatenate([items[i][0].frames for i in query]).astype(np.int64)
        band = self.bands[owner]
        lookups = {lift: self._bucket(_key(hashes, band + lift)) for lift in (-1, 0, 1)}
        below = lookups[-1][1] + lookups[0][1] <= BUCKET_CAP
        above = lookups[0][1] + lookups[1][1] <= BUCKET_CAP
        found = []
        for lift, allowed in ((-1, below), (0, below), (1, above)):
            left, sizes = lookups[lift]
            sizes = np.where(allowed, sizes, 0)
            row = np.repeat(np.arange(len(sizes)), sizes)
            target = left[row] + np.arange(len(row)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            later = self.item[target] > owner[row]
            row, target = row[later], target[later]
            offset = self.frame[target] - at[row]
            near = np.abs(offset) <= MAX_OFFSET_FRAMES
            found.append(np.stack([owner[row], self.item[target], offset, at[row]], axis=1)[near])
        return np.concatenate(found)

    def _bucket(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each key's postings start, and how many there are (more than BUCKET_CAP if stop-listed)."""
        left = np.searchsorted(self.keys, keys, "left")
        sizes = np.searchsorted(self.keys, keys, "right") - left
        # a sorted lookup: np.isin re-sorts the stop-list on every call (~40% slower candidate search)
        at = np.minimum(np.searchsorted(self.stopped, keys), max(len(self.stopped) - 1, 0))
        stopped = self.stopped[at] == keys if len(self.stopped) else np.zeros(len(keys), bool)
        return left, np.where(stopped, BUCKET_CAP + 1, sizes)


def _chunks(counts: np.ndarray) -> Iterator[tuple[int, int]]:
    """Consecutive item ranges of about _CHUNK_POSTINGS landmarks each."""
    first, total = 0, 0
    for stop, count in enumerate(counts, start=1):
        total += int(count)
        if total >= _CHUNK_POSTINGS or stop == len(counts):
            yield first, stop
            first, total = stop, 0


def _agreeing(found: np.ndarray, counts: np.ndarray, frames: np.ndarray) -> list[tuple[int, int]]:
    """Pairs with enough hits on one offset (within +-1 frame: counted in 2-frame bins at two phases), spread
    over most of the shorter item: two utterances that share one piece of audio (a take reused in both) agree
    only along that piece."""
    chosen: set[tuple[int, int]] = set()
    for phase in (0, 1) if len(found) else ():
        binned = (found[:, 2] + phase) // 2 + MAX_OFFSET_FRAMES
        keys = (found[:, 0] << 36) | (found[:, 1] << 8) | binned
        order = np.argsort(keys, kind="stable")
        keys, at = keys[order], found[order, 3]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        hits = np.diff(np.r_[starts, len(keys)])
        span = np.maximum.reduceat(at, starts) - np.minimum.reduceat(at, starts)
        low, high = keys[starts] >> 36, (keys[starts] >> 8) & ((1 << 28) - 1)
        agree = (hits >= np.maximum(MIN_HITS, MIN_SHARE * np.minimum(counts[low], counts[high]))) & (
            span >= MIN_COVERAGE * np.minimum(frames[low], frames[high])
        )
        chosen.update(zip(low[agree].tolist(), high[agree].tolist(), strict=True))
    return sorted(chosen)
