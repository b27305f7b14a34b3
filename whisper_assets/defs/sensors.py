"""Sensors: new or changed uploads start a run for their source's partition."""

import json
import time

import dagster as dg

from whisper_assets.defs.curation import catalog, data_licenses, splits
from whisper_assets.defs.ingest import ingest_job
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.partition_keys import source_of_key
from whisper_assets.sources.folder import ignored_upload_folders
from whisper_assets.sources.watch import ScanProgress

SCAN_BUDGET_SECONDS = 20.0  # well inside the default 60 s sensor evaluation limit


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new source (one per shard of a sharded source) and runs a source whose "
    "content changed, one run per shard (upload folders: file paths, sizes and times; review databases: reviewed "
    "rows).",
)
def new_uploads(context: dg.SensorEvaluationContext, platform: PlatformSettings) -> dg.SensorResult:
    settings = platform.settings
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, str] = cursor.get("seen", {})
    progress = ScanProgress(**cursor["scan"]) if cursor.get("scan") else None

    for folder, reason in ignored_upload_folders(settings.layout).items():
        context.log.warning(f"uploads/{folder}: {reason}")
    sources = {s.name: s for s in settings.discover_sources()}
    keys = settings.partition_keys()
    current = {key for source_keys in keys.values() for key in source_keys}
    known = set(context.instance.get_dynamic_partitions(source_partitions.name))
    new_keys = sorted(current - known)
    # a source's old shard layout (its `shards` changed); partitions of sources no longer configured stay
    obsolete = sorted(k for k in known - current if source_of_key(k) in sources)

    order = sorted(sources)
    if progress and progress.source in sources:  # resume the unfinished scan first
        order.remove(progress.source)
        order.insert(0, progress.source)
    deadline = time.monotonic() + SCAN_BUDGET_SECONDS
    requests = []
    for name in order:
        state = progress if progress and progress.source == name else ScanProgress(source=name)
        source = sources[name]
        fingerprint = source.fingerprint(source.folder(settings.layout), state, deadline)
        if fingerprint is None:
            context.log.info(f"{name}: scanned {state.files} files so far, continuing next tick")
            progress = state
            break
        progress = None
        if seen.get(name) != fingerprint:
            seen[name] = fingerprint
            requests.extend(
                dg.RunRequest(partition_key=key, run_key=f"{key}:{fingerprint}") for key in keys[name]
            )
        if time.monotonic() > deadline:
            break
    seen = {k: v for k, v in seen.items() if k in sources}
    new_cursor = {"seen": seen, "scan": progress.to_dict() if progress else None}
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            *([source_partitions.build_add_request(new_keys)] if new_keys else []),
            *([source_partitions.build_delete_request(obsolete)] if obsolete else []),
        ],
        cursor=json.dumps(new_cursor, separators=(",", ":")),
    )


curation_automation = dg.AutomationConditionSensorDefinition(
    "curation_automation",
    target=dg.AssetSelection.assets(splits, data_licenses, catalog),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Refreshes the split manifests once sources have new processed audio, then the DuckDB views.",
)
