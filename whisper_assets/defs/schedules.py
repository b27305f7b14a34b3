"""Schedules: sync remote sources, and retrain when the data changed (off by default: GPU hours)."""

import dagster as dg

from whisper_assets.curation.manifests import training_digests
from whisper_assets.defs.ingest import ingest_job
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import PlatformSettings, latest_metadata
from whisper_assets.defs.training import training_job
from whisper_assets.settings import ScheduleSettings

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def build_schedules(cron: ScheduleSettings) -> list[dg.ScheduleDefinition]:
    """The schedules, with their cron expressions from the settings file's `schedules:` section."""

    @dg.schedule(
        job=training_job,
        cron_schedule=cron.retrain_cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Train if the manifests training reads (splits, replay sets) changed since the last model "
        "and no training runs.",
    )
    def retrain_on_new_data(context: dg.ScheduleEvaluationContext, platform: PlatformSettings):
        splits = latest_metadata(context.instance, "splits")
        if splits is None:
            return dg.SkipReason("no split manifests yet: materialize `splits` first")
        wanted = training_digests(splits["manifest_sha256"], platform.settings.training.replay_share > 0)
        model = latest_metadata(context.instance, "whisper_model")
        if model is not None and model.get("manifest_sha256") == wanted:
            return dg.SkipReason("the split manifests have not changed since the last model")
        running = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=training_job.name, statuses=IN_PROGRESS), limit=1
        )
        if running:
            return dg.SkipReason(f"training run {running[0].run_id} is still in progress")
        return dg.RunRequest(run_key="manifests-" + "-".join(v[:8] for v in wanted.values()))

    @dg.schedule(
        job=ingest_job,
        cron_schedule=cron.sync_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Syncs every remote source (remote recordings, media sites), then its assets; cron from "
        "the settings' `schedules.sync_cron`, every 15 minutes by default.",
    )
    def sync_remote_sources(context: dg.ScheduleEvaluationContext, platform: PlatformSettings):
        known = set(context.instance.get_dynamic_partitions(source_partitions.name))
        remote = [s.name for s in platform.settings.sources if s.remote and s.name in known]
        if not remote:
            return dg.SkipReason("no remote source (synced on a schedule) with a partition yet")
        return [dg.RunRequest(partition_key=name, tags={"whisper_assets/trigger": "sync"}) for name in remote]

    return [retrain_on_new_data, sync_remote_sources]
