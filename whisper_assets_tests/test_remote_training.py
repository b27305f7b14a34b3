"""Remote training through Dagster Pipes: the `whisper_model` step starts training in another process (here the
subprocess client; on a cluster a pod), and its step records and materialization come back to the step."""

import os

import dagster as dg
import pytest
import yaml

from whisper_assets.compute import ComputeSettings
from whisper_assets_tests.helpers import run_job
from whisper_assets_tests.training_fixtures import make_training_project


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2], ids=["one process", "torchrun, two CPU processes"])
def test_training_in_a_pipes_subprocess_reports_back_and_feeds_evaluation(tmp_path, monkeypatch, processes):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two processes on two cores
    project = make_training_project(tmp_path)
    settings = yaml.safe_load(project.read_text())
    settings["compute"] = {"remote_training": "subprocess", "processes": processes}
    project.write_text(yaml.safe_dump(settings))
    with dg.instance_for_test() as instance:
        result = run_job(project, "train_and_evaluate", instance, assets=["whisper_model", "eval_metrics"])
        assert result.success and result.get_asset_check_evaluations()[0].passed
        [typed] = [
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.asset_key.path == ["whisper_model"]
        ]
        trained = {k: v.value for k, v in typed.items()}
        # Paths, links and pictures keep their kinds across Pipes, as a local run's do.
        assert isinstance(typed["model_dir"], dg.PathMetadataValue)
        assert isinstance(typed["mlflow_run"], dg.UrlMetadataValue)
        assert isinstance(typed["plot_loss"], dg.MarkdownMetadataValue)
        assert trained["remote_pid"] != os.getpid()
        assert trained["remote_step_records"] >= 2  # one per training step, sent over Pipes while training
        assert trained["steps"] == 2 and trained["model_version"] == "1"
        assert trained["processes"] == processes  # the worker rank trained its shard of each batch
        assert (tmp_path / "models" / "whisper" / trained["run"] / "model" / "model.safetensors").exists()
        assert trained["plot_loss"].startswith("![loss](data:image/png;base64,")
        logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
        assert any("train step 1/2" in message for message in logs)  # the remote process's own log lines


def test_the_kubernetes_pipes_pod_is_the_gpu_pod_with_the_data_root_mounted():
    pipes = pytest.importorskip("dagster_k8s.pipes", reason="the `team` extra (dagster-k8s) is not installed")
    compute = ComputeSettings.model_validate(
        {
            "remote_training": "k8s",
            "gpu_pod": {
                "image": "registry.example.com/whisper-assets:cuda",
                "node_selector": {"pool": "gpu"},
            },
            "remote_pod_volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "whisper-data"}}],
            "remote_pod_volume_mounts": [{"name": "data", "mountPath": "/data"}],
        }
    )
    body = pipes.build_pod_body(
        "train-1",
        compute.gpu_pod.image,
        ["python", "-m", "whisper_assets.defs.remote_training"],
        {"DAGSTER_PIPES_CONTEXT": "x"},
        None,
        compute.remote_pod_spec(),
    )
    [container] = body.spec.containers
    assert container.image == "registry.example.com/whisper-assets:cuda"
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("data", "/data")]
    assert body.spec.volumes[0].persistent_volume_claim.claim_name == "whisper-data"
    assert body.spec.node_selector == {"pool": "gpu"} and body.spec.tolerations[0].key == "nvidia.com/gpu"
