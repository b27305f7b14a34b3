"""Where to cut a long aligned recording: at the widest pauses between words, never inside a word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from whisper_assets.text.timings import Word

PHRASE_PAUSE_SECONDS = 0.5  # a pause this long starts a new phrase (a timestamped segment)


@dataclass(frozen=True)
class Span:
    """Words first..last (inclusive) and the audio [start, end) in seconds that holds them."""

    first: int
    last: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def cut_points(words: Sequence[Word], duration: float, max_seconds: float, pad: float) -> list[Span]:
    """Consecutive spans of at most max_seconds covering every word (a single longer word is its own span).

    Each span ends after the word followed by the widest pause that still fits; its audio reaches `pad` past
    its outer words but never past the middle of the pause to a neighbour, so no span holds part of another's
    word.
    """
    spans: list[Span] = []
    first, start = 0, max(0.0, words[0].start - pad) if words else 0.0
    while first < len(words):
        last = _last_that_fits(words, first, start, max_seconds, pad)
        if last + 1 < len(words):
            last = max(range(first, last + 1), key=lambda k: (_pause_after(words, k), k))
            boundary = (words[last].end + words[last + 1].start) / 2
            end = min(words[last].end + pad, boundary)
            next_start = max(words[last + 1].start - pad, boundary)
        else:
            end, next_start = min(duration, words[last].end + pad), duration
        spans.append(Span(first, last, round(start, 3), min(duration, round(end, 3))))
        first, start = last + 1, next_start
    return spans


def _last_that_fits(words: Sequence[Word], first: int, start: float, max_seconds: float, pad: float) -> int:
    last = first
    while last + 1 < len(words) and words[last + 1].end + pad - start <= max_seconds:
        last += 1
    return last


def _pause_after(words: Sequence[Word], k: int) -> float:
    return words[k + 1].start - words[k].end if k + 1 < len(words) else 0.0


def phrases(words: Sequence[Word], start: float, end: float) -> list[list]:
    """[start, end, text] of the runs of words between pauses of PHRASE_PAUSE_SECONDS or more, in seconds from
    `start`, within [start, end]: the segments a timestamped Whisper transcript of that audio would have."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and word.start - runs[-1][-1].end < PHRASE_PAUSE_SECONDS:
            runs[-1].append(word)
        else:
            runs.append([word])
    length = end - start
    return [
        [
            round(min(max(run[0].start - start, 0.0), length), 2),
            round(min(max(run[-1].end - start, 0.0), length), 2),
            " ".join(w.word for w in run),
        ]
        for run in runs
    ]
