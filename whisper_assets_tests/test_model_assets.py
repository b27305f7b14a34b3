"""whisper_model -> eval_metrics -> exported_model in Dagster, with a real embedded MLflow store."""

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from whisper_assets.asr.model import load_base
from whisper_assets.audio.espeak import espeak_available
from whisper_assets.curation.manifests import publish_staged, stage_manifests
from whisper_assets.export.ctranslate import export_available
from whisper_assets.settings import load_settings
from whisper_assets.tables import read_rows, table_path
from whisper_assets.tracking import CHAMPION, default_tracking_uri
from whisper_assets.tracking.tracker import Tracker
from whisper_assets_tests.helpers import run_job, tick
from whisper_assets_tests.training_fixtures import (
    make_items,
    make_tiny_model,
    make_training_project,
    speak_whole_words,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_training_project(tmp_path_factory.mktemp("project"))


def materialize(project, instance, selection, training=None, wer_target=None):
    settings = yaml.safe_load(project.read_text())
    settings["evaluation"] = {"wer_target": wer_target}
    project.write_text(yaml.safe_dump(settings))
    run_config = (
        {"ops": {"whisper_model": {"config": training or {}}}} if "whisper_model" in selection else {}
    )
    return run_job(
        project, "train_and_evaluate", instance, assets=selection, run_config=run_config, raise_on_error=False
    )


def champion(client: MlflowClient, settings) -> str:
    return str(client.get_model_version_by_alias(settings.mlflow.registered_model, CHAMPION).version)


def meta(result, asset):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_training_is_tracked_and_the_champion_moves_only_through_the_gate(project):
    settings = load_settings(project)
    uri = default_tracking_uri(settings.layout.mlflow_root)
    with dg.instance_for_test() as instance:
        # 1. A near-zero learning rate keeps the model equal to its base: not worse, so it becomes champion.
        first = materialize(project, instance, ["whisper_model", "eval_metrics"])
        assert first.success
        trained, evaluated = meta(first, "whisper_model"), meta(first, "eval_metrics")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        run = client.get_run(trained["mlflow_run_id"])
        assert run.data.params["learning_rate"] == "1e-12" and run.data.params["max_steps"] == "2"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
        assert "test_wer_normalized" in run.data.metrics and "test_wer_normalized_base" in run.data.metrics
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train", "validation", "test"}
        assert run.data.tags["dagster/run_id"] == first.run_id
        # Pictures in the UI, the same ones in the MLflow run; the experiment opens in MLflow's training view.
        assert {k for k in trained if k.startswith("plot_")} == {
            "plot_loss",
            "plot_wer",
            "plot_lr",
            "plot_hours_per_split",
        }
        assert trained["plot_loss"].startswith("![loss](data:image/png;base64,")
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert plots == {f"plots/{name}.png" for name in ("loss", "wer", "lr", "hours_per_split")}
        experiment = client.get_experiment(run.info.experiment_id)
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        assert evaluated["test_wer"] == evaluated["test_wer_base"]
        assert champion(client, settings) == "1"
        [check] = first.get_asset_check_evaluations()
        assert check.passed

        # 2. An unreachable WER target: the gate fails, the champion stays, and the export is blocked.
        second = materialize(
            project,
            instance,
            ["whisper_model", "eval_metrics", "exported_model"],
            training={"seed": 7},
            wer_target=0.0,
        )
        [check] = second.get_asset_check_evaluations()
        assert not check.passed and "misses the target" in check.description
        assert meta(second, "whisper_model")["model_version"] == "2"
        assert champion(client, settings) == "1"
        assert not [
            e for e in second.get_asset_materialization_events() if e.asset_key.path == ["exported_model"]
        ]

        # 3. A model that passes again takes the alias.
        third = materialize(project, instance, ["whisper_model", "eval_metrics"], training={"seed": 8})
        assert third.get_asset_check_evaluations()[0].passed
        assert champion(client, settings) == "3"

        # The champion can be fetched as a local model folder (pseudo-labels use it), once per version.
        tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
        fetched = tracker.download_champion(settings.layout.cache_root / "champion")
        assert fetched.name.endswith("-v3") and (fetched / "model.safetensors").exists()
        assert load_base(str(fetched))[0].config.d_model == 64
        assert tracker.download_champion(settings.layout.cache_root / "champion") == fetched

        # Per-utterance results are a table; the training log has JSON lines; the run manifest names the data.
        rows = read_rows(table_path(settings.layout.tables_root, "eval_utterances", trained["run"]))
        built_in = {"general_sr"} if espeak_available() else set()  # no regression source: the general set
        assert {r["model"] for r in rows} == {"finetuned", "base"}
        assert {r["split"] for r in rows} == {"test", "validation"} | built_in
        log_lines = [json.loads(line) for line in Path(trained["training_log"]).read_text().splitlines()]
        assert {line["stage"] for line in log_lines} >= {"train", "eval", "checkpoint"}
        manifest = json.loads(
            (settings.layout.models_root / "whisper" / trained["run"] / "run_manifest.json").read_text()
        )
        assert (
            set(manifest["manifests"]) == {"train", "validation", "test"} and manifest["libraries"]["torch"]
        )


def test_rematerializing_a_finished_run_reuses_it(project):
    with dg.instance_for_test() as instance:
        first = meta(
            materialize(project, instance, ["whisper_model"], training={"seed": 11}), "whisper_model"
        )
        again = meta(
            materialize(project, instance, ["whisper_model"], training={"seed": 11}), "whisper_model"
        )
    assert again["run"] == first["run"] and again["resumed_from_step"] == 2
    assert again["mlflow_run_id"] == first["mlflow_run_id"]
    assert again["model_version"] == first["model_version"]  # not registered twice


@pytest.mark.skipif(
    not export_available(), reason="the `export` extra (ctranslate2, faster-whisper) is not installed"
)
def test_export_converts_and_transcribes(project):
    with dg.instance_for_test() as instance:
        result = materialize(
            project, instance, ["whisper_model", "eval_metrics", "exported_model"], training={"seed": 21}
        )
        assert result.success
        exported = meta(result, "exported_model")
        trained = Path(meta(result, "whisper_model")["model_dir"])
    assert (Path(exported["path"]) / "model.bin").exists()
    scope = json.loads((Path(exported["path"]) / "model_scope.json").read_text())
    assert scope["general_model"] is True and scope["max_input_seconds"] == 30.0
    assert isinstance(exported["faster_whisper_output"], str) and exported["verified_on"] == "item-5"
    # The fine-tuned model and its export keep the base's alignment heads: word timestamps still work.
    base = Path(yaml.safe_load(project.read_text())["training"]["base_model"])
    base_heads = json.loads((base / "generation_config.json").read_text())["alignment_heads"]
    assert json.loads((trained / "generation_config.json").read_text())["alignment_heads"] == base_heads
    assert json.loads((Path(exported["path"]) / "config.json").read_text())["alignment_heads"] == base_heads
    # The export is logged next to the run's model and its version points at it: servers anywhere fetch it.
    settings = load_settings(project)
    tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
    version = tracker.model_version(exported["model_version"])
    assert version.tags["ctranslate2_int8"] == exported["mlflow_artifact"]
    fetched = tracker.download(exported["mlflow_artifact"], project.parent / "fetched")
    assert (fetched / "model.bin").read_bytes() == (Path(exported["path"]) / "model.bin").read_bytes()


@pytest.fixture(scope="module")
def general_speech_project(tmp_path_factory):
    """A project with a regression set the base model transcribes perfectly: its references are the base's own
    transcripts, so any change a fine-tune makes to that output is forgetting the gate must see."""
    from whisper_assets.asr.transcribe import transcribe
    from whisper_assets.audio.process import write_pcm16
    from whisper_assets.demo.data import speech_like

    root = tmp_path_factory.mktemp("general")
    items = make_items(root / "data" / "processed")
    base = speak_whole_words(make_tiny_model(root / "base-model"))
    general = []
    for k, text in enumerate(["the weather is fine", "call me tomorrow", "a long way home"]):
        samples = speech_like(text)
        write_pcm16(root / "data" / "general" / f"g{k}.wav", samples)
        general.append(
            items[0]
            | {"id": f"general-{k}", "parent_id": f"general-{k}", "source": "general", "speaker": f"g{k}"}
            | {"audio": str(root / "data" / "general" / f"g{k}.wav"), "duration": len(samples) / 16000}
        )
    model, processor = load_base(str(base))
    for item, heard in zip(general, transcribe(model, processor, general, max_new_tokens=8), strict=True):
        item["transcript"] = heard
    assert all(item["transcript"] for item in general)
    samples = speech_like("good morning everyone")
    write_pcm16(root / "data" / "warmup" / "w0.wav", samples)
    replay = general[0] | {"id": "warmup-0", "parent_id": "warmup-0", "source": "warmup", "speaker": "w0"}
    replay |= {"audio": str(root / "data" / "warmup" / "w0.wav"), "transcript": "good morning everyone"}
    splits = {
        "train": items[:4],
        "validation": items[4:5],
        "test": items[5:],
        "regression/general": general,
        "replay/warmup": [replay | {"duration": len(samples) / 16000}],
    }
    publish_staged(root / "manifests", stage_manifests(root / "manifests", splits))
    training = {
        "base_model": str(base),
        "max_steps": 2,
        "batch_size": 2,
        "eval_every": 2,
        "save_every": 2,
        "generation_max_tokens": 8,
        "learning_rate": 1e-12,
        "replay_share": 0.0,  # replay is switched on below
    }
    config = root / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump({"data_root": ".", "training": training}))
    return config


