"""The review order: how likely each unreviewed entry of a review database is wrong, for the review app."""

from pathlib import Path

import dagster as dg

from whisper_assets.defs.compute import GPU_POOL
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import MlflowTracking, PlatformSettings, latest_metadata
from whisper_assets.sources.review_db import ReviewDbSource, pending_fingerprint


@dg.asset(
    partitions_def=source_partitions,
    group_name="review",
    pool=GPU_POOL,
    kinds={"pytorch", "sqlite"},
    description="Scores every unreviewed entry of a review database by how likely its transcript is wrong "
    "(the champion, else the base model, disagrees; finds it improbable; odd speaking rate); the review app's "
    "'hardest first' order. Only entries whose transcript, audio or model changed are scored again.",
)
def review_priorities(
    context: dg.AssetExecutionContext, platform: PlatformSettings, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    from whisper_assets.evaluation.review_priority import rank_pending

    settings = platform.settings
    source = settings.source(context.partition_key)
    if not isinstance(source, ReviewDbSource):
        return dg.MaterializeResult(metadata={"ranked": "not a review database: nothing to rank"})
    tracker = mlflow.tracker(settings)
    champion = tracker.champion()
    if champion:
        model_id = str(tracker.download_version(champion, settings.layout.cache_root / "champion"))
        label = f"{tracker.registered_model} v{champion}"
    else:
        model_id = label = settings.training.base_model
    result = rank_pending(
        Path(source.path), model_id, label, source.language, settings.review, progress=context.log.info
    )
    return dg.MaterializeResult(
        metadata={
            "model": result.model,
            "scored": result.scored,
            "reused": result.reused,
            "unplayable": result.unplayable,
            "database": dg.MetadataValue.path(source.path),
        }
    )


review_job = dg.define_asset_job(
    "rank_reviews",
    selection=dg.AssetSelection.assets(review_priorities),
    description="Order a review database's unreviewed entries hardest first (for the review app).",
)


@dg.sensor(
    job=review_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,  # scoring runs a model: switch it on where that is cheap
    description="Ranks a review database's unreviewed entries again when they change (added, edited, deleted) "
    "or the champion does; only the changed entries are scored.",
)
def review_queue(context: dg.SensorEvaluationContext, platform: PlatformSettings) -> list[dg.RunRequest]:
    known = set(context.instance.get_dynamic_partitions(source_partitions.name))
    evaluated = latest_metadata(context.instance, "eval_metrics") or {}
    champion = evaluated.get("champion", "none")
    return [
        dg.RunRequest(
            partition_key=source.name,
            run_key=f"{source.name}:{champion}:{pending_fingerprint(Path(source.path))}",
        )
        for source in platform.settings.discover_sources()
        if isinstance(source, ReviewDbSource) and source.name in known and Path(source.path).exists()
    ]
