"""Kubernetes without a cluster: the deployment files load, and the pods dagster-k8s would build for the model
jobs' steps (with its own spec-building functions) put GPU steps on the GPU pool and everything else on CPU."""

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from whisper_assets.definitions import build_definitions
from whisper_assets.settings import load_settings
from whisper_assets_tests.servers import DEPLOY

dagster_k8s = pytest.importorskip("dagster_k8s", reason="the `team` extra (dagster-k8s) is not installed")
from dagster_k8s.container_context import K8sContainerContext  # noqa: E402
from dagster_k8s.job import (  # noqa: E402
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

RUN_IMAGE = "registry.example.com/whisper-assets:0.1.0-cpu"


@pytest.fixture(scope="module")
def cluster_settings(tmp_path_factory) -> Path:
    """deploy/whisper_assets.k8s.yaml with its data root moved into a temporary folder."""
    settings = yaml.safe_load((DEPLOY / "whisper_assets.k8s.yaml").read_text())
    settings["data_root"] = str(tmp_path_factory.mktemp("data"))
    path = tmp_path_factory.mktemp("config") / "whisper_assets.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def step_pod(job: dg.JobDefinition, op_name: str):
    """The Kubernetes Job that dagster-k8s's step handler builds for one step: the op's `dagster-k8s/config`
    tag, then the executor's per-step config, merged as K8sStepHandler._get_container_context does."""
    executor_config = job.executor_def.apply_config_mapping({}).value["config"]
    op = job.graph.node_named(op_name).definition
    context = K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op.tags)).merge(
        K8sContainerContext(
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
                executor_config["per_step_k8s_config"].get(op_name, {})
            )
        )
    )
    job_config = DagsterK8sJobConfig(job_image=RUN_IMAGE, dagster_home="/opt/dagster/dagster_home")
    return construct_dagster_k8s_job(
        job_config,
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{op_name.replace('_', '-')}",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )


def test_the_cluster_settings_give_gpu_steps_the_gpu_pod_and_other_steps_a_cpu_pod(cluster_settings):
    settings = load_settings(cluster_settings)
    defs = build_definitions(str(cluster_settings))
    training = defs.resolve_job_def("train_and_evaluate")
    assert training.executor_def.name == "k8s_steps"

    trained = step_pod(training, "whisper_model").spec.template.spec
    [container] = trained.containers
    assert container.resources.limits == {"nvidia.com/gpu": "1", "memory": "32Gi"}
    assert (
        container.image == settings.compute.gpu_pod.image == "registry.example.com/whisper-assets:0.1.0-cuda"
    )
    assert trained.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in trained.tolerations] == [
        ("nvidia.com/gpu", "Exists", "NoSchedule")
    ]
    # Every step in the gpu pool gets the same pod: evaluation, the sweep, review ranking.
    for job, op in (
        ("train_and_evaluate", "eval_metrics"),
        ("sweep", "whisper_sweep"),
        ("rank_reviews", "review_priorities"),
    ):
        pod = step_pod(defs.resolve_job_def(job), op).spec.template.spec
        assert pod.containers[0].resources.limits["nvidia.com/gpu"] == "1", op

    # CPU steps of the same run keep the run's image and ask for no GPU.
    for op in ("trained_items_marked", "eval_dashboard", "exported_model", "catalog"):
        pod = step_pod(training, op).spec.template.spec
        assert pod.containers[0].image == RUN_IMAGE and not pod.tolerations, op
        assert "nvidia.com/gpu" not in (
            (pod.containers[0].resources and pod.containers[0].resources.limits) or {}
        )

    # Ingest and curation keep their in-process executor: one CPU pod per run, from the run launcher.
    assert defs.resolve_job_def("ingest_source").executor_def.name == "in_process"
    assert defs.resolve_job_def("publish_splits").executor_def.name == "in_process"


def test_the_run_launcher_alone_sees_job_tags_only(cluster_settings, tmp_path):
    """The README's claim: a GPU comes from the k8s executor's step pods; the K8sRunLauncher builds the run's pod
    from the job's tags, which ask for no GPU, so without `compute.executor: k8s` training runs on a CPU pod."""
    laptop = tmp_path / "whisper_assets.yaml"
    laptop.write_text(yaml.safe_dump({"data_root": str(tmp_path)}))
    training = build_definitions(str(laptop)).resolve_job_def("train_and_evaluate")
    assert training.executor_def.name != "k8s_steps"
    run_config = get_user_defined_k8s_config(training.tags)
    assert "nvidia.com/gpu" not in str(run_config.container_config)


def test_the_helm_values_run_platform_code_from_the_user_code_image_with_the_shared_volumes():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "whisper_assets.definitions"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert (
        launcher["volumeMounts"] == deployment["volumeMounts"]
        and launcher["volumes"] == deployment["volumes"]
    )
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    settings = yaml.safe_load((DEPLOY / "whisper_assets.k8s.yaml").read_text())
    assert mounts["data"] == settings["data_root"]
    assert {
        "name": "WHISPER_ASSETS_CONFIG",
        "value": f"{mounts['settings']}/whisper_assets.yaml",
    } in deployment["env"]
    assert values["dagsterDaemon"]["runRetries"]["retryOnAssetOrOpFailure"] is False
    laptop = yaml.safe_load((DEPLOY.parent / "dagster.yaml").read_text())
    assert values["additionalInstanceConfig"]["concurrency"]["pools"] == laptop["concurrency"]["pools"]


def test_the_image_installs_what_the_setup_script_installs():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    [run] = re.findall(r"^RUN (.+)$", dockerfile, flags=re.MULTILINE)
    assert "WHISPER_ASSETS_PROFILE=image" in run and "bash scripts/setup.sh" in run
    for copied in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for path in copied.split():
            assert (DEPLOY.parent / path).exists(), path
    setup = (DEPLOY.parent / "scripts" / "setup.sh").read_text()
    assert "extras=export,augment,team" in setup  # the image profile: no dev tools, every runtime extra


def test_every_file_the_deploy_guide_names_exists():
    guide = (DEPLOY / "README.md").read_text()
    named = set(re.findall(r"`((?:deploy/)?[\w./-]+\.(?:yaml|sh|py)|Dockerfile)`", guide))
    assert {
        "dagster-postgres.yaml",
        "mlflow-server.sh",
        "helm/values.yaml",
        "whisper_assets.k8s.yaml",
    } <= named
    root = DEPLOY.parent
    candidates = (DEPLOY, root, root / "whisper_assets_tests")
    missing = [
        n
        for n in named
        if not any((base / n.removeprefix("deploy/")).exists() or (base / n).exists() for base in candidates)
    ]
    assert not missing
