"""Where steps run beyond the local machine: the pod a GPU step gets on Kubernetes, and remote training.

Plain settings and the Kubernetes pod fragment they describe (in the shape of dagster-k8s's
`dagster-k8s/config`); the Dagster wiring that applies them lives in `defs/compute.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from whisper_assets.policy import Policy

GPU_RESOURCE = "nvidia.com/gpu"


class Toleration(Policy):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class GpuPod(Policy):
    """The pod a GPU step (training, evaluation, review ranking, sweeps) gets on Kubernetes."""

    image: str | None = Field(
        None, description="The CUDA variant of the user-code image; none: the run's image."
    )
    gpus: int = Field(1, ge=1, description="GPUs per pod (several: see deploy/README.md, multi-GPU).")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="e.g. {'nvidia.com/gpu.present': 'true'}"
    )
    tolerations: list[Toleration] = Field(default_factory=lambda: [Toleration(key=GPU_RESOURCE)])
    memory: str | None = Field(None, description="A memory request and limit, e.g. '32Gi'.")

    def k8s_config(self) -> dict:
        """This pod as a `dagster-k8s/config` fragment: container image and limits, node selector, tolerations."""
        limits = {GPU_RESOURCE: str(self.gpus), **({"memory": self.memory} if self.memory else {})}
        container: dict = {
            "resources": {"limits": limits, **({"requests": {"memory": self.memory}} if self.memory else {})}
        }
        if self.image:
            container["image"] = self.image
        pod: dict = {"tolerations": [t.model_dump(exclude_none=True) for t in self.tolerations]}
        if self.node_selector:
            pod["node_selector"] = dict(self.node_selector)
        return {"container_config": container, "pod_spec_config": pod}


class ComputeSettings(Policy):
    """How runs execute: in their run's process (the default), or each step of the model jobs in its own pod."""

    executor: Literal["default", "k8s"] = Field(
        "default",
        description="k8s: the model jobs run each step in its own pod (dagster-k8s), GPU steps in `gpu_pod`.",
    )
    gpu_pod: GpuPod = GpuPod()
    remote_training: Literal["off", "subprocess", "k8s"] = Field(
        "off",
        description="Train through Dagster Pipes in a separate process (subprocess) or Kubernetes pod (k8s).",
    )
    processes: int = Field(
        1,
        ge=1,
        description="Data-parallel training processes remote training starts on its machine (torchrun), "
        "one per GPU; training.batch_size must be a multiple of it.",
    )
    remote_python: str | None = Field(
        None,
        description="The interpreter the subprocess client starts (none: this one); e.g. a wrapper over ssh.",
    )
    remote_pod_volumes: list[dict] = Field(
        default_factory=list,
        description="k8s remote training: the pod's volumes (data root, settings), as in Helm.",
    )
    remote_pod_volume_mounts: list[dict] = Field(default_factory=list)

    def remote_command(self, python: str) -> list[str]:
        """The command that starts remote training: one process, or torchrun with one process per GPU."""
        module = ["-m", "whisper_assets.defs.remote_training"]
        if self.processes == 1:
            return [python, *module]
        return [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={self.processes}",
            *module,
        ]

    def remote_pod_spec(self) -> dict:
        """The pod spec remote training gets on Kubernetes: the GPU pod, with the data root and settings mounted."""
        gpu = self.gpu_pod.k8s_config()
        container = {**gpu["container_config"], "volume_mounts": self.remote_pod_volume_mounts}
        return {**gpu["pod_spec_config"], "containers": [container], "volumes": self.remote_pod_volumes}
