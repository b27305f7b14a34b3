"""Candidate duplicate pairs from an inverted index of landmarks, without comparing every item with every item.

Each item's landmarks (audio.fingerprint.landmarks) are posted under (hash, duration band): two encodes of one
recording have voiced spans of about the same length, so only neighbouring bands need to meet, and each item is
posted in its own band and shadowed in the next one. Items that share a hash are counted per time offset
between them; a pair becomes a candidate when enough of its landmarks agree on one offset, as in Shazam and
audfprint. Buckets shared by more than `BUCKET_CAP` items carry no information and are skipped, so the work per
item stays flat as the index grows: candidates cost O(items x landmarks x bucket size). Items may number
up to 2^28.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from whisper_assets.audio.fingerprint import LANDMARK_FRAME_SECONDS, Landmarks

# More items than this under one (hash, band) key: a stop-listed key (measured settings in the README).
BUCKET_CAP = 32
MIN_HITS = 4  # landmarks agreeing on one offset, at least
MIN_SHARE = 0.05  # ... and this share of the smaller item's landmarks
MIN_COVERAGE = 0.3  # ... from the first to the last hit, this share of the shorter item's voiced length
# Voiced spans of two encodes start within a few frames of each other (edge trimming; codec delay): offsets
# further apart than 0.5 s are not a re-encode (the waveform check looks only +-0.25 s around).
MAX_OFFSET_FRAMES = 64
_BAND_RATIO = np.log(1.06)  # band width (2 + s) * 0.058 s: wider than a duplicate's duration slack anywhere


def duration_band(voiced_seconds: float) -> int:
    """Band of a voiced duration: items whose lengths differ by at most the duplicate slack are <= 1 apart."""
    return int(np.log1p(voiced_seconds / 2) / _BAND_RATIO)


def candidate_pairs(items: Sequence[tuple[Landmarks, float]]) -> list[tuple[int, int]]:
    """Pairs (i < j) of item indices whose landmarks agree on one time offset along a good part of their
    length (MIN_HITS, MIN_SHARE, MIN_COVERAGE); `items` are (landmarks, voiced seconds)."""
    keys, item, frame, shadow = _postings(items)
    if not len(keys):
        return []
    order = np.argsort(keys, kind="stable")
    keys, item, frame, shadow = keys[order], item[order], frame[order], shadow[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    pairs = []
    for size in np.unique(sizes[(sizes > 1) & (sizes <= BUCKET_CAP)]):
        rows = starts[sizes == size][:, None] + np.arange(size)[None, :]  # (buckets, size) postings
        a, b = np.triu_indices(size, 1)
        a, b = rows[:, a].ravel(), rows[:, b].ravel()
        keep = (item[a] != item[b]) & ~(shadow[a] & shadow[b])
        a, b = a[keep], b[keep]
        first = item[a] < item[b]
        low, high = np.where(first, item[a], item[b]), np.where(first, item[b], item[a])
        at = np.where(first, frame[a], frame[b])  # on the first item's clock
        offset = np.where(first, frame[b] - frame[a], frame[a] - frame[b])
        near = np.abs(offset) <= MAX_OFFSET_FRAMES
        pairs.append(np.stack([low[near], high[near], offset[near], at[near]], axis=1))
    if not pairs:
        return []
    counts = np.array([len(landmarks.hashes) for landmarks, _ in items])
    frames = np.array([seconds / LANDMARK_FRAME_SECONDS for _, seconds in items])
    return _agreeing(np.concatenate(pairs), counts, frames)


def _postings(items: Sequence[tuple[Landmarks, float]]):
    """Every landmark under its (hash, band) key, and again shadowed under (hash, band + 1)."""
    keys, item, frame, shadow = [], [], [], []
    for index, (landmarks, seconds) in enumerate(items):
        band = np.int64(duration_band(seconds))
        hashes = landmarks.hashes.astype(np.int64)
        for lift in (0, 1):
            keys.append(hashes | ((band + lift) << 32))
            item.append(np.full(len(hashes), index, dtype=np.int64))
            frame.append(landmarks.frames.astype(np.int64))
            shadow.append(np.full(len(hashes), bool(lift)))
    if not keys:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, bool),)
    return tuple(np.concatenate(parts) for parts in (keys, item, frame, shadow))


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
