"""Run CPU-bound per-file work on every core, in order, without breaking on one bad file."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_MIN_ITEMS_PER_WORKER = 8  # a spawned worker costs ~1 s of imports: worth it only with enough files


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int = 0) -> Iterator[R]:
    """Yield fn(item) for each item in order, in worker processes when there is enough work.

    `fn` must be a module-level function that handles its own per-item errors (returning a rejection), so one
    corrupt file never fails the batch. Workers are spawned, not forked: the calling process may hold threads
    (Dagster's), and forking a threaded process can deadlock.
    """
    workers = min(workers or default_workers(), max(1, len(items) // _MIN_ITEMS_PER_WORKER))
    if workers <= 1:
        yield from map(fn, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(fn, items, chunksize=max(1, min(32, len(items) // (workers * 8))))
