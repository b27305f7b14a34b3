"""Hyperparameter sweeps: an Optuna study over training runs, each an MLflow child run of one parent.

A sweep lives in `models/sweeps/<sweep>/` (named by the base options, the search space and the manifests'
digests, not the trial budget) with its Optuna study in `optuna.db`. Running it again resumes it: finished
trials are kept, a trial whose process died is retried with the same parameters (its run folder resumes from
its checkpoints), and only the trials still missing are run. Trials are pruned on their validation WER (median
rule); the best trial's model is the one registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from whisper_assets.curation.manifests import ManifestRef
from whisper_assets.tracking.tracker import Tracker
from whisper_assets.training.options import SweepOptions, TrainingOptions
from whisper_assets.training.run_manifest import content_name
from whisper_assets.training.runs import TrainedRun, train_run

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
_DONE = (TrialState.COMPLETE, TrialState.PRUNED)
_HEARTBEAT_SECONDS = 30
_STALE_AFTER_SECONDS = 60  # a running trial without a heartbeat for this long belongs to a dead process


@dataclass(frozen=True)
class SweepResult:
    name: str
    folder: Path
    parent_run_id: str
    best: TrainedRun
    best_params: dict
    best_overrides: dict  # the training options that differ from the base: what to put in `training:`
    trials: dict[str, int]  # state -> count


def sweep_name(base: TrainingOptions, space: SweepOptions, digests: Mapping[str, str]) -> str:
    """Same base options, search space and data -> same sweep; the trial budget is left out, so raising it
    continues the study."""
    searched = space.model_dump(mode="json", exclude={"trials"})
    return content_name(
        "sweep", {"base": base.model_dump(mode="json"), "space": searched, "data": dict(digests)}
    )


def trial_options(trial: optuna.Trial, base: TrainingOptions, space: SweepOptions) -> TrainingOptions:
    """The base options with the trial's draws: learning rate (log-uniform), steps, method, LoRA rank."""
    draws: dict = {
        "learning_rate": trial.suggest_float(
            "learning_rate", space.learning_rate_min, space.learning_rate_max, log=True
        ),
        "max_steps": trial.suggest_categorical("max_steps", space.max_steps),
        "method": trial.suggest_categorical("method", space.methods),
    }
    if draws["method"] == "lora":
        draws["lora_rank"] = trial.suggest_categorical("lora_rank", space.lora_ranks)
        draws["lora_alpha"] = 2 * draws["lora_rank"]
    return base.model_copy(update=draws)


def run_sweep(
    base: TrainingOptions,
    space: SweepOptions,
    published: dict[str, ManifestRef],
    models_root: Path,
    features_root: Path,
    logs_root: Path,
    tracker: Tracker,
    tags: Mapping[str, str],
    progress: Callable[[str], None] = lambda _line: None,
    *,
    selection_items: Sequence[dict] = (),
) -> SweepResult:
    """Run (or resume) the sweep; register the best trial's model and return it. `selection_items`: as in
    `train_run`, for every trial."""
    name = sweep_name(base, space, {k: ref.sha256 for k, ref in published.items()})
    folder = models_root / "sweeps" / name
    folder.mkdir(parents=True, exist_ok=True)
    parent = _parent_run(folder, tracker, name, base, space, tags)
    storage = RDBStorage(
        f"sqlite:///{folder / 'optuna.db'}",
        heartbeat_interval=_HEARTBEAT_SECONDS,
        grace_period=_STALE_AFTER_SECONDS,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
    )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=space.pruning_startup_trials)
        if space.prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage, study_name=name, direction="minimize", pruner=pruner, load_if_exists=True
    )
    _retry_dead_trials(study)
    # Seeded by how far the study got: a resumed sweep is deterministic without repeating the first draws.
    study.sampler = optuna.samplers.TPESampler(seed=base.seed + len(study.trials))

    def objective(trial: optuna.Trial) -> float:
        options = trial_options(trial, base, space)
        progress(f"trial {trial.number}: {trial.params}")

        def prune_on_validation(record: dict) -> None:
            if record["stage"] == "eval" and record.get("wer") is not None:
                trial.report(record["wer"], record["step"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"validation WER {record['wer']:.4f} at step {record['step']}")

        run = train_run(
            options,
            published,
            models_root,
            features_root,
            logs_root,
            tracker,
            {**tags, PARENT_TAG: parent, "optuna_trial": str(trial.number)},
            progress,
            prune_on_validation,
            register=False,
            selection_items=selection_items,
        )
        tracker.finish(run.mlflow_run_id)
        trial.set_user_attr("run", run.folder.name)
        if run.result.best_wer is None:
            raise ValueError("a sweep needs validation items: the validation split is empty")
        return run.result.best_wer

    remaining = space.trials - len(study.get_trials(states=_DONE))
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, catch=())
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(f"sweep {name}: no trial completed (all pruned or failed)")
    best_trial = study.best_trial
    best_options = trial_options(optuna.trial.FixedTrial(best_trial.params), base, space)
    best = train_run(  # the best trial's run folder is finished: this only registers its model
        best_options,
        published,
        models_root,
        features_root,
        logs_root,
        tracker,
        {**tags, PARENT_TAG: parent, "optuna_trial": str(best_trial.number)},
        selection_items=selection_items,
    )
    counts = {state.name.lower(): len(study.get_trials(states=(state,))) for state in TrialState}
    tracker.log_metrics(parent, {"best_validation_wer": best_trial.value})
    tracker.set_tags(
        parent,
        {
            "best_trial": str(best_trial.number),
            "best_run": best.folder.name,
            "model_version": str(best.model_version),
        },
    )
    tracker.finish(parent)
    before, after = base.model_dump(), best_options.model_dump()
    overrides = {k: v for k, v in after.items() if v != before[k]}
    return SweepResult(
        name, folder, parent, best, best_trial.params, overrides, {k: v for k, v in counts.items() if v}
    )


def _parent_run(
    folder: Path,
    tracker: Tracker,
    name: str,
    base: TrainingOptions,
    space: SweepOptions,
    tags: Mapping[str, str],
) -> str:
    """The sweep's parent MLflow run: started once, reused when the sweep resumes."""
    record = folder / "mlflow_run_id"
    if record.exists():
        return record.read_text().strip()
    run_id = tracker.start_run(name, dict(tags))
    tracker.log_params(run_id, {f"space.{k}": v for k, v in space.model_dump(mode="json").items()})
    tracker.log_params(run_id, {f"base.{k}": v for k, v in base.model_dump(mode="json").items()})
    record.write_text(run_id)
    return run_id


def _retry_dead_trials(study: optuna.Study) -> None:
    """Fail (and so retry, with the same parameters) trials left running by a process that died."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        log.info("%d trial(s) left running by an earlier process", len(running))
        fail_stale_trials(study)
