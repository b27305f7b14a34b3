"""Run per-file work on every core, in order, without breaking on one bad file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int = 0) -> Iterator[R]:
    """Yield fn(item) for each item in order, on `workers` threads (0: one per core).

    Threads, not processes: the per-file work runs in C that releases the GIL (libsndfile, soxr, FFmpeg,
    hashlib, numpy), and a worker process would first pay for its own Python start-up and imports (1-3 s each,
    more than a small drop's work; measured in bench/processing_throughput.py). `fn` must handle its own
    per-item errors (returning a rejection), so one corrupt file never fails the batch.
    """
    workers = min(workers or default_workers(), len(items))
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, items)


def use_all_cores(threads: int = 0) -> int:
    """Let torch use `threads` (0: every core this process may run on), whatever set it lower before (a forked
    step process, a library); returns the thread count."""
    import torch  # here, not at the top: the audio steps that use this module never load torch

    threads = threads or default_workers()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
