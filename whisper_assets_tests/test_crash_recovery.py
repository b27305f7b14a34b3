"""Dead run workers: the launcher's health check, releasing a stuck run by hand, and (slow) the whole path
through the real daemon. A training run whose worker is killed comes back by itself, through the real daemon: run monitoring marks it
failed (the launcher's health check; Dagster's default launcher has none, so the run would stay STARTED), its
`gpu` slot is freed, run retries start it again, and it resumes from its newest checkpoint to the same weights as
a run that was never interrupted."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import torch
import yaml
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from safetensors.torch import load_file

from whisper_assets.cli import main
from whisper_assets.curation.manifests import publish_staged, read_manifest, stage_manifests
from whisper_assets.defs.run_launcher import (
    LAUNCH_HOST_TAG,
    LocalRunLauncher,
    release_run,
    run_worker_start,
    worker_alive,
)
from whisper_assets.training.checkpoints import MARKER
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train
from whisper_assets_tests.training_fixtures import make_items, make_tiny_model

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRAINING = {
    "max_steps": 200,
    "batch_size": 2,
    "learning_rate": 1e-3,
    "eval_every": 1000,
    "save_every": 10,
    "window_seconds": 4.0,
    "generation_max_tokens": 8,
}


def wait_for(condition, seconds: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {seconds:g} s")


def checkpoint_steps(root: Path) -> list[int]:
    """Steps of the complete checkpoints (marker written last): a folder still being written is not one."""
    return sorted(
        int(p.name.split("-")[1])
        for p in root.glob("models/whisper/*/checkpoints/checkpoint-*")
        if (p / MARKER).exists()
    )


@pytest.fixture
def project(tmp_path):
    items = make_items(tmp_path / "data" / "processed")
    splits = {"train": items[:4], "validation": items[4:5], "test": items[5:]}
    publish_staged(tmp_path / "manifests", stage_manifests(tmp_path / "manifests", splits))
    training = {"base_model": str(make_tiny_model(tmp_path / "base-model")), **TRAINING}
    config = tmp_path / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump({"data_root": ".", "training": training}))
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance_settings = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    instance_settings["run_monitoring"] |= {"poll_interval_seconds": 1, "free_slots_after_run_end_seconds": 1}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_settings))
    return config, home


def start_daemon(env: dict, workspace: str) -> subprocess.Popen:
    """`dagster-daemon run` in its own process group: the code server it starts, and the run workers that
    starts, are in that group too."""
    return subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_a_killed_training_run_is_failed_freed_retried_and_resumed(project, tmp_path, monkeypatch):
    """`kill -9` of the whole process group mid-training (daemon, code server, run worker and its step), as the
    OOM killer or a reboot would leave it; then the daemon starts again."""
    config, home = project
    env = {**os.environ, "DAGSTER_HOME": str(home), "WHISPER_ASSETS_CONFIG": str(config)}
    workspace = str(PROJECT / "workspace.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dg.DagsterInstance.get().dispose()  # create the storage before two processes race to migrate it
    daemon = start_daemon(env, workspace)
    try:
        run_id = str(uuid.uuid4())
        launch = [str(BIN / "dagster"), "job", "launch", "-w", workspace, "-j", "train_and_evaluate"]
        launched = subprocess.run(
            [*launch, "-o", "whisper_model", "--run-id", run_id],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert launched.returncode == 0, launched.stderr[-3000:]
        with dg.DagsterInstance.get() as instance:
            wait_for(lambda: [s for s in checkpoint_steps(tmp_path) if s >= 20], 180, "step 20", every=0.05)
            pid, _ = run_worker_start(instance, run_id)
            assert os.getpgid(pid) == daemon.pid
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # nobody left to say
            assert run_id in instance.event_log_storage.get_concurrency_run_ids()  # and it holds the gpu slot

            daemon = start_daemon(env, workspace)
            wait_for(
                lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE, 90, "failure"
            )
            retry = wait_for(
                lambda: instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
                60,
                "a retry run",
            )[0]
            done = wait_for(
                lambda: (
                    instance.get_run_by_id(retry.run_id).is_finished and instance.get_run_by_id(retry.run_id)
                ),
                300,
                "the retry finishing",
            )
            assert done.status == dg.DagsterRunStatus.SUCCESS
            assert run_id not in instance.event_log_storage.get_concurrency_run_ids()
            [record] = instance.fetch_materializations(dg.AssetKey("whisper_model"), limit=1).records
            metadata = record.asset_materialization.metadata
            assert metadata["resumed_from_step"].value >= 20 and metadata["steps"].value == 200
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    settings = yaml.safe_load(config.read_text())
    uninterrupted = train(
        TrainingOptions(**settings["training"]),
        read_manifest(tmp_path / "manifests" / "splits" / "train.jsonl"),
        read_manifest(tmp_path / "manifests" / "splits" / "validation.jsonl"),
        tmp_path / "uninterrupted",
        tmp_path / "features",
        tmp_path / "uninterrupted.jsonl",
    )
    want = load_file(str(uninterrupted.model_dir / "model.safetensors"))
    got = load_file(str(Path(metadata["model_dir"].value) / "model.safetensors"))
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)
    shutil.rmtree(tmp_path / "uninterrupted")


def started_run(instance: dg.DagsterInstance, pid: int, host: str | None = None) -> dg.DagsterRun:
    """A STARTED run whose worker reported `pid`, launched on `host` (this machine by default)."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name="train_and_evaluate",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={LAUNCH_HOST_TAG: host or socket.gethostname()},
        )
    )
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run


def test_the_health_check_tells_a_live_worker_from_a_dead_one():
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    with dg.instance_for_test() as instance:
        launcher = LocalRunLauncher()
        launcher.register_instance(instance)
        alive = launcher.check_run_worker_health(started_run(instance, os.getpid()))
        dead = launcher.check_run_worker_health(started_run(instance, dead_pid))
        elsewhere = launcher.check_run_worker_health(started_run(instance, dead_pid, host="another-machine"))
    assert alive.status == WorkerStatus.RUNNING
    assert dead.status == WorkerStatus.FAILED and f"process {dead_pid} is gone" in dead.msg
    assert elsewhere.status == WorkerStatus.UNKNOWN  # not ours to judge: the default launcher's behaviour
    # A pid reused by a process started after the report is not the worker.
    assert worker_alive(os.getpid(), time.time()) and not worker_alive(os.getpid(), 0.0)


def test_a_stuck_run_is_released_by_hand(capsys):
    with dg.instance_for_test() as instance:
        run = started_run(instance, 999_999)
        storage = instance.event_log_storage
        storage.set_concurrency_slots("gpu", 1)
        assert storage.claim_concurrency_slot("gpu", run.run_id, "whisper_model").is_claimed
        assert release_run(instance, run.run_id) == (True, 1)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert storage.claim_concurrency_slot("gpu", "next-run", "whisper_model").is_claimed
        assert main(["release-run", run.run_id]) == 0  # the CLI, on the instance in DAGSTER_HOME
        assert "already ended; 0 pool slot(s) freed" in capsys.readouterr().out
        assert main(["release-run", "nope"]) == 2
        assert "no run nope in this Dagster instance" in capsys.readouterr().err
