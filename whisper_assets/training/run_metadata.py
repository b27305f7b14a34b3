"""What a finished training run reports, as plain values: Dagster metadata locally, the same entries over
Dagster Pipes from a remote process (`{"raw_value", "type"}` marks the values that are paths, links or Markdown)."""

from __future__ import annotations

from whisper_assets import charts
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.runs import TrainedRun


def typed(kind: str, value: object) -> dict:
    """A value Dagster shows as `kind` (path, url, md, json), in Pipes' metadata form (which wants dicts typed)."""
    return {"raw_value": value, "type": kind}


def run_metadata(run: TrainedRun, options: TrainingOptions, mlflow_run_link: str) -> dict[str, object]:
    result = run.result
    return {
        "run": run.folder.name,
        "manifest_sha256": typed("json", {split: ref.sha256 for split, ref in run.manifests.items()}),
        "model_dir": typed("path", str(result.model_dir)),
        "base_model": options.base_model,
        "task": options.task,
        "language": options.language or "per item",
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "best_validation_wer": result.best_wer,
        "interpolation_share": result.interpolation,
        "window_seconds": result.window_seconds,
        "full_window_steps": result.full_window_steps,
        "device": result.device,
        "processes": result.processes,
        **run.folder.scope().fields(),
        "precision": result.precision,
        "train_seconds": round(result.train_seconds, 1),
        "audio_seconds_per_second": round(run.audio_seconds_per_second, 2),
        "feature_cache": typed("json", result.cache),
        "mlflow_run_id": run.mlflow_run_id,
        "mlflow_run": typed("url", mlflow_run_link),
        "model_version": run.model_version,
        "training_log": typed("path", str(run.log_path)),
        **{
            f"plot_{name}": typed("md", charts.markdown_image(figure, name))
            for name, figure in run.plots.items()
        },
    }
