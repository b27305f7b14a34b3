"""Dagster's default run launcher, plus the health check that lets run monitoring see a dead run worker.

The default launcher starts each run worker as a child process of the code server and cannot tell whether it
is still alive, so a worker killed by the OOM killer or `kill -9` leaves its run STARTED forever, holding its
pool slots (a `gpu` slot blocks every later training). This launcher reads the worker's pid from the run's own
"Started process for run" event and checks that process, on the machine that launched it: once it is gone the
monitoring daemon marks the run failed (within `run_monitoring.poll_interval_seconds`), the daemon frees its
slots (`free_slots_after_run_end_seconds`) and run retries start it again, resuming from its checkpoints.
"""

from __future__ import annotations

import socket

import dagster as dg
import psutil
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus

LAUNCH_HOST_TAG = "whisper_assets/launch_host"
_STARTED_PROCESS = "Started process for run"


class LocalRunLauncher(dg.DefaultRunLauncher):
    """Runs in local processes, as the default launcher does, with run-worker health checks."""

    def launch_run(self, context: LaunchRunContext) -> None:
        self._instance.add_run_tags(context.dagster_run.run_id, {LAUNCH_HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        host = run.tags.get(LAUNCH_HOST_TAG)
        if host != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"launched on {host}, not this machine")
        started = run_worker_start(self._instance, run.run_id)
        if started is None:  # not reported yet; a run that never starts is failed by start_timeout_seconds
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not reported its pid yet")
        pid, timestamp = started
        if worker_alive(pid, timestamp):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker process {pid} is gone (killed, out of memory, or the machine restarted)",
        )


def run_worker_start(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's latest worker and when it reported it, from the run's engine events."""
    found = None
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event and (event.message or "").startswith(_STARTED_PROCESS):
            pid = event.engine_event_data.metadata.get("pid")
            if pid is not None:
                found = (int(pid.value), record.timestamp)
    return found


def worker_alive(pid: int, reported_at: float) -> bool:
    """Whether `pid` is still the process that reported itself at `reported_at`: running, not a zombie, and not
    a newer process that reuses the number."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= reported_at + 1
    except psutil.Error:
        return False


def release_run(instance: dg.DagsterInstance, run_id: str) -> tuple[bool, int]:
    """By hand, for a run whose worker is known dead (or a launcher without health checks): mark it failed if it
    is still in progress, and free the pool slots it holds. Returns (marked failed, slots freed)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in this Dagster instance (is DAGSTER_HOME the one the UI uses?)")
    marked = not run.is_finished
    if marked:
        instance.report_run_failed(run, "released by hand: its run worker is gone")
    storage = instance.event_log_storage
    held = sum(
        slot.run_id == run_id
        for pool in storage.get_concurrency_keys()
        for slot in storage.get_concurrency_info(pool).claimed_slots
    )
    storage.free_concurrency_slots_for_run(run_id)
    return marked, held
