"""Model assets: whisper_model (GPU pool) -> eval_metrics (champion gate) -> exported_model."""

import json
from pathlib import Path

import dagster as dg

from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.evaluation.report import (
    UTTERANCE_SCHEMA,
    champion_gate,
    evaluate_model,
    summarize,
    table_rows,
)
from whisper_assets.export.ctranslate import export_ctranslate2, transcribe_exported
from whisper_assets.reporting import markdown_table
from whisper_assets.settings import Settings
from whisper_assets.sources.prepare import mark_reviewed_rows_trained
from whisper_assets.tables import table_path, write_rows
from whisper_assets.tracking import Tracker, default_tracking_uri
from whisper_assets.training.data import manifest_digest, read_manifest
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.run_manifest import git_commit, run_name, write_run_manifest
from whisper_assets.training.trainer import train

GROUP = "model"
CHAMPION_CHECK = "champion_gate"
GPU_K8S_CONFIG = {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}
_LOGGED_EVERY = ("loss", "lr", "grad_norm", "wer", "gpu_memory_mb", "gpu_utilization")


class TrainingConfig(dg.Config, TrainingOptions):
    """Launchpad knobs; any field left out takes the settings file's `training:` value."""


class MlflowTracking(dg.ConfigurableResource):
    """MLflow tracking: the settings file's `mlflow:` section unless overridden here (e.g. by EnvVar)."""

    tracking_uri: str | None = None

    def tracker(self, settings: Settings) -> Tracker:
        uri = self.tracking_uri or settings.mlflow.tracking_uri or default_tracking_uri(settings.data_root)
        return Tracker(
            uri,
            settings.mlflow.experiment,
            settings.mlflow.registered_model,
            artifact_root=settings.data_root / "mlflow" / "artifacts",
        )


def effective_options(settings: Settings, config: TrainingConfig) -> TrainingOptions:
    """Settings-file defaults, overridden by the fields set explicitly in the run config."""
    overrides = {name: getattr(config, name) for name in config.model_fields_set}
    return settings.training.model_copy(update=overrides)


def split_manifests(settings: Settings) -> dict[str, tuple[Path, str]]:
    folder = settings.manifests_root / "splits"
    manifests = {}
    for name in ("train", "validation", "test"):
        path = folder / f"{name}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: materialize `splits` first")
        manifests[name] = (path, manifest_digest(path))
    return manifests


