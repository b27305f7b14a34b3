"""Per-source assets: inventory -> dedup_report -> normalized_transcripts -> processed_audio -> segments.

Each body reads the tables it depends on, calls one domain function, writes its own table and returns metadata
for the UI. Outputs are files under the data root, so no IO manager is involved.
"""

import time
from pathlib import Path

import dagster as dg

from whisper_assets import charts
from whisper_assets.curation.dedup import DEDUP_SCHEMA, dedup_partition, move_duplicates
from whisper_assets.curation.inventory import INVENTORY_SCHEMA, ingest_digest, take_inventory
from whisper_assets.curation.processing import PROCESSED_SCHEMA, STATUS_OK, process_items, source_jobs
from whisper_assets.curation.transcripts import TRANSCRIPTS_SCHEMA, normalize_inventory
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import MlflowTracking, PlatformSettings
from whisper_assets.partition_keys import source_of_key
from whisper_assets.reporting import count_reasons, markdown_table
from whisper_assets.segmentation.segments import (
    SEGMENTS_SCHEMA,
    TIMED_BY_ALIGNMENT,
    TIMED_BY_SOURCE,
    LazyAligner,
    SegmentPaths,
    SegmentsReport,
    segment_items,
    segment_jobs,
)
from whisper_assets.settings import Settings
from whisper_assets.sources.folder import ignored_upload_folders, list_tree, tree_signature
from whisper_assets.tables import (
    partition_keys_of,
    read_rows,
    read_table_all,
    remove_partition,
    table_path,
    write_rows,
)

GROUP = "ingest"
RERUN_TAG = "whisper_assets/rerun"  # a run with this tag runs every step, even when nothing changed
UNREADABLE_CHECK = "unreadable_share"
INVENTORY_PREVIEW = (
    "rel_path",
    "duration",
    "sample_rate",
    "channels",
    "codec",
    "transcript_present",
    "rejection_reason",
)


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(UNREADABLE_CHECK, asset="inventory")],
    output_required=False,
    description="Every file of a dataset source: audio properties, transcript found, and why it is unusable. "
    "When nothing changed since a run that completed every step this run has (same files, settings and code), "
    f"it is not materialized and those steps are skipped (tag a run `{RERUN_TAG}` to run them anyway).",
)
def inventory(context: dg.AssetExecutionContext, platform: PlatformSettings):
    settings = platform.settings
    source, part = settings.partition(context.partition_key)
    _drop_other_layouts(settings.layout.tables_root, source.name, settings.partition_keys()[source.name])
    path = table_path(settings.layout.tables_root, "inventory", part.key)
    folder = source.folder(settings.layout)
    mirrored = source.mirror(folder)
    listed = list_tree(folder, source.link_roots())  # once: for the digest and, when it changed, the scan
    overrides = settings.layout.speaker_overrides(source.name)
    digest = ingest_digest(
        tree_signature(listed, part.holds),
        settings.model_dump_json(),
        overrides.read_bytes() if overrides.exists() else b"",
    )
    # pseudo-labels from the champion change when a new champion is registered, which no digest here sees
    champion_labels = source.pseudo_labels != "off" and settings.segmentation.pseudo_label_model == "champion"
    rerun = RERUN_TAG in context.run.tags or champion_labels
    earlier = None if rerun else _completed_by(context, digest, settings)
    if earlier is not None:
        run_id, metadata = earlier
        context.log.info(
            f"{part.key}: {metadata['dagster/row_count'].value} files, nothing changed since run {run_id}, which "
            f"completed every step of this one: the steps after inventory are skipped (tag the run `{RERUN_TAG}` "
            "to run them)"
        )
        yield _unreadable_check(metadata["unreadable_files"].value, metadata["audio_files"].value, settings)
        return
    result = take_inventory(source, folder, read_rows(path), platform.workers, part, listed)
    write_rows(path, result.rows, INVENTORY_SCHEMA)
    unreadable = sum(not r["readable"] for r in result.audio)
    check = _unreadable_check(unreadable, len(result.audio), settings)

    rejected = [r for r in result.rows if r["rejection_reason"]]
    context.log.info(f"{part.key}: {len(result.rows)} files, {result.probed} read, {result.reused} reused")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.rows),
            "audio_files": len(result.audio),
            "unreadable_files": unreadable,
            "total_hours": round(result.hours, 4),
            "rejected": len(rejected),
            "rejections": count_reasons(r["rejection_reason"] for r in rejected),
            "files_read": result.probed,
            "files_reused": result.reused,
            **({"mirrored": mirrored} if mirrored else {}),
            **(
                {"ignored_upload_folders": ignored}
                if (ignored := ignored_upload_folders(settings.layout))
                else {}
            ),
            "ingest_digest": digest,
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(markdown_table(result.rows, INVENTORY_PREVIEW)),
            "duration_histogram": dg.MetadataValue.md(
                charts.markdown_image(
                    charts.histogram(
                        [r["duration"] for r in result.audio if r["duration"]],
                        "Duration of audio files",
                        "seconds",
                    ),
                    "duration histogram",
                )
            ),
        },
        check_results=[check],
    )


