"""Slow end-to-end tests: the real `dagster` CLI and the webserver's GraphQL API."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from whisper_assets.review_app.dagster_client import ACTIVE, TrainingLauncher
from whisper_assets_tests.helpers import free_port

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


@pytest.fixture
def dagster_home(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    return home


def open_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The instance in this DAGSTER_HOME, through the public constructor (which reads the variable)."""
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        return dg.DagsterInstance.get()
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous


def run_env(dagster_home, config):
    return {**os.environ, "DAGSTER_HOME": str(dagster_home), "WHISPER_ASSETS_CONFIG": str(config)}


def test_dagster_cli_materializes_a_source_partition_and_splits(dagster_home, make_settings, write_clip):
    settings = make_settings(sources=[{"name": "cli-src"}])
    for i, text in enumerate(["first clip of speech", "second clip of speech", "third clip of speech"]):
        write_clip(settings.layout.uploads_root / "cli-src" / f"{i}.flac", text)
        (settings.layout.uploads_root / "cli-src" / f"{i}.txt").write_text(text, encoding="utf-8")
    env = run_env(dagster_home, settings.data_root / "whisper_assets.yaml")
    with open_instance(dagster_home) as instance:
        instance.add_dynamic_partitions("dataset_sources", ["cli-src"])

    base = [str(BIN / "dagster"), "asset", "materialize", "-m", "whisper_assets.definitions"]
    select = "inventory,dedup_report,normalized_transcripts,processed_audio,segments"
    for args in ([*base, "--select", select, "--partition", "cli-src"], [*base, "--select", "splits"]):
        done = subprocess.run(args, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    lines = sum(
        len((settings.layout.manifests_root / "splits" / f"{n}.jsonl").read_text().splitlines())
        for n in ("train", "validation", "test")
    )
    assert lines == 3
    with open_instance(dagster_home) as instance:
        records = instance.fetch_materializations(dg.AssetKey("processed_audio"), limit=5).records
        assert [r.partition_key for r in records] == ["cli-src"]


def test_webserver_serves_the_asset_graph_over_graphql(dagster_home, make_settings):
    settings = make_settings()
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(PROJECT / "workspace.yaml"),
        ],
        env=run_env(dagster_home, settings.data_root / "whisper_assets.yaml"),
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so it can be stopped with its children
    )
    try:
        query = b'{"query": "{ assetNodes { assetKey { path } dependencyKeys { path } } }"}'
        deadline, nodes = time.monotonic() + 120, None
        while nodes is None and time.monotonic() < deadline:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=query,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    nodes = json.load(response)["data"]["assetNodes"]
                    if not nodes:  # code location still loading
                        nodes = None
                        time.sleep(1)
            except OSError:
                time.sleep(1)
        assert nodes is not None, "webserver did not answer within 120 s"
        graph = {n["assetKey"]["path"][0]: sorted(d["path"][0] for d in n["dependencyKeys"]) for n in nodes}
        assert graph["splits"] == ["segments", "speakers"]
        assert graph["speakers"] == ["segments"]
        assert graph["segments"] == ["processed_audio"]
        assert graph["processed_audio"] == ["dedup_report", "normalized_transcripts"]

        # The review app's launcher against this real instance: one run however often Start is clicked.
        launcher = TrainingLauncher(f"http://127.0.0.1:{port}/graphql")
        first = launcher.launch({"max_steps": 1})
        second = launcher.launch({"max_steps": 1})
        assert first["run_id"] and second["run_id"] == first["run_id"] and second["already_running"]
        # Without a daemon the run waits in the queue (`make ui` runs one); it is a real run of the right job.
        assert launcher.status()["status"] in ACTIVE
        with open_instance(dagster_home) as instance:
            run = instance.get_run_by_id(first["run_id"])
        assert run.job_name == "train_and_evaluate" and run.tags["whisper_assets/launched_by"] == "review_app"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
