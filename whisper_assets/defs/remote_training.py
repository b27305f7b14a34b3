"""The far side of remote training: `python -m whisper_assets.defs.remote_training`, started by the
`whisper_model` step through Dagster Pipes (a subprocess, or a pod on the GPU pool) on the same data root.

It trains exactly as the local step does, sends each logged step record back as a Pipes message and the
run's metadata as the asset's materialization. Only `dagster_pipes` is used to talk back. Started under
torchrun (settings `compute.processes`), rank 0 does all of that and the other ranks train their shards.
"""

import os
import socket

from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader, open_dagster_pipes

from whisper_assets.curation.manifests import training_manifests
from whisper_assets.defs.training import train_and_describe
from whisper_assets.settings import load_settings
from whisper_assets.tracking.tracker import Tracker
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.runs import train_as_worker


def worker(settings_path: str | None, options: TrainingOptions) -> None:
    layout = load_settings(settings_path).layout
    published = training_manifests(layout.manifests_root, options.replay_share > 0)
    train_as_worker(options, published, layout.models_root, layout.features_root, layout.logs_root)


def main() -> None:
    if int(os.environ.get("RANK", "0")) > 0:
        # The Pipes context (named in the environment) is read, never opened: only rank 0 talks back.
        params = PipesEnvVarParamsLoader().load_context_params()
        with PipesDefaultContextLoader().load_context(params) as data:
            extras = data["extras"]
        worker(extras["config_path"], TrainingOptions.model_validate(extras["options"]))
        return
    with open_dagster_pipes() as pipes:
        settings = load_settings(pipes.get_extra("config_path"))
        options = TrainingOptions.model_validate(pipes.get_extra("options"))
        tracker = Tracker.from_settings(
            settings.mlflow, settings.layout.mlflow_root, pipes.get_extra("tracking_uri")
        )
        tags = {**pipes.get_extra("tags"), "remote/host": socket.gethostname()}
        metadata = train_and_describe(
            settings, options, tracker, tags, pipes.log.info, on_record=pipes.report_custom_message
        )
        pipes.report_asset_materialization(
            metadata={**metadata, "remote_host": socket.gethostname(), "remote_pid": os.getpid()}
        )


if __name__ == "__main__":
    main()