def latest_metadata(context: dg.AssetExecutionContext, asset: str) -> dict:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"`{asset}` has never been materialized")
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset(
    group_name=GROUP,
    deps=["splits"],
    pool="gpu",
    kinds={"pytorch", "mlflow"},
    tags={"compute": "gpu"},
    op_tags={"dagster-k8s/config": GPU_K8S_CONFIG},
    description="Fine-tuned Whisper (safetensors + processor) under models/whisper/<run>/, logged to MLflow.",
)
def whisper_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    settings = platform.settings
    options = effective_options(settings, config)
    manifests = split_manifests(settings)
    name = run_name(options, {k: digest for k, (_, digest) in manifests.items()})
    run_dir = settings.models_root / "whisper" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    tracker = mlflow.tracker(settings)
    run_id_file = run_dir / "mlflow_run_id"
    if run_id_file.exists():  # a resumed run keeps logging into its MLflow run
        run_id = run_id_file.read_text().strip()
    else:
        run_id = tracker.start_run(
            name,
            {
                "dagster/run_id": context.run.run_id,
                "dagster/asset": "whisper_model",
                "git_commit": str(git_commit()),
            },
        )
        run_id_file.write_text(run_id)
        tracker.log_params(run_id, options.model_dump(mode="json"))
        tracker.log_datasets(run_id, manifests)

    def to_mlflow(record: dict) -> None:
        metrics = {k: record[k] for k in _LOGGED_EVERY if k in record}
        if metrics and "step" in record:
            tracker.log_metrics(run_id, metrics, step=record["step"])
        if record["stage"] in (
            "train",
            "eval",
        ):  # progress in the run's log (the review app reads it for ETA)
            shown = ", ".join(f"{k} {record[k]:.4g}" for k in ("loss", "wer") if k in record)
            context.log.info(f"{record['stage']} step {record['step']}/{options.max_steps}: {shown}")

    try:
        result = train(
            options,
            read_manifest(manifests["train"][0]),
            read_manifest(manifests["validation"][0]),
            run_dir,
            settings.data_root / "data" / "features",
            settings.logs_root / "training" / f"{name}.log",
            to_mlflow,
        )
    except Exception:
        tracker.finish(run_id, ok=False)
        raise
    facts = {
        "run": name,
        "mlflow_run_id": run_id,
        "steps": result.steps,
        "best_wer": result.best_wer,
        "best_step": result.best_step,
        "precision": result.precision,
        "device": result.device,
        "samples": result.samples,
        "feature_cache": result.cache,
    }
    write_run_manifest(run_dir / "run_manifest.json", options, manifests, **facts)
    version_file = run_dir / "mlflow_model_version"
    if version_file.exists():  # a finished run materialized again: already logged and registered
        version = version_file.read_text().strip()
    else:
        source = tracker.log_artifacts(run_id, result.model_dir, "model")
        tracker.log_file(run_id, run_dir / "run_manifest.json")
        tracker.log_metrics(
            run_id, {"train_seconds": result.train_seconds, "audio_seconds": result.audio_seconds}
        )
        version = tracker.register(run_id, source)
        version_file.write_text(version)
    marked = mark_reviewed_rows_trained(settings, read_manifest(manifests["train"][0]))
    throughput = result.audio_seconds / result.train_seconds if result.train_seconds else 0.0
    return dg.MaterializeResult(
        metadata={
            "run": name,
            "manifest_sha256": {k: digest for k, (_, digest) in manifests.items()},
            "model_dir": dg.MetadataValue.path(str(result.model_dir)),
            "base_model": options.base_model,
            "task": options.task,
            "language": options.language or "per item",
            "steps": result.steps,
            "resumed_from_step": result.resumed_from_step,
            "best_validation_wer": result.best_wer,
            "device": result.device,
            "precision": result.precision,
            "audio_seconds_per_second": round(throughput, 2),
            "feature_cache": result.cache,
            "mlflow_run_id": run_id,
            "mlflow_run": dg.MetadataValue.url(tracker.run_link(run_id)),
            "model_version": version,
            "review_rows_marked_trained": marked,
            "training_log": dg.MetadataValue.path(str(settings.logs_root / "training" / f"{name}.log")),
        }
    )


class EvaluationConfig(dg.Config):
    max_items: int | None = None  # per split; default from the settings file's `evaluation:`


