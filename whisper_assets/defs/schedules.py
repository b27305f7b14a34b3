"""Schedules: sync remote sources, and retrain when the data changed (off by default: GPU hours)."""

import os

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from whisper_assets.defs.ingest import ingest_job
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.defs.training import training_job


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.schedule(
    job=training_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly: train if the split manifests changed since the last model and no training runs.",
)
def retrain_on_new_data(context: dg.ScheduleEvaluationContext):
    splits = _metadata(context.instance, "splits")
    if splits is None:
        return dg.SkipReason("no split manifests yet: materialize `splits` first")
    model = _metadata(context.instance, "whisper_model")
    if model is not None and model.get("manifest_sha256") == splits["manifest_sha256"]:
        return dg.SkipReason("the split manifests have not changed since the last model")
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=training_job.name, statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=1
    )
    if running:
        return dg.SkipReason(f"training run {running[0].run_id} is still in progress")
    return dg.RunRequest(run_key="manifests-" + "-".join(v[:8] for v in splits["manifest_sha256"].values()))


REMOTE_KINDS = ("http_recordings", "youtube")


@dg.schedule(
    job=ingest_job,
    cron_schedule=os.environ.get("WHISPER_ASSETS_SYNC_CRON", "*/15 * * * *"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Syncs every remote source (remote recordings, media sites), then its assets; cron from "
    "WHISPER_ASSETS_SYNC_CRON, every 15 minutes by default.",
)
def sync_remote_sources(context: dg.ScheduleEvaluationContext, platform: PlatformSettings):
    known = set(context.instance.get_dynamic_partitions(source_partitions.name))
    remote = [s.name for s in platform.settings.sources if s.kind in REMOTE_KINDS and s.name in known]
    if not remote:
        return dg.SkipReason("no remote source (http_recordings, youtube) with a partition yet")
    return [dg.RunRequest(partition_key=name, tags={"whisper_assets/trigger": "sync"}) for name in remote]