def test_forgetting_blocks_the_champion_and_a_trimmed_window_is_no_general_model(general_speech_project):
    project = general_speech_project
    settings = load_settings(project)
    uri = default_tracking_uri(settings.layout.mlflow_root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with dg.instance_for_test() as instance:
        # A model equal to its base keeps the regression set at 0% WER: promoted, and a general model.
        kept = materialize(project, instance, ["whisper_model", "eval_metrics"])
        [check] = kept.get_asset_check_evaluations()
        assert check.passed and "regression/general WER 0.0% -> 0.0%" in check.description
        assert meta(kept, "eval_metrics")["general_model"] is True
        assert "replay/warmup" not in meta(kept, "whisper_model")["manifest_sha256"]

        # replay_share mixes the replay sets into training: the run reads (and records) them.
        replayed = materialize(project, instance, ["whisper_model"], training={"replay_share": 0.5})
        assert set(meta(replayed, "whisper_model")["manifest_sha256"]) == {
            "train",
            "validation",
            "test",
            "replay/warmup",
        }

        # A fine-tune that changes what the model says about general speech is refused, with the set named.
        forgot = materialize(
            project, instance, ["whisper_model", "eval_metrics"], training={"learning_rate": 0.05}
        )
        [check] = forgot.get_asset_check_evaluations()
        assert not check.passed and "forgetting: regression set regression/general" in check.description
        assert check.metadata["regression_points"].value["regression/general"] > 2
        assert champion(client, settings) == "1"

        # A model trained on a 2 s window: evaluated on the regression set's full audio, tagged a specialist.
        trimmed = materialize(
            project,
            instance,
            ["whisper_model", "eval_metrics"],
            training={"window_seconds": 2.0, "full_window_steps": 0},
        )
        trained, evaluated = meta(trimmed, "whisper_model"), meta(trimmed, "eval_metrics")
        assert trained["max_input_seconds"] == 2.0 and trained["general_model"] is False
        assert evaluated["general_model"] is False
        [check] = trimmed.get_asset_check_evaluations()
        assert "specialist model: trained on a 2 s window" in check.description
        version = client.get_model_version(settings.mlflow.registered_model, trained["model_version"])
        assert version.tags.items() >= {"max_input_seconds": "2", "general_model": "false"}.items()
        assert client.get_run(trained["mlflow_run_id"]).data.tags["general_model"] == "false"
    rows = read_rows(table_path(settings.layout.tables_root, "eval_utterances", trained["run"]))
    assert {r["split"] for r in rows} == {"test", "validation", "regression/general"}


def test_retrain_schedule_skips_until_the_data_changes(project):
    with dg.instance_for_test() as instance:
        assert "materialize `splits` first" in tick(project, "retrain_on_new_data", instance).skip_message
        digests = {"train": "a" * 64, "validation": "b" * 64, "test": "c" * 64}
        published = digests | {"regression/general": "d" * 64, "replay/general": "e" * 64}
        instance.report_runless_asset_event(
            dg.AssetMaterialization("splits", metadata={"manifest_sha256": published})
        )
        request = tick(project, "retrain_on_new_data", instance)
        assert isinstance(request, dg.RunRequest)
        trained = digests | {"replay/general": "e" * 64}  # replay is on by default: the model read it
        instance.report_runless_asset_event(
            dg.AssetMaterialization("whisper_model", metadata={"manifest_sha256": trained})
        )
        skipped = tick(project, "retrain_on_new_data", instance)
        assert "have not changed" in skipped.skip_message  # a regression set needs no new model
        for changed in ({"train": "f" * 64}, {"replay/general": "f" * 64}):
            instance.report_runless_asset_event(
                dg.AssetMaterialization("splits", metadata={"manifest_sha256": published | changed})
            )
            assert isinstance(tick(project, "retrain_on_new_data", instance), dg.RunRequest)


class _Trained(Exception):
    """Stops a training run once the test has seen what the trainer was handed."""


def test_the_training_step_hands_the_selection_set_to_the_trainer(tmp_path, monkeypatch):
    from whisper_assets.defs import training as training_defs
    from whisper_assets.evaluation import general_set
    from whisper_assets.training import runs

    settings = load_settings(make_training_project(tmp_path))
    selection = [{"id": "selection-general_en-00", "transcript": "a sentence", "language": "en"}]
    monkeypatch.setattr(general_set, "selection_rows", lambda languages, root: selection)
    handed = {}

    def trainer(*args, general_items=(), **kwargs):
        handed["general_items"] = general_items
        raise _Trained

    monkeypatch.setattr(runs, "train", trainer)
    tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
    with pytest.raises(_Trained):
        training_defs.train_and_describe(settings, settings.training, tracker, {}, print)
    assert list(handed["general_items"]) == selection
