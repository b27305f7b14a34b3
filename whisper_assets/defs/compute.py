"""Where the steps of a run execute: the run's own process by default; with `compute.executor: k8s`, each step
of the model jobs in its own pod (dagster-k8s), the steps in the `gpu` pool in the settings' GPU pod."""

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dagster as dg

from whisper_assets.compute import ComputeSettings

GPU_POOL = "gpu"


def gpu_ops(assets: Iterable[dg.AssetsDefinition]) -> list[str]:
    """The ops that need a GPU: those in the `gpu` concurrency pool."""
    return sorted(a.op.name for a in assets if a.op.pool == GPU_POOL)


def step_executor(
    compute: ComputeSettings, assets: Iterable[dg.AssetsDefinition]
) -> dg.ExecutorDefinition | None:
    """The executor for jobs that do not pin one (None: Dagster's default, the multiprocess executor, which
    starts a process per step; the ingest and curation jobs pin the in-process one)."""
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
    return dg.PipesSubprocessClient(message_reader=WholeLineMessageReader())


class WholeLineMessageReader(dg.PipesTempFileMessageReader):
    """Dagster's file reader parses whatever `readline` returns, and a long message (the run's metadata with
    its plots) can be caught half-written: a JSONDecodeError that fails the step under load. This one parses
    a message only once its line is complete."""

    @contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        with tempfile.TemporaryDirectory() as folder:
            reader = _WholeLineFileReader(os.path.join(folder, "messages"), include_stdio_in_messages=False)
            with reader.read_messages(handler) as params:
                yield params


class _WholeLineFileReader(dg.PipesFileMessageReader):
    def _reader_thread(self, handler, is_resource_complete) -> None:  # Dagster's hook (1.13.27), line-safe
        try:
            with open(self._path, encoding="utf-8") as stream:
                pending = ""
                while True:
                    line = stream.readline()
                    pending += line
                    if pending.endswith("\n"):
                        handler.handle_message(json.loads(pending))
                        pending = ""
                    elif not line:  # nothing new: the writer is done, or not yet
                        if is_resource_complete.is_set():
                            break
                        time.sleep(0.01)
        except Exception:
            handler.report_pipes_framework_exception(f"{type(self).__name__} reader thread", sys.exc_info())
            raise
