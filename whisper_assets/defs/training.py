"""Model assets: whisper_model (GPU pool) -> eval_metrics (champion gate) -> exported_model, and the
write-back of what was trained on to the sources that record it."""

import sys
from collections.abc import Callable

import dagster as dg

from whisper_assets.asr.run_folder import RunFolder
from whisper_assets.curation.manifests import read_manifest, training_manifests
from whisper_assets.defs.compute import GPU_POOL
from whisper_assets.defs.curation import catalog
from whisper_assets.defs.resources import (
    MlflowTracking,
    PlatformSettings,
    latest_metadata,
    store_copies,
    with_overrides,
)
from whisper_assets.reporting import markdown_table
from whisper_assets.settings import Settings
from whisper_assets.training.options import SweepOptions, TrainingOptions

GROUP = "model"
CHAMPION_CHECK = "champion_gate"


class TrainingConfig(dg.Config, TrainingOptions):
    """Launchpad knobs; any field left out takes the settings file's `training:` value."""


class SweepConfig(dg.Config, SweepOptions):
    """The search space and trial budget; the training options swept around are the settings file's."""


class EvaluationConfig(dg.Config):
    max_items: int | None = None  # per split; default from the settings file's `evaluation:`


class ExportConfig(dg.Config):
    quantization: str = "int8"  # or float16, int8_float16, float32


def latest_run(context: dg.AssetExecutionContext, settings: Settings) -> RunFolder:
    """The run folder of the latest `whisper_model` materialization."""
    trained = latest_metadata(context.instance, "whisper_model")
    if trained is None:
        raise dg.Failure("`whisper_model` has never been materialized")
    return RunFolder.of(settings.layout.models_root, trained["run"])


@dg.asset(
    group_name=GROUP,
    deps=["splits"],
    pool=GPU_POOL,
    kinds={"pytorch", "mlflow"},
    tags={"compute": "gpu"},
    description="Fine-tuned Whisper (safetensors + processor) under models/whisper/<run>/, logged to MLflow.",
)
def whisper_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
    training_pipes: dg.ResourceParam[dg.PipesClient],
) -> dg.MaterializeResult:
    settings = platform.settings
    options = with_overrides(settings.training, config, context)
    tags = {"dagster/run_id": context.run.run_id, "dagster/asset": "whisper_model"}
    if settings.compute.remote_training == "off":
        described = train_and_describe(settings, options, mlflow.tracker(settings), tags, context.log.info)
        name, metadata = described["run"], as_metadata(described)
    else:
        metadata = train_remotely(context, training_pipes, platform, options, mlflow.tracking_uri, tags)
        name = metadata["run"].value  # Pipes hands metadata back as Dagster's typed values
    run = RunFolder.of(settings.layout.models_root, name)
    return dg.MaterializeResult(
        metadata={**metadata, **store_copies(settings, run.model_dir, run.run_manifest_path)}
    )


def train_and_describe(
    settings: Settings,
    options: TrainingOptions,
    tracker,
    tags: dict[str, str],
    log: Callable[[str], None],
    on_record: Callable[[dict], None] = lambda _record: None,
) -> dict[str, object]:
    """Train (or resume, or re-publish) the run these options and the published splits name; its metadata."""
    # torch and transformers: imported only in training runs
    from whisper_assets.training.run_metadata import run_metadata
    from whisper_assets.training.runs import train_run

    layout = settings.layout
    manifests = training_manifests(layout.manifests_root, options.replay_share > 0)
    run = train_run(
        options,
        manifests,
        layout.models_root,
        layout.features_root,
        layout.logs_root,
        tracker,
        tags,
        log,
        on_record,
        selection_items=selection_items(settings, options),
    )
    return run_metadata(run, options, tracker.run_link(run.mlflow_run_id))


