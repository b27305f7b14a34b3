"""Benchmark: how long ingest runs take when the daemon launches them, as a user's drop is processed.

Run by hand (figures go in the notes, never in tests):

    .venv/bin/python bench/ingest_runs.py --files 1000

A temporary Dagster home (the project's dagster.yaml: queued runs, the default run launcher) and a running
`dagster-daemon` on SQLite storage. Then, one after another, waiting until no run is in progress:
1. first run: the `new_uploads` sensor notices the generated upload folder and requests its ingest run;
2. no-change re-run: `dagster job launch` of the same partition (the sensor requests nothing: same fingerprint);
3. one-file drop: a file is added; the sensor requests the run.
For each: the run's own time (RUN_START to its end) and the time from launch (a new process: Python, imports,
code location load) to its end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml
from processing_throughput import OUT, generate

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROOT = OUT / "ingest-runs"


def wait_for_quiet(instance: dg.DagsterInstance, seen: set[str], timeout: float = 600) -> list[dg.DagsterRun]:
    """Wait until a new ingest run exists and no run is queued or in progress; return the new ingest runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        busy = [r for r in runs if not r.is_finished]
        new = [r for r in runs if r.run_id not in seen and r.job_name == "ingest_source"]
        if new and not busy:
            seen.update(r.run_id for r in runs)
            return new
        time.sleep(1)
    raise TimeoutError("no ingest run finished in time")


def describe(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[float, float]:
    stats = instance.get_run_stats(run.run_id)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"run {run.run_id} ended {run.status}")
    return stats.end_time - stats.start_time, stats.end_time - stats.launch_time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each generated clip")
    args = parser.parse_args()
    shutil.rmtree(ROOT, ignore_errors=True)
    uploads = ROOT / "uploads" / "bench"
    generate(uploads, args.files, args.seconds)
    config = ROOT / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump({"data_root": ".", "sources": [{"name": "bench"}]}))
    home = ROOT / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    os.environ.update({"DAGSTER_HOME": str(home), "WHISPER_ASSETS_CONFIG": str(config)})

    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    figures = {}
    try:
        with dg.DagsterInstance.get() as instance:
            seen: set[str] = set()
            [first] = wait_for_quiet(instance, seen)  # the sensor's run for the new folder
            figures["first run"] = describe(instance, first)
            launch = [str(BIN / "dagster"), "job", "launch", "-w", str(PROJECT / "workspace.yaml")]
            tags = json.dumps({"dagster/partition": "bench"})
            subprocess.run([*launch, "-j", "ingest_source", "--tags", tags], check=True, capture_output=True)
            [again] = wait_for_quiet(instance, seen)
            figures["no-change re-run"] = describe(instance, again)
            generate(ROOT / "drop", 1, args.seconds, seed=1)[0].rename(uploads / "dropped.wav")
            (ROOT / "drop" / "clip00000.txt").rename(uploads / "dropped.txt")
            [dropped] = wait_for_quiet(instance, seen)
            figures["one-file drop"] = describe(instance, dropped)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    print(f"{args.files} files of {args.seconds:g} s, daemon-launched ingest runs ({os.cpu_count()} cores):")
    for name, (run_time, from_launch) in figures.items():
        print(f"  {name:18s} run {run_time:6.2f} s   from launch {from_launch:6.2f} s")
    first_run = figures["first run"][0]
    print(
        f"no-change re-run: {100 * figures['no-change re-run'][0] / first_run:.1f}% of the first run's time"
    )


if __name__ == "__main__":
    main()