def _unreadable_check(unreadable: int, audio_files: int, settings: Settings) -> dg.AssetCheckResult:
    share = unreadable / audio_files if audio_files else 0.0
    return dg.AssetCheckResult(
        check_name=UNREADABLE_CHECK,
        passed=share <= settings.unreadable_warn_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unreadable": unreadable, "audio_files": audio_files, "share": round(share, 4)},
        description=f"at most {settings.unreadable_warn_share:.0%} of audio files may be unreadable",
    )


def _completed_by(
    context: dg.AssetExecutionContext, digest: str, settings: Settings
) -> tuple[str, dict[str, dg.MetadataValue]] | None:
    """The run that last materialized this partition's inventory and that materialization's metadata, when it
    had the same digest, succeeded, ran every asset this run has, and its tables are still there (else None)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    entry = metadata.get("ingest_digest")
    earlier = context.instance.get_run_by_id(records[0].run_id)
    if (
        entry is None
        or entry.value != digest
        or earlier is None
        or earlier.status != dg.DagsterRunStatus.SUCCESS
    ):
        return None
    # a run of the whole job has no asset selection (None, or an empty set)
    before, now = earlier.asset_selection or None, context.run.asset_selection or None
    covered = earlier.job_name == context.run.job_name and (
        before is None or (now is not None and now <= before)
    )
    tables = settings.layout.tables_root
    kept = all(table_path(tables, t, context.partition_key).exists() for t in PER_PARTITION_TABLES)
    return (earlier.run_id, metadata) if covered and kept else None


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[inventory],
    description="Exact and content duplicates of this source's audio, within and across sources.",
)
def dedup_report(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    source, part = settings.partition(context.partition_key)
    inventory_rows = read_table_all(layout.tables_root, "inventory")
    ours = read_rows(table_path(layout.tables_root, "inventory", part.key))
    rows = dedup_partition(
        f"source-{part.key}", {r["id"] for r in ours}, inventory_rows, layout.cache_root, platform.workers
    )
    moved = []
    if settings.move_duplicates:
        moved = move_duplicates(rows, ours, source.folder(layout), layout.duplicates_root)
    path = table_path(layout.tables_root, "dedup_report", part.key)
    write_rows(path, rows, DEDUP_SCHEMA)
    duplicates = [r for r in rows if not r["is_canonical"]]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "exact_duplicates": sum(r["duplicate_kind"] == "exact" for r in rows),
            "content_duplicates": sum(r["duplicate_kind"] == "content" for r in rows),
            "cross_source_duplicates": sum(
                not r["canonical_id"].startswith(f"{source.name}-") for r in duplicates
            ),
            "moved_to_duplicates_folder": len(moved),
            "path": dg.MetadataValue.path(str(path)),
            "duplicates": dg.MetadataValue.md(
                markdown_table(duplicates, ("rel_path", "duplicate_kind", "canonical_id", "similarity"))
            ),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[dedup_report],
    description="Transcripts cleaned by the source's policy; empty or mismatched ones rejected with a reason.",
)
def normalized_transcripts(
    context: dg.AssetExecutionContext, platform: PlatformSettings
) -> dg.MaterializeResult:
    tables_root = platform.settings.layout.tables_root
    source, part = platform.settings.partition(context.partition_key)
    rows, report = normalize_inventory(
        read_rows(table_path(tables_root, "inventory", part.key)), source.transcripts
    )
    path = table_path(tables_root, "normalized_transcripts", part.key)
    write_rows(path, rows, TRANSCRIPTS_SCHEMA)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "changed": report.changed,
            "rejected": report.rejected,
            "changes": dict(report.changes),
            "rejections": dict(report.rejections),
            "encodings_converted": dict(report.converted_encodings),
            "path": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.md(report.markdown()),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet", "wav"},
    deps=[normalized_transcripts, dedup_report],
    description="16 kHz mono 16-bit audio, content-addressed by input hash and processing parameters.",
)
def processed_audio(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    layout = platform.settings.layout
    source, part = platform.settings.partition(context.partition_key)

    def table(name: str) -> list[dict]:
        return read_rows(table_path(layout.tables_root, name, part.key))

    jobs = source_jobs(
        source.name,
        source.audio,
        table("inventory"),
        table("dedup_report"),
        table("normalized_transcripts"),
        layout.processed_root,
        untranscribed=source.pseudo_labels != "off",
    )
    rows = process_items(jobs, platform.workers)
    path = table_path(layout.tables_root, "processed_audio", part.key)
    write_rows(path, rows, PROCESSED_SCHEMA)
    ok = [r for r in rows if r["status"] == STATUS_OK]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "trainable": len(ok),
            "trainable_hours": round(sum(r["duration"] for r in ok) / 3600, 4),
            "processed_now": sum(not r["reused"] for r in rows),
            "reused": sum(r["reused"] for r in rows),
            "excluded": count_reasons(r["status"] for r in rows if r["status"] != STATUS_OK),
            "output_folder": dg.MetadataValue.path(str(layout.processed_root / source.name)),
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(
                markdown_table(rows, ("rel_path", "duration", "status", "reason"))
            ),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet", "wav", "json"},
    deps=[processed_audio],
    description="Training utterances: short items whole, long ones cut at pauses between words timed by "
    "their source (subtitles) or by forced alignment; items without a transcript pseudo-labelled where the "
    "source asks; word timings (and karaoke files) under outputs/<item id>/.",
)
def segments(
    context: dg.AssetExecutionContext, platform: PlatformSettings, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    source, part = settings.partition(context.partition_key)

    def table(name: str) -> list[dict]:
        return read_rows(table_path(layout.tables_root, name, part.key))

    jobs = segment_jobs(
        table("processed_audio"),
        table("normalized_transcripts"),
        table("inventory"),
        pseudo_labels=source.pseudo_labels != "off",
    )
    failures = layout.cache_root / "model_failures"
    aligner = LazyAligner(settings.alignment_model, failures)
    labeler = (
        LazyAligner(_pseudo_label_model(settings, mlflow), failures) if any(j.pseudo for j in jobs) else None
    )
    started = time.perf_counter()
    rows = segment_items(
        jobs,
        source,
        aligner,
        settings.segmentation,
        SegmentPaths(layout.cache_root, layout.outputs_root, layout.processed_root),
        labeler,
    )
    seconds = time.perf_counter() - started
    path = table_path(layout.tables_root, "segments", part.key)
    write_rows(path, rows, SEGMENTS_SCHEMA)
    report = SegmentsReport.of(rows)
    aligned = {r["parent_id"] for r in rows if not r["reused"] and r["timed_by"] == TIMED_BY_ALIGNMENT}
    aligned_seconds = sum(job.duration for job in jobs if job.id in aligned)
    for error in {aligner.error, labeler and labeler.error} - {None}:
        context.log.warning(error)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "trainable": report.kept,
            "trainable_hours": round(report.kept_hours, 4),
            "segmented_recordings": report.segmented,
            "dropped": report.dropped,
            "dropped_hours": round(report.dropped_hours, 4),
            "drop_reasons": count_reasons(r["reason"] for r in rows if r["status"] != STATUS_OK),
            "aligned_now": sum(not r["reused"] for r in rows),
            "audio_seconds_aligned": round(aligned_seconds, 1),
            "aligned_per_second": round(aligned_seconds / seconds, 1),
            "timed_by_source": sum(r["timed_by"] == TIMED_BY_SOURCE for r in rows),
            "alignment_model": settings.alignment_model,
            **(
                {"pseudo_labelled": report.pseudo_labelled, "pseudo_label_model": labeler.model_id}
                if labeler
                else {}
            ),
            **({"alignment_error": aligner.error} if aligner.error else {}),
            "outputs": dg.MetadataValue.path(str(layout.outputs_root)),
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(
                markdown_table(rows, ("id", "offset", "duration", "words", "probability", "status", "reason"))
            ),
        }
    )


PER_PARTITION_TABLES = (
    "inventory",
    "dedup_report",
    "normalized_transcripts",
    "processed_audio",
    "segments",
    "speakers",
)


def _drop_other_layouts(tables_root: Path, source: str, keys: list[str]) -> None:
    """Remove the tables of a source's partitions that its settings no longer have (its `shards` changed), so
    no item is read twice downstream."""
    for table in PER_PARTITION_TABLES:
        for key in partition_keys_of(tables_root, table):
            if source_of_key(key) == source and key not in keys:
                remove_partition(tables_root, table, key)


def _pseudo_label_model(settings: Settings, mlflow: MlflowTracking) -> str:
    """The model that transcribes untranscribed items: the champion (else the alignment model), the alignment
    model, or the one named."""
    choice = settings.segmentation.pseudo_label_model
    if choice == "champion":
        champion = mlflow.tracker(settings).download_champion(settings.layout.cache_root / "champion")
        return str(champion) if champion else settings.alignment_model
    return settings.alignment_model if choice == "alignment" else choice


ingest_assets = [inventory, dedup_report, normalized_transcripts, processed_audio, segments]
# One process for the whole run: each step of the default multiprocess executor starts its own Python and
# loads the code location again, which cost more than the work itself for small drops.
ingest_job = dg.define_asset_job(
    "ingest_source",
    selection=dg.AssetSelection.groups(GROUP),  # these assets and the `speakers` asset built on them
    executor_def=dg.in_process_executor,
    description="Bring one dataset source from raw files to 16 kHz training utterances with word timings and "
    "speaker ids.",
)