@dg.asset(
    group_name=GROUP,
    deps=["whisper_model", "splits"],
    pool="gpu",
    kinds={"parquet", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            CHAMPION_CHECK,
            asset="eval_metrics",
            blocking=True,
            description="The model is no worse than its base (and the champion) and meets the WER target.",
        )
    ],
    description="WER/CER of the fine-tuned model and its base on test and validation; promotes the champion.",
)
def eval_metrics(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    settings = platform.settings
    trained = latest_metadata(context, "whisper_model")
    run, run_id, version = trained["run"], trained["mlflow_run_id"], str(trained["model_version"])
    options = TrainingOptions.model_validate(
        json.loads((settings.models_root / "whisper" / run / "run_manifest.json").read_text())[
            "hyperparameters"
        ]
    )
    limit = config.max_items or settings.evaluation.max_items
    manifests = split_manifests(settings)
    items = {split: read_manifest(manifests[split][0])[:limit] for split in ("test", "validation")}
    kwargs = {
        "task": options.task,
        "language": options.language,
        "batch_size": settings.evaluation.batch_size,
        "max_new_tokens": options.generation_max_tokens,
    }
    rows = {
        "finetuned": evaluate_model(trained["model_dir"], items, **kwargs),
        "base": evaluate_model(options.base_model, items, **kwargs),
    }
    summaries = {
        model: {split: summarize([r for r in model_rows if r["split"] == split]) for split in items}
        for model, model_rows in rows.items()
    }
    table = [row for model, model_rows in rows.items() for row in table_rows(model_rows, run, model)]
    write_rows(table_path(settings.tables_root, "eval_utterances", run), table, UTTERANCE_SCHEMA)
    report_path = settings.manifests_root / f"eval_{run}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps({"run": run, "model_version": version, **summaries}, indent=2))

    tracker = mlflow.tracker(settings)
    flat = {
        f"{split}_{metric}" + ("" if model == "finetuned" else "_base"): value
        for model, by_split in summaries.items()
        for split, summary in by_split.items()
        for metric, value in summary["overall"].items()
    }
    tracker.log_metrics(run_id, flat)
    tracker.log_file(run_id, report_path)
    test_wer, base_wer = flat["test_wer_normalized"], flat["test_wer_normalized_base"]
    champion = tracker.champion()
    champion_wer = None
    if champion and champion != version:
        champion_wer = tracker.run_metrics(tracker.version_run(champion)).get("test_wer_normalized")
    decision = champion_gate(test_wer, base_wer, settings.evaluation.wer_target, champion_wer)
    if decision.passed:
        tracker.set_champion(version)
    tracker.finish(run_id)
    overall = summaries["finetuned"]["test"]["overall"]
    wer_table = [
        {
            "model": model,
            "split": split,
            **{
                k: s["overall"][k]
                for k in (
                    "wer_orthographic",
                    "wer_normalized",
                    "wer_folded",
                    "cer_normalized",
                    "utterances",
                    "hallucinations",
                )
            },
        }
        for model, by_split in summaries.items()
        for split, s in by_split.items()
    ]
    return dg.MaterializeResult(
        metadata={
            "run": run,
            "model_version": version,
            "test_wer": test_wer,
            "test_wer_base": base_wer,
            "test_cer": overall["cer_normalized"],
            "by_language": summaries["finetuned"]["test"]["by_language"],
            "wer_table": dg.MetadataValue.md(markdown_table(wer_table, list(wer_table[0]))),
            "report": dg.MetadataValue.path(str(report_path)),
            "champion": version if decision.passed else (champion or "none"),
            "mlflow_run": dg.MetadataValue.url(tracker.run_link(run_id)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHAMPION_CHECK,
                passed=decision.passed,
                description=decision.reason,
                metadata={
                    "test_wer": test_wer,
                    "base_wer": base_wer,
                    "champion_wer": champion_wer,
                    "target": settings.evaluation.wer_target,
                },
            )
        ],
    )


class ExportConfig(dg.Config):
    quantization: str = "int8"  # or float16, int8_float16, float32


@dg.asset(
    group_name=GROUP,
    deps=["eval_metrics"],
    kinds={"ctranslate2"},
    description="The champion-gated model converted to CTranslate2 for faster-whisper (extra `export`).",
)
def exported_model(
    context: dg.AssetExecutionContext, config: ExportConfig, platform: PlatformSettings
) -> dg.MaterializeResult:
    settings = platform.settings
    trained = latest_metadata(context, "whisper_model")
    out_dir = settings.models_root / "exported" / f"{trained['run']}-ct2-{config.quantization}"
    export_ctranslate2(Path(trained["model_dir"]), out_dir, config.quantization)
    clip = read_manifest(settings.manifests_root / "splits" / "test.jsonl")[:1]
    compute_type = "int8" if config.quantization.startswith("int8") else "default"
    hypothesis = (
        transcribe_exported(out_dir, clip[0]["audio"], clip[0]["language"], compute_type) if clip else ""
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out_dir)),
            "quantization": config.quantization,
            "verified_on": clip[0]["id"] if clip else "no test clip",
            "reference": clip[0]["transcript"] if clip else "",
            "faster_whisper_output": hypothesis,
            "size_mb": round(sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file()) / 2**20, 2),
        }
    )


training_job = dg.define_asset_job(
    "train_and_evaluate",
    selection=dg.AssetSelection.assets(whisper_model, eval_metrics, exported_model),
    description="Fine-tune on the current splits, evaluate against the base model, export if promoted.",
)
