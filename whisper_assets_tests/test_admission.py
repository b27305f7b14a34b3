"""Admission control on its own: the bounded queue refuses with a Retry-After, a request past its deadline is
answered and frees its worker, and the queue depth is what `/health` reports."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from whisper_assets.serving.admission import Admission, Deadline
from whisper_assets.serving.errors import Overloaded, TimedOut


def _blocking(release: threading.Event):
    def work(_deadline: Deadline) -> str:
        release.wait(10)
        return "done"

    return work


def test_a_full_queue_refuses_at_once_with_a_retry_after():
    async def scenario():
        admission = Admission(workers=1, max_waiting=1, timeout_seconds=30)
        release = threading.Event()
        first = asyncio.create_task(admission.run(_blocking(release)))
        second = asyncio.create_task(admission.run(_blocking(release)))
        await asyncio.sleep(0.1)
        assert admission.depth() == {
            "running": 1,
            "waiting": 1,
            "max_waiting": 1,
            "workers": 1,
            "refused": 0,
            "timed_out": 0,
        }
        assert admission.full  # what the server checks before reading an upload
        started = time.monotonic()
        with pytest.raises(Overloaded) as refused:
            await admission.run(_blocking(release))
        assert time.monotonic() - started < 0.5  # refused without waiting for a slot
        assert int(refused.value.headers["Retry-After"]) >= 1 and refused.value.status == 429
        release.set()
        assert await first == await second == "done"
        assert await admission.run(lambda _: "again") == "again"  # slots come back
        assert not admission.full
        assert admission.depth()["refused"] == 1 and admission.depth()["running"] == 0
        admission.shutdown()

    asyncio.run(scenario())


def test_a_request_past_its_deadline_gets_504_and_its_worker_moves_on():
    windows = []

    def long_transcription(deadline: Deadline) -> str:
        for window in range(1000):  # a long recording: the deadline is checked between windows
            deadline.check()
            windows.append(window)
            time.sleep(0.02)
        return "finished"

    async def scenario():
        admission = Admission(workers=1, max_waiting=2, timeout_seconds=0.3)
        started = time.monotonic()
        running = asyncio.create_task(admission.run(long_transcription))
        queued = asyncio.create_task(admission.run(lambda _: "never"))
        for task in (running, queued):
            with pytest.raises(TimedOut) as timed_out:
                await task
            assert timed_out.value.status == 504
        assert time.monotonic() - started < 1.0  # answered at the deadline, not when the work ends
        await asyncio.sleep(0.2)
        assert len(windows) < 30  # the worker stopped at its next window
        assert await admission.run(lambda _: "next") == "next"
        depth = admission.depth()
        assert depth["timed_out"] == 2 and depth["running"] == depth["waiting"] == 0
        admission.shutdown()

    asyncio.run(scenario())
