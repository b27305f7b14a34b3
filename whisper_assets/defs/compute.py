"""Where the steps of a run execute: the run's own process by default; with `compute.executor: k8s`, each step
of the model jobs in its own pod (dagster-k8s), the steps in the `gpu` pool in the settings' GPU pod."""

from collections.abc import Iterable

import dagster as dg

from whisper_assets.compute import ComputeSettings

GPU_POOL = "gpu"


def gpu_ops(assets: Iterable[dg.AssetsDefinition]) -> list[str]:
    """The ops that need a GPU: those in the `gpu` concurrency pool."""
    return sorted(a.op.name for a in assets if a.op.pool == GPU_POOL)


def step_executor(
    compute: ComputeSettings, assets: Iterable[dg.AssetsDefinition]
) -> dg.ExecutorDefinition | None:
    """The executor for jobs that do not pin one (None: Dagster's default, steps in the run's process)."""
    if compute.executor != "k8s":
        return None
    from dagster_k8s import k8s_job_executor  # the `team` extra

    gpu_pod = compute.gpu_pod.k8s_config()
    return k8s_job_executor.configured(
        {"per_step_k8s_config": {op: gpu_pod for op in gpu_ops(assets)}}, name="k8s_steps"
    )


def training_pipes_client(compute: ComputeSettings) -> dg.PipesClient:
    """How `whisper_model` starts remote training (settings `compute.remote_training`): a pod or a subprocess."""
    if compute.remote_training == "k8s":
        from dagster_k8s import PipesK8sClient  # the `team` extra

        return PipesK8sClient()
    return dg.PipesSubprocessClient()
