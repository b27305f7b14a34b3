"""The evaluation dashboard: word alignment pieces, the eval_dashboard asset over two real runs, the CLI, and the
pages in headless Chromium."""

import re
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
import pytest
from mlflow import MlflowClient

from whisper_assets.audio.espeak import espeak_available
from whisper_assets.cli import main
from whisper_assets.evaluation.dashboard import confusions, error_matrix, word_diff
from whisper_assets.settings import load_settings
from whisper_assets.tracking import default_tracking_uri
from whisper_assets_tests.helpers import ARTIFACTS, NEEDS_BROWSER, run_job
from whisper_assets_tests.training_fixtures import make_training_project

SECTIONS = (
    "summary",
    "regression-sets--forgetting",
    "wer-by-language",
    "wer-by-source",
    "wer-by-speaker",
    "wer-by-duration-bucket",
    "word-confusions",
    "error-heatmap",
    "worst-utterances",
    "training-curves",
)


def test_confusions_and_word_diff_follow_the_alignment():
    rows = [
        {"reference": "the cat sat on the mat", "hypothesis": "the bat sat on mat", "language": "en"},
        {"reference": "a cat", "hypothesis": "a bat", "language": "en"},
        {"reference": "see you", "hypothesis": "see you today", "language": "en"},
    ]
    found = confusions(rows)
    assert found["substitute"] == {"cat → bat": 2}
    assert found["delete"] == {"the": 1} and found["insert"] == {"today": 1}
    assert word_diff("The cat, sat.", "the bat sat", "en") == "the <del>cat</del> <ins>bat</ins> sat"
    assert "<script" not in word_diff("a b", "a <script>alert(1)</script>", "en")


def test_error_matrix_is_corpus_wer_per_cell():
    rows = [
        {"speaker": "ana", "duration_bucket": "<2s", "word_errors": 1, "ref_words": 4},
        {"speaker": "ana", "duration_bucket": "<2s", "word_errors": 1, "ref_words": 6},
        {"speaker": "bob", "duration_bucket": "2-5s", "word_errors": 3, "ref_words": 3},
    ]
    speakers, buckets, matrix = error_matrix(rows, "duration_bucket", "speaker")
    assert speakers == ["ana", "bob"] and buckets == ["2-5s", "<2s"]
    assert matrix == [[None, 0.2], [1.0, None]]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two evaluated runs of the tiny model, each with its dashboard materialized."""
    config = make_training_project(tmp_path_factory.mktemp("dashboard"))
    results = []
    with dg.instance_for_test() as instance:
        for seed in (1, 2):
            result = run_job(
                config,
                "train_and_evaluate",
                instance,
                assets=["whisper_model", "eval_metrics", "eval_dashboard"],
                run_config={"ops": {"whisper_model": {"config": {"seed": seed}}}},
            )
            results.append(
                {
                    e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
                    for e in result.get_asset_materialization_events()
                }
            )
    return config, results


def test_the_dashboard_has_every_section_and_compares_with_the_other_run(two_runs):
    config, (first, second) = two_runs
    assert first["eval_dashboard"]["compared_with"] == "no other evaluated run"
    page = Path(first["eval_dashboard"]["dashboard"])
    assert first["eval_metrics"]["dashboard"] == str(page)
    text = page.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in text
    assert not re.search(r"(src|href)=.https?:", text) and "<script" not in text  # nothing to fetch or run
    assert text.count("<audio controls") == 1  # the test split has one utterance, and its clip is inside
    if espeak_available():  # no regression source: forgetting on the built-in general set, and said so
        assert "measured on the built-in general set" in text and "Regression sets: WER" in text
    else:
        assert "forgetting is not measured" in text

    versus = Path(second["eval_dashboard"]["versus"])
    assert versus.name == f"vs_{first['whisper_model']['run']}.html"
    compared = versus.read_text()
    assert first["whisper_model"]["run"] in compared and second["whisper_model"]["run"] in compared
    assert compared.count("<h3>") == 2 * (len(SECTIONS) - 1)  # every section but the curves, side by side

    # MLflow links open in its model-training view; the second run links MLflow's comparison of both runs.
    compare = unquote(second["eval_dashboard"]["mlflow_compare"])
    assert "/#/compare-runs?" in compare and compare.endswith("workflowType=machine_learning")
    assert (
        first["whisper_model"]["mlflow_run_id"] in compare
        and second["whisper_model"]["mlflow_run_id"] in compare
    )
    assert "orderByKey=metrics.`test_wer_normalized`" in unquote(first["eval_dashboard"]["mlflow_runs"])
    uri = default_tracking_uri(load_settings(config).layout.mlflow_root)
    client = MlflowClient(tracking_uri=uri)
    logged = {a.path for a in client.list_artifacts(second["whisper_model"]["mlflow_run_id"], "dashboard")}
    assert logged == {"dashboard/index.html", f"dashboard/{versus.name}"}


def test_the_cli_compares_any_two_runs_by_folder_or_mlflow_id(two_runs, capsys):
    config, (first, second) = two_runs
    runs = [second["whisper_model"]["run"], first["whisper_model"]["mlflow_run_id"]]
    assert main(["dashboard", "--config", str(config), *runs]) == 0
    page = Path(re.search(r"dashboard: (\S+)", capsys.readouterr().out).group(1))
    assert page.name == f"vs_{second['whisper_model']['run']}.html" and page.exists()
    assert main(["dashboard", "--config", str(config), "no-such-run"]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
@NEEDS_BROWSER
def test_the_dashboard_opens_in_chromium(two_runs, browser):
    from selenium.webdriver.common.by import By

    _, (_, second) = two_runs
    browser.get(Path(second["eval_dashboard"]["versus"]).as_uri())
    shown = {s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")}
    assert shown == set(SECTIONS)
    charts = browser.find_elements(By.CSS_SELECTOR, "section svg")
    assert len(charts) >= 10 and all(c.size["width"] > 100 for c in charts[:10])
    duration = browser.execute_script(
        "const a = document.querySelector('audio'); a.load();"
        "return new Promise(r => a.addEventListener('loadedmetadata', () => r(a.duration)));"
    )
    assert duration > 0.5  # the embedded Ogg Opus clip decodes in the browser
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "eval_dashboard.png"))
    assert (ARTIFACTS / "eval_dashboard.png").stat().st_size > 10_000