def selection_items(settings: Settings, options: TrainingOptions) -> list[dict]:
    """The built-in general selection set of the sources' languages (those of `general_speech_set`), on which an
    auto interpolation share is held to where the model forgets little (none with a fixed share)."""
    from whisper_assets.evaluation.general_set import selection_rows

    if options.interpolation is not None:
        return []
    languages = {options.language} if options.language else general_languages(settings)
    return selection_rows(languages, settings.layout.general_speech_root)


def general_languages(settings: Settings) -> set[str]:
    """The languages the built-in general sets are made for: every source's, and the default."""
    return {source.language for source in settings.sources} | {settings.default_language}


def train_remotely(
    context: dg.AssetExecutionContext,
    client: dg.PipesClient,
    platform: PlatformSettings,
    options: TrainingOptions,
    tracking_uri: str | None,
    tags: dict[str, str],
) -> dict[str, object]:
    """Run `whisper_assets.defs.remote_training` through Dagster Pipes (a subprocess or a Kubernetes pod) on the
    same data root; its log lines, per-step records and materialization come back to this step."""
    compute = platform.settings.compute
    extras = {
        "config_path": platform.config_path,
        "options": options.model_dump(mode="json"),
        "tracking_uri": tracking_uri,
        "tags": tags,
    }
    if compute.remote_training == "subprocess":
        python = compute.remote_python or sys.executable
        invocation = client.run(command=compute.remote_command(python), context=context, extras=extras)
    else:
        invocation = client.run(
            context=context,
            extras=extras,
            image=compute.gpu_pod.image,
            command=compute.remote_command("python"),
            base_pod_spec=compute.remote_pod_spec(),
        )
    records = invocation.get_custom_messages()
    context.log.info(f"remote training reported {len(records)} step records")
    reported = invocation.get_materialize_result().metadata or {}
    return {**reported, "remote_step_records": len(records)}


_TYPED = {
    "path": dg.MetadataValue.path,
    "url": dg.MetadataValue.url,
    "md": dg.MetadataValue.md,
    "json": dg.MetadataValue.json,
}


def as_metadata(entries: dict[str, object]) -> dict[str, object]:
    """Plain values stay (Dagster infers text, numbers, JSON); {"raw_value", "type"} entries become typed values."""
    return {
        key: _TYPED[value["type"]](value["raw_value"])
        if isinstance(value, dict) and set(value) == {"raw_value", "type"}
        else value
        for key, value in entries.items()
    }


@dg.asset(
    group_name=GROUP,
    deps=[whisper_model],
    kinds={"sqlite"},
    description="Marks the items the latest model trained on in the sources that record it (review databases).",
)
def trained_items_marked(
    context: dg.AssetExecutionContext, platform: PlatformSettings
) -> dg.MaterializeResult:
    from whisper_assets.curation.inventory import mark_trained

    settings = platform.settings
    run = latest_run(context, settings)
    marked = mark_trained(settings.discover_sources(), read_manifest(run.manifest("train")))
    return dg.MaterializeResult(metadata={"run": run.name, "marked_trained": marked})


