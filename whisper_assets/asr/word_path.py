"""Words placed on frames by their attention and by where the speech is: a segmental alignment with pauses.

Plain DTW over cross-attention maps every frame to some token, so pauses are swallowed by a neighbouring word,
and where the attention cannot tell words apart (the same word said many times in a row) the path drifts by a
word or more. Here each 20 ms frame is either inside one word or in a pause between two words, and the best
path pays for:
- each frame inside word k: minus word k's attention score there when the frame is speech, `silence_cost` when
  it is silence (a word does not stretch over a pause), in proportion for a frame that may be either;
- each frame in a pause: `pause_speech_cost` in proportion to how sure it is that the frame is speech (speech
  must belong to some word);
- each word: `word_cost` (so one stretch of speech is not split among more words than its attention supports).
A word said again right after itself starts only after a pause (a frame at least): attention cannot tell the two
apart, so without a pause between them nothing says where one ends, and one take is split into both.
So the number of words fits the speech that holds them. With `open_end` the path may stop after any word: the
words after it are not in this window (the caller feeds them to the next), which is cheaper than squeezing
them into the window's last speech.
"""

from __future__ import annotations

import numpy as np

# Measured on bench/label_trust.py (tiny.en): pauses must all but forbid words, or attention, which cannot tell
# the tenth "zero" from the eleventh, spreads a run of repeated words over the wrong takes.
SILENCE_COST = 50.0
PAUSE_SPEECH_COST = 50.0
WORD_COST = 10.0

_STAY, _ENTER = (
    0,
    1,
)  # word states: stay in the word, or start it (from the pause before it or the word before)
_FROM_PAUSE, _FROM_WORD = 0, 1


def word_path(
    scores: np.ndarray,
    speech: np.ndarray,
    *,
    open_end: bool = False,
    repeats: np.ndarray | None = None,
    silence_cost: float = SILENCE_COST,
    pause_speech_cost: float = PAUSE_SPEECH_COST,
    word_cost: float = WORD_COST,
) -> list[tuple[int, int]]:
    """[start, end) frames of each placed word, in order: every word, or with `open_end` the first n.

    `scores` is (words, frames), higher where a word is more likely; `speech` is (frames,): how sure it is that
    each frame is speech, from 0 (silence) to 1; `repeats` is (words,): True where a word is the one before it
    said again. More words than frames cannot each have one: they share the
    frames evenly, some with none (such timings fail the segment checks).
    """
    words, frames = scores.shape
    if words > frames:
        edges = np.linspace(0, frames, words + 1).round().astype(int)
        return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    # attention is normalized over words per frame, so some word always scores high, in pauses too: only speech
    # rewards a word
    weight = speech.astype(np.float64)[None, :]
    inside = -scores.astype(np.float64) * weight + silence_cost * (1 - weight)
    pause = pause_speech_cost * weight[0]
    word = np.full(words, np.inf)  # best cost of a path ending now inside word k
    gap = np.full(words + 1, np.inf)  # ... ending now in the pause before word k (gap[words]: after the last)
    word_from = np.zeros(
        (frames, words), dtype=np.int8
    )  # _STAY, or _ENTER from a pause / from the word before
    enter_from = np.zeros((frames, words), dtype=np.int8)
    gap_from = np.zeros((frames, words + 1), dtype=np.int8)  # 0: stayed in the pause, 1: came from the word
    gap[0] = pause[0]
    word[0] = word_cost + inside[0, 0]
    word_from[0, 0] = _ENTER
    no_direct_entry = np.zeros(words, dtype=bool) if repeats is None else np.asarray(repeats, dtype=bool)
    for f in range(1, frames):
        previous_word = np.concatenate(([np.inf], word[:-1]))
        previous_word[no_direct_entry] = np.inf
        entry = np.minimum(gap[:-1], previous_word) + word_cost
        entered_from_word = previous_word < gap[:-1]
        stay = word
        new_word = np.minimum(stay, entry) + inside[:, f]
        word_from[f] = np.where(entry < stay, _ENTER, _STAY)
        enter_from[f] = np.where(entered_from_word, _FROM_WORD, _FROM_PAUSE)
        came = np.concatenate(([np.inf], word))
        gap_from[f] = came < gap
        gap = np.minimum(gap, came) + pause[f]
        word = new_word
    return _trace(word, gap, word_from, enter_from, gap_from, open_end)


def _trace(word, gap, word_from, enter_from, gap_from, open_end: bool) -> list[tuple[int, int]]:
    frames, words = word_from.shape
    if open_end:
        ends = np.concatenate((word, gap[1:]))  # word k, or the pause after word k
        best = int(np.argmin(ends))
        in_word, k = best < words, best % words
    else:
        in_word, k = word[-1] <= gap[-1], words - 1
    bounds: list[tuple[int, int]] = []
    end = frames
    f = frames - 1
    if not in_word:  # walk back through the pause after word k
        while gap_from[f, k + 1] == 0:
            f -= 1
        end = f
        f -= 1
    while k >= 0:
        while word_from[f, k] == _STAY:
            f -= 1
        bounds.append((f, end))
        came_from_word = enter_from[f, k] == _FROM_WORD
        k -= 1
        f -= 1
        if k < 0:
            break
        if came_from_word:
            end = f + 1
        else:
            while gap_from[f, k + 1] == 0:
                f -= 1
            end = f
            f -= 1
    return bounds[::-1]
