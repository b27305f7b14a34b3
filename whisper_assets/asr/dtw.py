"""Dynamic time warping of a (tokens x frames) cost matrix, vectorized over frames."""

from __future__ import annotations

import numpy as np


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The monotonic path from (0, 0) to the last cell with the least total cost, as (rows, columns).

    Moves: diagonal, down (next row, same column), right (same row, next column); ties are broken as
    OpenAI Whisper's `dtw` does (diagonal, then down, then right). Each row is one numpy scan instead of a Python
    loop over frames: within a row, total[j] = min(a[j], cost[j] + total[j - 1]) with a[j] the best of the
    diagonal and down moves, which unrolls to prefix[j] + running_min(a - prefix) over the prefix sums.
    """
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    total[0, 0] = 0.0
    moves = np.zeros((rows + 1, cols + 1), dtype=np.int8)  # 0 diagonal, 1 down, 2 right
    for i in range(1, rows + 1):
        row = cost[i - 1].astype(np.float64)
        diagonal, down = total[i - 1, :-1], total[i - 1, 1:]
        from_above = np.minimum(diagonal, down) + row
        prefix = np.cumsum(row)
        best = prefix + np.minimum.accumulate(from_above - prefix)
        total[i, 1:] = best
        right = np.empty(cols)
        right[0] = np.inf
        right[1:] = best[:-1]
        moves[i, 1:] = np.where(
            (diagonal < down) & (diagonal < right), 0, np.where((down < diagonal) & (down < right), 1, 2)
        )
    return _backtrack(moves)


def _backtrack(moves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = moves.shape[0] - 1, moves.shape[1] - 1
    moves[0, :] = 2
    moves[:, 0] = 1
    path_rows, path_cols = [], []
    while i > 0 or j > 0:
        path_rows.append(i - 1)
        path_cols.append(j - 1)
        move = moves[i, j]
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    return np.array(path_rows[::-1]), np.array(path_cols[::-1])
