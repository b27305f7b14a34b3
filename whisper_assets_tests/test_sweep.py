"""The `sweep` job: an Optuna study whose trials are MLflow child runs of one parent; resumable."""

import dagster as dg
import pytest
from mlflow import MlflowClient

from whisper_assets.settings import load_settings
from whisper_assets.tracking import default_tracking_uri
from whisper_assets.training.options import SweepOptions
from whisper_assets.training.sweep import PARENT_TAG
from whisper_assets_tests.helpers import run_job
from whisper_assets_tests.training_fixtures import make_training_project

SPACE = {
    "trials": 2,
    "learning_rate_min": 1e-5,
    "learning_rate_max": 1e-3,
    "max_steps": [2],
    "methods": ["full", "lora"],
    "lora_ranks": [4],
}


def sweep(project, instance, space=SPACE):
    result = run_job(project, "sweep", instance, run_config={"ops": {"whisper_sweep": {"config": space}}})
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def children_of(client, parent):
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    )


def test_a_two_trial_sweep_records_child_runs_registers_the_best_and_resumes(tmp_path):
    project = make_training_project(tmp_path)
    settings = load_settings(project)
    uri = default_tracking_uri(settings.layout.mlflow_root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with dg.instance_for_test() as instance:
        first = sweep(project, instance)
        assert first["trials"] == {"complete": 2}
        [parent] = client.search_runs(
            [client.get_experiment_by_name(settings.mlflow.experiment).experiment_id],
            filter_string=f"tags.mlflow.runName = '{first['sweep']}'",
        )
        children = children_of(client, parent)
        assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
        assert len({c.data.params["learning_rate"] for c in children}) == 2  # each trial its own draw
        child_wer = {c.info.run_id: c.data.metrics["wer"] for c in children}
        assert first["best_validation_wer"] == min(child_wer.values())
        version = client.get_model_version(settings.mlflow.registered_model, first["model_version"])
        assert (
            child_wer[version.run_id] == first["best_validation_wer"]
        )  # the best trial's model is registered
        assert parent.data.params["space.trials"] == "2"
        assert first["training_overrides"]["learning_rate"] == first["best_params"]["learning_rate"]

        # The overrides make whisper_model find the best trial's finished run folder: no training again.
        trained = run_job(
            project,
            "train_and_evaluate",
            instance,
            assets=["whisper_model"],
            run_config={"ops": {"whisper_model": {"config": first["training_overrides"]}}},
        )
        [event] = trained.get_asset_materialization_events()
        reused = {k: v.value for k, v in event.materialization.metadata.items()}
        assert reused["run"] == first["best_run"] and reused["resumed_from_step"] == 2

        again = sweep(project, instance)  # resumed: both trials are done, nothing trains again
        assert again["sweep"] == first["sweep"] and again["best_params"] == first["best_params"]
        assert again["model_version"] == first["model_version"]
        assert len(children_of(client, parent)) == 2

        more = sweep(project, instance, SPACE | {"trials": 3})  # a bigger budget continues the same study
        assert more["sweep"] == first["sweep"] and more["trials"] == {"complete": 3}
        assert len(children_of(client, parent)) == 3


def test_a_sweep_space_must_be_a_range_of_known_methods():
    with pytest.raises(ValueError, match="learning_rate_min must not exceed"):
        SweepOptions(learning_rate_min=1e-3, learning_rate_max=1e-5)
    with pytest.raises(ValueError, match=r"unknown training methods \['qlora'\]"):
        SweepOptions(methods=["full", "qlora"])
