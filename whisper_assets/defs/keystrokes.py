"""The keystroke model family, per recordings source: keystroke_manifests -> keystroke_vocabulary ->
keystroke_features -> keystroke_model (GPU pool, MLflow) -> keystroke_evaluation.

A recordings source (`kind: http_recordings`) with `keystrokes: true` feeds it. The sync schedule mirrors the
endpoint (`inventory`); the `keystroke_data_after_sync` sensor then refreshes the data assets of that partition,
and `retrain_keystrokes` (stopped by default, like `retrain_on_new_data`) retrains when the manifest changed.
"""

import json

import dagster as dg

from whisper_assets.defs.compute import GPU_POOL
from whisper_assets.defs.ingest import inventory
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import MlflowTracking, PlatformSettings, latest_metadata, with_overrides
from whisper_assets.defs.schedules import IN_PROGRESS
from whisper_assets.keystrokes.manifests import build_manifest, read_manifest
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.reporting import count_reasons, markdown_table
from whisper_assets.settings import Settings
from whisper_assets.sources.http_recordings import HttpRecordingsSource

GROUP = "keystrokes"


class KeystrokeConfig(dg.Config, KeystrokeOptions):
    """Launchpad knobs; any field left out takes the settings file's `keystrokes:` value."""


def keystroke_source(settings: Settings, name: str) -> HttpRecordingsSource:
    source = settings.source(name)
    if not isinstance(source, HttpRecordingsSource) or not source.keystrokes:
        raise dg.Failure(
            f"source {name!r} does not feed the keystroke model: it must be `kind: http_recordings` with "
            "`keystrokes: true` in the settings file"
        )
    return source


def keystroke_sources(settings: Settings) -> list[str]:
    return [s.name for s in settings.sources if isinstance(s, HttpRecordingsSource) and s.keystrokes]


