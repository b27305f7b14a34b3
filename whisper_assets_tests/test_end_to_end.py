"""Slow end-to-end tests: the real `dagster` CLI, the webserver's GraphQL API and the demo command."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from whisper_assets.asr.metrics import score_utterance
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


def test_demo_command_runs_the_whole_graph(tmp_path, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    done = subprocess.run(
        [str(BIN / "whisper-assets"), "demo", "--root", str(tmp_path / "demo")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # What a user reads: no library warnings, progress bars or set-up chatter in either stream.
    noise = [
        line
        for line in (out + done.stderr).splitlines()
        if re.search(r"Warning|\[transformers\]|it/s\]|examples/s\]|INFO mlflow", line)
    ]
    assert not noise, noise[:5]
    for expected in (
        "not a decodable audio file",
        "empty transcript",
        "shorter than 1 s",
        "Long recordings cut into segments",
        "long interview.flac",
        "unsupported file type .pdf",
        "duplicate (content)",
        "duplicate (exact)",
    ):
        assert expected in out, out
    train = (tmp_path / "demo" / "manifests" / "splits" / "train.jsonl").read_text().splitlines()
    languages = {json.loads(line)["language"] for line in train}
    assert languages >= {"en", "sr", "hr"}
    with open_instance(dagster_home) as instance:
        assert instance.get_dynamic_partitions("dataset_sources") == [
            "demo-commands",
            "demo-en",
            "demo-sr",
            "demo-reviews",
            "demo-remote",
            "demo-keys",
        ]
    assert "audio blob is not zlib data" in out and "CTranslate2 export" in out and "MLflow run" in out
    assert "## demo-remote" in (tmp_path / "demo" / "DATA_LICENSES.md").read_text()
    ids = [
        json.loads(line)["id"]
        for name in ("train", "validation", "test")
        for line in (tmp_path / "demo" / "manifests" / "splits" / f"{name}.jsonl").read_text().splitlines()
    ]
    assert not [
        i for i in ids if i.startswith("demo-keys-")
    ]  # typing recordings feed the keystroke model only
    segmented = {i.rsplit("-s", 1)[0] for i in ids if re.search(r"-s\d{3}$", i)}
    assert len(segmented) == 1 and sum(re.search(r"-s\d{3}$", i) is not None for i in ids) >= 5
    [parent] = segmented
    assert (tmp_path / "demo" / "outputs" / parent / "karaoke.lrc").read_text().startswith("[la:en]")
    # Two recipes leave two evaluated runs in MLflow, and the second run's dashboard sits beside the first's.
    dashboards = re.findall(r"Dashboard: (\S+)", out)
    assert len(dashboards) == 2 and Path(dashboards[0]).name == "index.html"
    assert Path(dashboards[1]).name.startswith("vs_run-") and Path(dashboards[1]).exists()
    assert "Both runs in MLflow: http://127.0.0.1:5000/#/compare-runs?" in out
    from mlflow import MlflowClient

    from whisper_assets.tracking import default_tracking_uri

    client = MlflowClient(default_tracking_uri(tmp_path / "demo" / "mlflow"))
    [experiment] = [e for e in client.search_experiments() if e.name == "whisper-assets"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all("test_wer_normalized" in r.data.metrics for r in runs)  # no sweep trials
    [keys] = [e for e in client.search_experiments() if e.name == "whisper-assets-keystrokes"]
    [keys_run] = client.search_runs([keys.experiment_id])
    assert keys_run.info.status == "FINISHED" and "test_token_accuracy" in keys_run.data.metrics
    assert "whisper-assets decode-keys" in out
    assert (tmp_path / "demo" / "manifests" / "dataset_balance.html").exists()
    # The demo learns: its champion (the second, longer run) beats the base on voices it never heard, and the
    # server started after it transcribes a held-out clip through the openai client.
    assert out.count("Champion gate: passed") == 2
    commands = re.findall(r"^\s+(finetuned|base)\s+test:demo-commands\s+\S+\s+(\S+)", out, re.MULTILINE)
    champion, base = (float(wer) for _, wer in commands[-2:])
    assert champion <= 0.25 and base >= 0.9, commands
    said = re.search(r"said:\s+(.+)", out).group(1)
    heard = re.search(r"transcribed:\s+(.+)", out).group(1)
    assert score_utterance(said, heard, "en")["wer"] <= 0.5, (said, heard)
