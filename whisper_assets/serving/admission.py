"""Admission control: a bounded queue in front of the transcription workers, and a deadline for every request.

At most `workers` requests run at once and at most `max_waiting` wait for one; a request beyond that is refused
at once (429, with a `Retry-After` from the recent service times) instead of queueing without limit. A request
not answered within `request_timeout_seconds` of its arrival gets 504: one still waiting never runs, and one
running stops at its next decoding window (a worker thread cannot be interrupted mid-window), which frees the
worker for the queue.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from whisper_assets.serving.errors import Overloaded, TimedOut

T = TypeVar("T")
_SERVICE_SAMPLES = 32  # recent service times the Retry-After estimate averages


class Deadline:
    """When a request must be answered by; work checks it between decoding windows."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        """Raise TimedOut once the deadline has passed."""
        if self.remaining() <= 0:
            raise TimedOut(_timeout_message(self.seconds))


class Admission:
    """Runs blocking work on `workers` threads with a bounded queue and a deadline per request."""

    def __init__(self, workers: int, max_waiting: int, timeout_seconds: float) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.timeout_seconds = timeout_seconds
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="transcribe")
        self._lock = threading.Lock()
        self._admitted = 0  # waiting or running
        self._running = 0
        self._service: deque[float] = deque(maxlen=_SERVICE_SAMPLES)
        self.refused = 0
        self.timed_out = 0

    async def run(self, work: Callable[[Deadline], T]) -> T:
        """`work(deadline)` on a worker thread: refused (Overloaded) when the queue is full, TimedOut when it is
        not done by the deadline."""
        with self._lock:
            full = self._admitted >= self.workers + self.max_waiting
            if not full:
                self._admitted += 1
        if full:
            raise self.refuse()
        deadline = Deadline(self.timeout_seconds)
        future = self._executor.submit(self._timed, work, deadline)
        future.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline.remaining())
        except (TimeoutError, TimedOut):  # ours, or the work's own check that raced ahead of it
            future.cancel()  # a request still waiting never runs; a running one stops at its next window
            with self._lock:
                self.timed_out += 1
            raise TimedOut(_timeout_message(deadline.seconds)) from None

    @property
    def full(self) -> bool:
        """Whether a request arriving now would be refused: checked before its upload is read, so a refusal
        costs the client no upload (`run` decides again, for the requests that race past this)."""
        with self._lock:
            return self._admitted >= self.workers + self.max_waiting

    def refuse(self) -> Overloaded:
        """The refusal of a request that found the queue full."""
        with self._lock:
            self.refused += 1
        return Overloaded(self._refusal(), retry_after=self._retry_after())

    def depth(self) -> dict:
        """What `/health` reports of the queue."""
        with self._lock:
            return {
                "running": self._running,
                "waiting": self._admitted - self._running,
                "max_waiting": self.max_waiting,
                "workers": self.workers,
                "refused": self.refused,
                "timed_out": self.timed_out,
            }

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _timed(self, work: Callable[[Deadline], T], deadline: Deadline) -> T:
        deadline.check()  # waited past its deadline: the caller has had its 504 already
        with self._lock:
            self._running += 1
        started = time.monotonic()
        try:
            return work(deadline)
        finally:
            with self._lock:
                self._running -= 1
                self._service.append(time.monotonic() - started)

    def _finished(self, _future: Future) -> None:
        with self._lock:
            self._admitted -= 1

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the recent mean service time."""
        with self._lock:
            mean = sum(self._service) / len(self._service) if self._service else 1.0
        return max(1, math.ceil(mean * (self.max_waiting + 1) / self.workers))

    def _refusal(self) -> str:
        return (
            f"the server is at capacity ({self.workers} transcriptions running, {self.max_waiting} waiting; "
            "serving.workers and serving.max_waiting): retry after the Retry-After header's seconds"
        )


def _timeout_message(seconds: float) -> str:
    return (
        f"the transcription was not done within {seconds:g} s (serving.request_timeout_seconds); it was stopped "
        "to free its worker: send shorter audio, or retry when the server is less busy"
    )
