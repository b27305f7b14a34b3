"""A training run from split manifests to a registered model: folder, MLflow run, resume, run manifest.

The run folder is named by a hash of the options and the manifests' digests, so materializing the same run
again resumes it from its newest complete checkpoint, or (when finished) re-publishes it without training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from whisper_assets import charts
from whisper_assets.asr.run_folder import RunFolder
from whisper_assets.curation.manifests import ManifestRef, read_manifest, role_set
from whisper_assets.reporting import hours_by
from whisper_assets.tracking.plots import CURVES, curve_figures
from whisper_assets.tracking.tracker import Tracker
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.run_manifest import git_commit, run_name, write_run_manifest
from whisper_assets.training.trainer import TrainResult, train

_LOGGED_EVERY = ("loss", "lr", "grad_norm", "wer", "gpu_memory_mb", "gpu_utilization", "interpolation_share")


@dataclass(frozen=True)
class TrainedRun:
    folder: RunFolder
    mlflow_run_id: str
    model_version: str | None  # None: not registered (a sweep trial)
    result: TrainResult
    manifests: dict[str, ManifestRef]
    log_path: Path
    plots: dict[str, Figure]  # training curves and hours per split, also logged to the MLflow run

    @property
    def audio_seconds_per_second(self) -> float:
        return self.result.audio_seconds / self.result.train_seconds if self.result.train_seconds else 0.0


def replay_rows(manifests: dict[str, ManifestRef]) -> list[dict]:
    """The rows of every replay set among the manifests (mixed into training at options.replay_share)."""
    prefix = role_set("replay", "")
    return [
        row for name, ref in manifests.items() if name.startswith(prefix) for row in read_manifest(ref.path)
    ]


def run_log_path(logs_root: Path, run: str) -> Path:
    """The run's JSON-lines training log (written by the main process, read back by every process)."""
    return logs_root / "training" / f"{run}.log"


def progress_line(record: dict, max_steps: int) -> str | None:
    """The human line for a training or validation record ("train step 3/40: loss 2.1"), read for ETAs."""
    if record["stage"] not in ("train", "eval"):
        return None
    shown = ", ".join(f"{k} {record[k]:.4g}" for k in ("loss", "wer") if k in record)
    return f"{record['stage']} step {record['step']}/{max_steps}: {shown}"


def train_run(
    options: TrainingOptions,
    published: dict[str, ManifestRef],
    models_root: Path,
    features_root: Path,
    logs_root: Path,
    tracker: Tracker,
    tags: Mapping[str, str],
    progress: Callable[[str], None] = lambda _line: None,
    on_record: Callable[[dict], None] = lambda _record: None,
    *,
    register: bool = True,
    selection_items: Sequence[dict] = (),
) -> TrainedRun:
    """Train (or resume, or re-publish) the run these options and manifests define (the splits, and the replay
    sets when options.replay_share is set); register its model unless `register` is off. `on_record` sees every
    training and validation record (a sweep prunes on them). `selection_items` (general speech that is not the
    gate's) hold an auto interpolation share to where the model forgets little."""
    name = run_name(options, {split: ref.sha256 for split, ref in published.items()})
    folder = RunFolder.of(models_root, name)
    manifests = folder.snapshot_manifests(published)
    run_id = _mlflow_run(folder, tracker, options, manifests, tags)

    def record_step(record: dict) -> None:
        metrics = {k: record[k] for k in _LOGGED_EVERY if k in record}
        if metrics and "step" in record:
            tracker.log_metrics(run_id, metrics, step=record["step"])
        if line := progress_line(record, options.max_steps):
            progress(line)
        on_record(record)

    log_path = run_log_path(logs_root, name)
    try:
        result = train(
            options,
            read_manifest(manifests["train"].path),
            read_manifest(manifests["validation"].path),
            folder.root,
            features_root,
            log_path,
            record_step,
            replay_items=replay_rows(manifests),
            general_items=selection_items,
        )
    except Exception:
        tracker.finish(run_id, ok=False)
        raise
    write_run_manifest(
        folder.run_manifest_path,
        options,
        manifests,
        run=name,
        mlflow_run_id=run_id,
        steps=result.steps,
        best_wer=result.best_wer,
        best_step=result.best_step,
        interpolation=result.interpolation,
        window_seconds=result.window_seconds,
        full_window_steps=result.full_window_steps,
        precision=result.precision,
        device=result.device,
        samples=result.samples,
        feature_cache=result.cache,
    )
    version = _register_once(folder, tracker, run_id, result) if register else None
    return TrainedRun(
        folder, run_id, version, result, manifests, log_path, log_plots(tracker, run_id, manifests)
    )


def train_as_worker(
    options: TrainingOptions,
    published: dict[str, ManifestRef],
    models_root: Path,
    features_root: Path,
    logs_root: Path,
) -> None:
    """A data-parallel worker process (rank > 0 under torchrun or `accelerate launch`) of the run that rank 0
    drives with `train_run`: the same run folder and data, its shard of every batch, and no tracking or
    registration of its own (the trainer lets only the main process log, validate and checkpoint)."""
    name = run_name(options, {split: ref.sha256 for split, ref in published.items()})
    replay = replay_rows(published)
    train(
        options,
        read_manifest(published["train"].path),
        read_manifest(published["validation"].path),
        RunFolder.of(models_root, name).root,
        features_root,
        run_log_path(logs_root, name),
        replay_items=replay,
    )


def log_plots(tracker: Tracker, run_id: str, manifests: dict[str, ManifestRef]) -> dict[str, Figure]:
    """Draw the run's training curves and the hours it trained and validated on, and log them under plots/."""
    curves = curve_figures({"run": tracker.metric_history(run_id, list(CURVES))})
    hours = {split: hours_by(read_manifest(ref.path), "language") for split, ref in manifests.items()}
    plots = {**curves, "hours_per_split": charts.bars(hours, "Hours per split", "hours")}
    for name, figure in plots.items():
        tracker.log_figure(run_id, figure, f"plots/{name}.png")
    return plots


def _mlflow_run(
    folder: RunFolder,
    tracker: Tracker,
    options: TrainingOptions,
    manifests: dict[str, ManifestRef],
    tags: Mapping[str, str],
) -> str:
    """The run's MLflow run: started once, then reused by every resume."""
    if run_id := folder.mlflow_run_id():
        return run_id
    run_id = tracker.start_run(folder.name, {**tags, "git_commit": str(git_commit())})
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.mlflow_run_id_path.write_text(run_id)
    tracker.log_params(run_id, options.model_dump(mode="json"))
    tracker.log_datasets(run_id, manifests)
    return run_id


def _register_once(folder: RunFolder, tracker: Tracker, run_id: str, result: TrainResult) -> str:
    """Log the model and register a version tagged with its scope (max input length, general or not), unless a
    finished run already did."""
    if version := folder.model_version():
        return version
    scope = folder.scope().tags()
    tracker.set_tags(run_id, scope)
    source = tracker.log_artifacts(run_id, result.model_dir, "model")
    tracker.log_file(run_id, folder.run_manifest_path)
    tracker.log_metrics(
        run_id,
        {
            "train_seconds": result.train_seconds,
            "audio_seconds": result.audio_seconds,
            "window_seconds": result.window_seconds,  # the auto window, resolved
            "full_window_steps": result.full_window_steps,
        },
    )
    version = tracker.register(run_id, source, scope)
    folder.model_version_path.write_text(version)
    return version
