"""The embedded demo, run once for this module: what it prints and leaves behind, then the README's first steps
after it in headless Chromium (Dagster UI, MLflow, the evaluation dashboard, the review page, the server)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from whisper_assets.asr.metrics import score_utterance
from whisper_assets.sources import review_db
from whisper_assets_tests.helpers import ARTIFACTS, NEEDS_BROWSER, free_port, wait_for
from whisper_assets_tests.test_end_to_end import open_instance

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCREENSHOTS = ARTIFACTS / "walkthrough"
pytestmark = pytest.mark.slow
# MLflow's own page asks its server for the signed-in user, which exists only with MLflow's auth app: a 404
# the page handles. Every other console error fails the walkthrough.
KNOWN_CONSOLE_ERRORS = re.compile(r"/ajax-api/2\.0/mlflow/users/current - Failed to load resource: .* 404")


@dataclass(frozen=True)
class DemoRun:
    root: Path
    home: Path  # DAGSTER_HOME
    stdout: str
    stderr: str

    @property
    def config(self) -> Path:
        return self.root / "whisper_assets.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoRun:
    workdir = tmp_path_factory.mktemp("demo-run")
    home = workdir / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    done = subprocess.run(
        [str(BIN / "whisper-assets"), "demo", "--root", str(workdir / "demo")],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return DemoRun(workdir / "demo", home, done.stdout, done.stderr)


def test_demo_command_runs_the_whole_graph(demo):
    out = demo.stdout
    # What a user reads: no library warnings, progress bars or set-up chatter in either stream.
    noise = [
        line
        for line in (out + demo.stderr).splitlines()
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
    train = (demo.root / "manifests" / "splits" / "train.jsonl").read_text().splitlines()
    languages = {json.loads(line)["language"] for line in train}
    assert languages >= {"en", "sr", "hr"}
    with open_instance(demo.home) as instance:
        assert instance.get_dynamic_partitions("dataset_sources") == [
            "demo-commands",
            "demo-en",
            "demo-sr",
            "demo-reviews",
            "demo-remote",
            "demo-keys",
        ]
    assert "audio blob is not zlib data" in out and "CTranslate2 export" in out and "MLflow run" in out
    assert "## demo-remote" in (demo.root / "DATA_LICENSES.md").read_text()
    ids = [
        json.loads(line)["id"]
        for name in ("train", "validation", "test")
        for line in (demo.root / "manifests" / "splits" / f"{name}.jsonl").read_text().splitlines()
    ]
    assert not [
        i for i in ids if i.startswith("demo-keys-")
    ]  # typing recordings feed the keystroke model only
    segmented = {i.rsplit("-s", 1)[0] for i in ids if re.search(r"-s\d{3}$", i)}
    assert len(segmented) == 1 and sum(re.search(r"-s\d{3}$", i) is not None for i in ids) >= 5
    [parent] = segmented
    assert (demo.root / "outputs" / parent / "karaoke.lrc").read_text().startswith("[la:en]")
    # Two recipes leave two evaluated runs in MLflow, and the second run's dashboard sits beside the first's.
    dashboards = re.findall(r"Dashboard: (\S+)", out)
    assert len(dashboards) == 2 and Path(dashboards[0]).name == "index.html"
    assert Path(dashboards[1]).name.startswith("vs_run-") and Path(dashboards[1]).exists()
    assert "Both runs in MLflow: http://127.0.0.1:5000/#/compare-runs?" in out
    from mlflow import MlflowClient

    from whisper_assets.tracking import default_tracking_uri

    client = MlflowClient(default_tracking_uri(demo.root / "mlflow"))
    [experiment] = [e for e in client.search_experiments() if e.name == "whisper-assets"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all("test_wer_normalized" in r.data.metrics for r in runs)  # no sweep trials
    [keys] = [e for e in client.search_experiments() if e.name == "whisper-assets-keystrokes"]
    [keys_run] = client.search_runs([keys.experiment_id])
    assert keys_run.info.status == "FINISHED" and "test_token_accuracy" in keys_run.data.metrics
    assert "whisper-assets decode-keys" in out
    assert (demo.root / "manifests" / "dataset_balance.html").exists()
    # The demo learns: its champion (the second, longer run) beats the base on voices it never heard, and the
    # server started after it transcribes a held-out clip through the openai client.
    assert out.count("Champion gate: passed") == 2
    commands = re.findall(r"^\s+(finetuned|base)\s+test:demo-commands\s+\S+\s+(\S+)", out, re.MULTILINE)
    champion, base = (float(wer) for _, wer in commands[-2:])
    assert champion <= 0.25 and base >= 0.9, commands
    said = re.search(r"said:\s+(.+)", out).group(1)
    heard = re.search(r"transcribed:\s+(.+)", out).group(1)
    assert score_utterance(said, heard, "en")["wer"] <= 0.5, (said, heard)


@contextmanager
def started(command: list[str], env: dict, ready_url: str, timeout: float = 120) -> Iterator[None]:
    """A server process as a user starts it (its own process group), ready when `ready_url` answers 200."""
    process = subprocess.Popen(
        command,
        env=env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: process.poll() is None and _answers(ready_url), timeout)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["data"]


def _graph_loaded(port: int) -> bool:
    """The code location has loaded: the webserver lists its assets."""
    try:
        return bool(_graphql(port, "{ assetNodes { id } }")["assetNodes"])
    except OSError:
        return False


class Walk:
    """The browser on its walk: each page is screenshotted, and the console must stay free of errors."""

    def __init__(self, browser):
        self.browser = browser
        self.errors: list[str] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def visit(self, url: str, wait_for_text: str, timeout: float = 60):
        from selenium.webdriver.common.by import By

        self.browser.get(url)
        wait_for(lambda: wait_for_text in self.browser.find_element(By.TAG_NAME, "body").text, timeout)

    def snap(self, name: str) -> None:
        self.browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self._collect(name)

    def leave(self, name: str) -> None:
        """Close the page before its server stops (a page left open logs the lost connection)."""
        self._collect(name)
        self.browser.get("about:blank")

    def _collect(self, name: str) -> None:
        self.errors += [
            f"{name}: {entry['message']}"
            for entry in self.browser.get_log("browser")
            if entry["level"] == "SEVERE" and not KNOWN_CONSOLE_ERRORS.search(entry["message"])
        ]

    def click_text(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        self.browser.find_element(By.XPATH, f"//*[normalize-space()={text!r}]").click()


@NEEDS_BROWSER
def test_the_first_steps_after_the_demo_in_a_browser(demo, browser):
    from openai import OpenAI
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    walk = Walk(browser)
    env = {**os.environ, "DAGSTER_HOME": str(demo.home), "WHISPER_ASSETS_CONFIG": str(demo.config)}

    # `make ui`: the asset graph, then a materialization's chart (inventory's duration histogram).
    port = free_port()
    ui = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    with started(ui, env, f"http://127.0.0.1:{port}/server_info"):
        wait_for(lambda: _graph_loaded(port), 120)
        walk.visit(f"http://127.0.0.1:{port}/asset-groups", "Global asset lineage")
        if _graphql(port, "{ shouldShowNux }")["shouldShowNux"]:
            # The first visit's newsletter dialog opens a second after the page: skip it, and wait for its
            # backdrop to go (it takes the clicks meant for the page).
            wait_for(lambda: browser.find_elements(By.XPATH, "//button[normalize-space()='Skip']"))
            walk.click_text("Skip")
            wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, ".bp5-overlay-backdrop"))
        wait_for(
            lambda: (
                {"ingest", "curation", "model"} <= set(browser.find_element(By.TAG_NAME, "body").text.split())
            )
        )
        walk.snap("01-asset-graph")
        walk.visit(f"http://127.0.0.1:{port}/assets/inventory?view=events", "duration_histogram")
        row = browser.find_element(By.XPATH, "//tr[td[normalize-space()='duration_histogram']]")
        row.find_elements(By.XPATH, ".//*[normalize-space()='[Show Markdown]']")[-1].click()  # the innermost
        chart = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image']"))
        assert chart[0].size["width"] > 200
        walk.snap("02-inventory-chart")
        walk.leave("02-inventory-chart")

    # `make mlflow-ui`: the demo's two runs side by side, from the link the demo printed.
    port = free_port()
    mlflow_root = demo.root / "mlflow"
    mlflow = [
        str(BIN / "mlflow"),
        "ui",
        "--backend-store-uri",
        f"sqlite:///{mlflow_root / 'mlflow.db'}",
        "--default-artifact-root",
        str(mlflow_root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    compare = re.search(r"Both runs in MLflow: (\S+)", demo.stdout).group(1)
    with started(mlflow, env, f"http://127.0.0.1:{port}/health"):
        walk.visit(compare.replace("127.0.0.1:5000", f"127.0.0.1:{port}"), "Comparing 2 Runs")
        runs = re.findall(r"WER of (run-\w+)", demo.stdout)
        wait_for(lambda: all(run in browser.find_element(By.TAG_NAME, "body").text for run in runs))
        walk.snap("03-mlflow-compare")
        walk.leave("03-mlflow-compare")

    # The evaluation dashboard: the second run against the first.
    dashboard = re.findall(r"Dashboard: (\S+)", demo.stdout)[-1]
    walk.visit(Path(dashboard).as_uri(), "Evaluation")
    assert "test:demo-commands" in demo.stdout and "general_en" in browser.page_source
    walk.snap("04-dashboard")

    # The review page, hardest first: the entry the champion ranked highest comes first.
    database = demo.root / "review.db"
    port = free_port()
    review = [str(BIN / "whisper-assets"), "review", "--db", str(database), "--port", str(port)]
    with started(review, env, f"http://127.0.0.1:{port}/"):
        with review_db.connect(database, readonly=True) as con:
            scores = dict(con.execute(f"SELECT entry_id, score FROM {review_db.PRIORITY_TABLE}").fetchall())
        assert len(scores) >= 3, scores
        walk.visit(f"http://127.0.0.1:{port}/", "reviewed")
        Select(browser.find_element(By.ID, "order")).select_by_value("hardest")
        hardest = str(max(scores, key=scores.get))
        wait_for(lambda: browser.find_element(By.ID, "entry-id").text == hardest)
        assert browser.find_element(By.ID, "priority").is_displayed()
        walk.snap("05-review-hardest-first")
        walk.leave("05-review-hardest-first")

    # `make serve`: the champion behind OpenAI's audio API, its health page, and one transcription.
    port = free_port()
    serve = [str(BIN / "whisper-assets"), "serve", "--config", str(demo.config), "--port", str(port)]
    with started(serve, env, f"http://127.0.0.1:{port}/health"):
        walk.visit(f"http://127.0.0.1:{port}/health", '"status":"ok"')
        walk.snap("06-serve-health")
        walk.leave("06-serve-health")
        clip = next((demo.root / "uploads" / "demo-commands").glob("dana_*.flac"))
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="walkthrough")
        with clip.open("rb") as audio:
            text = client.audio.transcriptions.create(model="whisper-1", file=audio).text
        assert text.strip()

    assert not walk.errors, walk.errors