@dg.asset(
    group_name=GROUP,
    kinds={"wav", "jsonl"},
    description="General speech made offline (espeak-ng sentences in voices no other set uses) for every language "
    "of the sources that has sentences built in: the forgetting check of `eval_metrics` when no source has "
    "`role: regression` (a real regression source is better, and takes precedence). Versioned by sentences, "
    "voices and espeak-ng release; built once per version.",
)
def general_speech_set(platform: PlatformSettings) -> dg.MaterializeResult:
    from whisper_assets.audio.espeak import espeak_available
    from whisper_assets.curation.manifests import read_manifest
    from whisper_assets.evaluation.general_set import general_language, general_sets

    settings = platform.settings
    languages = general_languages(settings)
    sets = general_sets(languages, settings.layout.general_speech_root)
    return dg.MaterializeResult(
        metadata={
            "sets": {name: str(path) for name, path in sets.items()},
            "items": {name: len(read_manifest(path)) for name, path in sets.items()},
            "languages_without_sentences": sorted(
                language for language in languages if not general_language(language)
            ),
            "espeak_ng": espeak_available(),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[whisper_model, "splits", general_speech_set],
    pool=GPU_POOL,
    kinds={"parquet", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            CHAMPION_CHECK,
            asset="eval_metrics",
            blocking=True,
            description="The model is no worse than its base (and the champion) on the test split, meets the WER "
            "target, and no regression set's WER rose more than evaluation.max_regression_points over the base.",
        )
    ],
    description="WER/CER of the fine-tuned model and its base on test, validation and every regression set (at "
    "full length); promotes the champion.",
)
def eval_metrics(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    from whisper_assets.evaluation.dashboard import dashboard_path
    from whisper_assets.evaluation.run import evaluate_run

    settings = platform.settings
    layout = settings.layout
    tracker = mlflow.tracker(settings)
    evaluation = evaluate_run(
        latest_run(context, settings),
        tracker,
        settings.evaluation,
        layout.tables_root,
        layout.manifests_root,
        layout.general_speech_root,
        config.max_items,
    )
    overall = evaluation.summaries["finetuned"]["test"]["overall"]
    wer_table = evaluation.wer_table()
    return dg.MaterializeResult(
        metadata={
            "run": evaluation.run,
            "model_version": evaluation.model_version,
            "test_wer": evaluation.test_wer,
            "test_wer_base": evaluation.base_wer,
            "test_cer": overall["cer_normalized"],
            "by_language": evaluation.summaries["finetuned"]["test"]["by_language"],
            "wer_table": dg.MetadataValue.md(markdown_table(wer_table, list(wer_table[0]))),
            "regression_points": {r.name: r.points for r in evaluation.regressions},
            **evaluation.scope.fields(),
            "report": dg.MetadataValue.path(str(evaluation.report_path)),
            "dashboard": dg.MetadataValue.path(str(dashboard_path(layout, evaluation.run))),
            "champion": evaluation.champion or "none",
            "mlflow_run": dg.MetadataValue.url(tracker.run_link(evaluation.mlflow_run_id)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHAMPION_CHECK,
                passed=evaluation.decision.passed,
                description=evaluation.decision.reason,
                metadata={
                    "test_wer": evaluation.test_wer,
                    "base_wer": evaluation.base_wer,
                    "champion_wer": evaluation.champion_wer,
                    "target": settings.evaluation.wer_target,
                    "regression_points": {r.name: r.points for r in evaluation.regressions},
                    "max_regression_points": settings.evaluation.max_regression_points,
                    "general_model": evaluation.scope.general,
                },
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    deps=[eval_metrics],
    kinds={"html", "mlflow"},
    description="reports/<run>/index.html: the latest evaluation at a glance (WER/CER per language, source, "
    "speaker and duration, forgetting, word confusions, worst utterances with audio, training curves), and the "
    "same page beside the champion's; both logged to the run in MLflow.",
)
def eval_dashboard(
    context: dg.AssetExecutionContext, platform: PlatformSettings, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    from whisper_assets.evaluation.dashboard import comparison_run, write_dashboard

    settings = platform.settings
    layout = settings.layout
    tracker = mlflow.tracker(settings)
    run = latest_run(context, settings)
    pages = {"dashboard": write_dashboard([run.name], layout, tracker)}
    links = {"mlflow_runs": tracker.experiment_link()}
    if versus := comparison_run(run.name, run.model_version(), layout, tracker):
        pages["versus"] = write_dashboard([versus, run.name], layout, tracker)
        other = RunFolder.of(layout.models_root, versus).mlflow_run_id()
        links["mlflow_compare"] = tracker.compare_link([other, run.mlflow_run_id()])
    for page in pages.values():
        tracker.log_file(run.mlflow_run_id(), page, "dashboard")
    return dg.MaterializeResult(
        metadata={
            "run": run.name,
            "compared_with": versus or "no other evaluated run",
            **{name: dg.MetadataValue.path(str(page)) for name, page in pages.items()},
            **{name: dg.MetadataValue.url(link) for name, link in links.items()},
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[eval_metrics],
    kinds={"ctranslate2"},
    description="The champion-gated model converted to CTranslate2 for faster-whisper (extra `export`), logged "
    "next to the run's model in MLflow, where the transcription server finds it.",
)
def exported_model(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    from whisper_assets.export.ctranslate import export_run

    settings = platform.settings
    run = latest_run(context, settings)
    exported = export_run(run, settings.layout.models_root / "exported", config.quantization)
    version = run.model_version()
    artifact = mlflow.tracker(settings).record_export(
        version, run.mlflow_run_id(), exported.path, config.quantization
    )
    clip = exported.checked_on or {}
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(exported.path)),
            "model_version": version,
            "mlflow_artifact": artifact,
            "quantization": exported.quantization,
            "verified_on": clip.get("id", "no test clip"),
            "reference": clip.get("transcript", ""),
            "faster_whisper_output": exported.hypothesis,
            "size_mb": exported.size_mb,
            **exported.scope.fields(),
            **store_copies(settings, exported.path),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=["splits"],
    pool=GPU_POOL,
    kinds={"pytorch", "optuna", "mlflow"},
    tags={"compute": "gpu"},
    description="Optuna sweep over learning rate, steps, method and LoRA rank around the settings' training "
    "options: each trial an MLflow child run of one parent, pruned on validation WER; the best trial's model is "
    "registered. Re-materializing resumes the sweep.",
)
def whisper_sweep(
    context: dg.AssetExecutionContext,
    config: SweepConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    from whisper_assets.training.sweep import run_sweep  # optuna, torch and transformers: only in sweep runs

    settings = platform.settings
    layout = settings.layout
    manifests = training_manifests(layout.manifests_root, settings.training.replay_share > 0)
    tracker = mlflow.tracker(settings)
    sweep = run_sweep(
        settings.training,
        SweepOptions.model_validate(config.model_dump()),
        manifests,
        layout.models_root,
        layout.features_root,
        layout.logs_root,
        tracker,
        {"dagster/run_id": context.run.run_id, "dagster/asset": "whisper_sweep"},
        context.log.info,
        selection_items=selection_items(settings, settings.training),
    )
    best = sweep.best
    return dg.MaterializeResult(
        metadata={
            "sweep": sweep.name,
            "trials": sweep.trials,
            "best_params": sweep.best_params,
            "training_overrides": sweep.best_overrides,
            "best_validation_wer": best.result.best_wer,
            "best_run": best.folder.name,
            "model_dir": dg.MetadataValue.path(str(best.result.model_dir)),
            "model_version": best.model_version,
            "mlflow_parent_run": dg.MetadataValue.url(tracker.run_link(sweep.parent_run_id)),
            "optuna_storage": dg.MetadataValue.path(str(sweep.folder / "optuna.db")),
        }
    )


training_assets = [
    whisper_model,
    trained_items_marked,
    general_speech_set,
    eval_metrics,
    eval_dashboard,
    exported_model,
]
model_assets = [*training_assets, whisper_sweep]
training_job_assets = [*training_assets, catalog]  # a sweep is its own job: retraining never starts one
training_job = dg.define_asset_job(
    "train_and_evaluate",
    selection=dg.AssetSelection.assets(*training_job_assets),
    description="Fine-tune on the current splits, evaluate against the base model, export if promoted; mark "
    "what was trained on in the review databases; refresh the DuckDB views.",
)
sweep_job = dg.define_asset_job(
    "sweep",
    selection=dg.AssetSelection.assets(whisper_sweep),
    description="Search training hyperparameters on the current splits (Optuna, one MLflow parent run); the "
    "best trial's model is registered.",
)