def _folders(settings: Settings, name: str):
    root = settings.layout.keystrokes_root / name
    return root / "manifests", root / "tokenizer"


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"json"},
    deps=[inventory],
    description="One row per typing recording of the mirrored endpoint (audio path, normalized key events, "
    "split, sha256 of the raw JSON, duration), the stored train/test map, and rejections with reasons.",
)
def keystroke_manifests(
    context: dg.AssetExecutionContext, platform: PlatformSettings
) -> dg.MaterializeResult:
    settings = platform.settings
    source = keystroke_source(settings, context.partition_key)
    manifests, _ = _folders(settings, source.name)
    manifest = build_manifest(source.folder(settings.layout), manifests, settings.layout.data_root)
    if manifest.rejections:
        context.log.warning(
            f"{len(manifest.rejections)} recordings rejected: see {manifests / 'rejections.jsonl'}"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(manifest.rows),
            "train": len(manifest.split("train")),
            "test": len(manifest.split("test")),
            "hours": round(sum(r["duration"] for r in manifest.rows) / 3600, 4),
            "rejected": len(manifest.rejections),
            "rejections": count_reasons(r["reason"].split(":")[0] for r in manifest.rejections),
            "manifest_sha256": manifest.sha256,
            "manifest_folder": dg.MetadataValue.path(str(manifests)),
            "preview": dg.MetadataValue.md(
                markdown_table(manifest.rows, ("id", "split", "duration", "keyboard"))
            ),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"json"},
    deps=[keystroke_manifests],
    description="`<pad> <s> </s> <unk>` and `<code>_DOWN`/`<code>_UP` for every code in the manifest: a fast "
    "tokenizer plus vocab.json under keystrokes/<source>/tokenizer/.",
)
def keystroke_vocabulary(
    context: dg.AssetExecutionContext, platform: PlatformSettings
) -> dg.MaterializeResult:
    from whisper_assets.keystrokes.vocabulary import save_tokenizer  # transformers: only in runs that need it

    settings = platform.settings
    manifests, tokenizer_dir = _folders(settings, keystroke_source(settings, context.partition_key).name)
    tokenizer, digest = save_tokenizer(read_manifest(manifests).rows, tokenizer_dir)
    codes = sorted({t.rsplit("_", 1)[0] for t in tokenizer.get_vocab() if t.endswith(("_DOWN", "_UP"))})
    return dg.MaterializeResult(
        metadata={
            "tokens": len(tokenizer),
            "codes": ", ".join(codes),
            "vocab_sha256": digest,
            "tokenizer_folder": dg.MetadataValue.path(str(tokenizer_dir)),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"numpy"},
    deps=[keystroke_vocabulary],
    description="Log-mel features, labels and attention masks per recording (memory-mapped .npy with a "
    ".meta.json), content-addressed under data/features/keystrokes/; training reads the same entries.",
)
def keystroke_features(
    context: dg.AssetExecutionContext, config: KeystrokeConfig, platform: PlatformSettings
) -> dg.MaterializeResult:
    from transformers import WhisperFeatureExtractor

    from whisper_assets.keystrokes.features import KeystrokeFeatureCache
    from whisper_assets.keystrokes.trainer import window_for
    from whisper_assets.keystrokes.vocabulary import load_tokenizer
    from whisper_assets.training.model import trim_feature_window

    settings = platform.settings
    options = with_overrides(settings.keystrokes, config, context)
    manifests, tokenizer_dir = _folders(settings, keystroke_source(settings, context.partition_key).name)
    rows = read_manifest(manifests).rows
    extractor = WhisperFeatureExtractor.from_pretrained(options.base_model)
    window = window_for(rows, options)
    trim_feature_window(extractor, window)
    layout = settings.layout
    cache = KeystrokeFeatureCache(
        layout.features_root / "keystrokes", extractor, load_tokenizer(tokenizer_dir), layout.data_root
    )
    for row in rows:
        cache.get(row)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "computed": cache.misses,
            "reused": cache.hits,
            "repaired": cache.repaired,
            "window_seconds": window,
            "mels": extractor.feature_size,
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    deps=[keystroke_features],
    pool=GPU_POOL,
    kinds={"pytorch", "mlflow"},
    tags={"compute": "gpu"},
    description="Whisper encoder (LoRA) + a new decoder writing key events, trained on the train split and "
    "evaluated on train and test; checkpoints, decoded samples and model/ under models/keystrokes/<source>/.",
)
def keystroke_model(
    context: dg.AssetExecutionContext,
    config: KeystrokeConfig,
    platform: PlatformSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    from whisper_assets.keystrokes.runs import keystroke_run

    settings = platform.settings
    layout = settings.layout
    name = keystroke_source(settings, context.partition_key).name
    manifests, tokenizer_dir = _folders(settings, name)
    tracker = keystroke_tracker(settings, mlflow)
    run = keystroke_run(
        with_overrides(settings.keystrokes, config, context),
        read_manifest(manifests),
        tokenizer_dir,
        layout.data_root,
        layout.models_root / "keystrokes" / name,
        layout.features_root / "keystrokes",
        layout.logs_root / "keystrokes" / f"{name}.log",
        tracker,
        {"dagster/run_id": context.run.run_id, "dagster/asset": "keystroke_model", "source": name},
        context.log.info,
    )
    result = run.result
    metadata = {
        "run": run.folder.name,
        "run_folder": dg.MetadataValue.path(str(run.folder)),
        "manifest_sha256": run.manifest_sha256,
        "tokenizer_sha256": run.tokenizer_sha256,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "best_step": result.best_step,
        "best_test_token_accuracy": result.best_token_accuracy,
        "window_seconds": result.window_seconds,
        "device": result.device,
        "train_seconds": round(result.train_seconds, 1),
        "feature_cache": dg.MetadataValue.json(result.cache),
        "mlflow_run": dg.MetadataValue.url(tracker.run_link(run.mlflow_run_id)),
        "evaluations": dg.MetadataValue.md(
            markdown_table(
                result.evaluations, ("step", "test_token_accuracy", "test_sequence_accuracy", "verdict")
            )
        ),
    }
    if result.failed:
        raise dg.Failure(result.failed, metadata=metadata)
    return dg.MaterializeResult(
        metadata={**metadata, "model_dir": dg.MetadataValue.path(str(result.model_dir))}
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    deps=[keystroke_model],
    kinds={"pytorch"},
    description="The trained model (its best checkpoint) on the test split: token and sequence accuracy, "
    "teacher-forced accuracy and decode latency, overall and per keyboard.",
)
def keystroke_evaluation(
    context: dg.AssetExecutionContext, platform: PlatformSettings
) -> dg.MaterializeResult:
    from whisper_assets.keystrokes.evaluation import evaluate_model

    settings = platform.settings
    name = keystroke_source(settings, context.partition_key).name
    trained = latest_metadata(context.instance, "keystroke_model", name)
    if trained is None or "model_dir" not in trained:
        raise dg.Failure(f"keystroke_model has no finished model for {name!r}: materialize it first")
    manifests, _ = _folders(settings, name)
    report = evaluate_model(trained["model_dir"], read_manifest(manifests).split("test"), settings.layout)
    return dg.MaterializeResult(
        metadata={
            **{k: round(v, 4) for k, v in report.overall.items()},
            "recordings": report.recordings,
            "by_keyboard": dg.MetadataValue.md(markdown_table(report.by_keyboard, report.columns)),
            "report": dg.MetadataValue.path(str(report.path)),
        }
    )


def keystroke_tracker(settings: Settings, mlflow: MlflowTracking):
    """The keystroke runs' own MLflow experiment (beside the speech model's): `<experiment>-keystrokes`."""
    from whisper_assets.tracking.tracker import Tracker

    base = settings.mlflow.model_copy(
        update={
            "experiment": f"{settings.mlflow.experiment}-keystrokes",
            "registered_model": f"{settings.mlflow.registered_model}-keystrokes",
        }
    )
    return Tracker.from_settings(base, settings.layout.mlflow_root, mlflow.tracking_uri)


keystroke_data_assets = [keystroke_manifests, keystroke_vocabulary, keystroke_features]
keystroke_assets = [*keystroke_data_assets, keystroke_model, keystroke_evaluation]
keystroke_data_job = dg.define_asset_job("keystroke_data", selection=keystroke_data_assets)
keystroke_training_job = dg.define_asset_job(
    "keystroke_training", selection=[keystroke_model, keystroke_evaluation]
)


@dg.sensor(
    job=keystroke_data_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a keystroke source's endpoint was synced (its `inventory` materialized), refreshes its "
    "keystroke manifests, vocabulary and features.",
)
def keystroke_data_after_sync(context: dg.SensorEvaluationContext, platform: PlatformSettings):
    seen = dict(json.loads(context.cursor)) if context.cursor else {}
    requests = []
    for name in keystroke_sources(platform.settings):
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=inventory.key, asset_partitions=[name]), limit=1
        ).records
        if records and records[0].storage_id != seen.get(name):
            seen[name] = records[0].storage_id
            requests.append(dg.RunRequest(partition_key=name, run_key=f"{name}:{records[0].storage_id}"))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen))


def build_keystroke_schedule(cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        job=keystroke_training_job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Retrain a keystroke source whose manifest changed since its last model (off by default: "
        "GPU hours); cron from the settings' `schedules.retrain_cron`.",
    )
    def retrain_keystrokes(context: dg.ScheduleEvaluationContext, platform: PlatformSettings):
        requests = []
        for name in keystroke_sources(platform.settings):
            data = latest_metadata(context.instance, "keystroke_manifests", name)
            model = latest_metadata(context.instance, "keystroke_model", name)
            if data is None or (
                model is not None and model.get("manifest_sha256") == data["manifest_sha256"]
            ):
                continue
            running = context.instance.get_runs(
                filters=dg.RunsFilter(
                    job_name=keystroke_training_job.name,
                    statuses=IN_PROGRESS,
                    tags={"dagster/partition": name},
                ),
                limit=1,
            )
            if not running:
                requests.append(
                    dg.RunRequest(partition_key=name, run_key=f"{name}:{data['manifest_sha256'][:12]}")
                )
        return requests or dg.SkipReason("no keystroke source with a manifest newer than its model")

    return retrain_keystrokes
