"""A training run's lifecycle and its evaluation as plain Python: no Dagster, an embedded MLflow store."""

import json

from whisper_assets.audio.espeak import espeak_available
from whisper_assets.curation.manifests import (
    current_split_manifests,
    publish_staged,
    read_manifest,
    stage_manifests,
)
from whisper_assets.evaluation.gate import EvaluationSettings
from whisper_assets.evaluation.run import evaluate_run
from whisper_assets.layout import DataLayout
from whisper_assets.tracking import MlflowSettings
from whisper_assets.tracking.tracker import Tracker
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.runs import train_run
from whisper_assets_tests.training_fixtures import make_items, make_tiny_model


def test_a_run_trains_once_registers_once_and_is_evaluated_against_its_base(tmp_path):
    layout = DataLayout(tmp_path)
    items = make_items(layout.processed_root)
    splits = {"train": items[:4], "validation": items[4:5], "test": items[5:]}
    publish_staged(layout.manifests_root, stage_manifests(layout.manifests_root, splits))
    options = TrainingOptions(
        base_model=str(make_tiny_model(tmp_path / "base")),
        max_steps=2,
        batch_size=2,
        eval_every=2,
        save_every=2,
        generation_max_tokens=8,
        learning_rate=1e-12,
    )
    tracker = Tracker.from_settings(MlflowSettings(), layout.mlflow_root)
    lines: list[str] = []

    def run():
        published = current_split_manifests(layout.manifests_root)
        return train_run(
            options,
            published,
            layout.models_root,
            layout.features_root,
            layout.logs_root,
            tracker,
            {},
            lines.append,
        )

    first = run()
    assert "train step 2/2" in " ".join(lines)
    assert read_manifest(first.folder.manifest("train")) == read_manifest(
        layout.manifests_root / "splits" / "train.jsonl"
    )
    assert first.folder.read_run_manifest()["mlflow_run_id"] == first.mlflow_run_id
    assert first.folder.decoding().base_model == options.base_model

    # The split manifests change after training: the run keeps evaluating on the manifests it was trained with.
    changed = splits | {"test": items[:3]}
    publish_staged(layout.manifests_root, stage_manifests(layout.manifests_root, changed))
    again = run()  # a different run now (other data): its own folder
    assert again.folder != first.folder and again.model_version != first.model_version
    repeat = train_run(
        options,
        {split: ref for split, ref in first.manifests.items()},
        layout.models_root,
        layout.features_root,
        layout.logs_root,
        tracker,
        {},
    )
    assert repeat.folder == first.folder and repeat.model_version == first.model_version
    assert repeat.result.resumed_from_step == 2

    evaluation = evaluate_run(
        first.folder,
        tracker,
        EvaluationSettings(),
        layout.tables_root,
        layout.manifests_root,
        layout.general_speech_root,
    )
    assert evaluation.metrics["test_utterances"] == 1  # the run's own test manifest, not today's
    if espeak_available():  # no regression source: the built-in general set stands in for one
        assert [(r.name, r.built_in, r.points) for r in evaluation.regressions] == [("general_sr", True, 0.0)]
        assert "built-in espeak-ng general set" in evaluation.decision.reason
        # the same model twice: no rise, and none in any resample
        assert json.loads(evaluation.report_path.read_text())["forgetting"]["general_sr"]["interval"] == [
            0,
            0,
        ]
    assert evaluation.test_wer == evaluation.base_wer  # a learning rate of 1e-12 leaves the base as it was
    assert evaluation.decision.passed and tracker.champion() == first.model_version
    assert evaluation.report_path.exists()
    assert tracker.run_metrics(first.mlflow_run_id)["test_wer_normalized_base"] == evaluation.base_wer
