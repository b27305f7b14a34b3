"""Per-source assets: inventory -> dedup_report -> normalized_transcripts -> processed_audio.

Each body reads its inputs from the tables of the assets it depends on, calls domain code, writes its own table
and returns metadata for the UI. Outputs are files under the data root, so no IO manager is involved.
"""

from pathlib import Path

import dagster as dg

from whisper_assets.curation.dedup import (
    DEDUP_SCHEMA,
    DedupCandidate,
    audio_identities,
    could_match,
    find_duplicates,
    move_aside,
)
from whisper_assets.curation.inventory import INVENTORY_SCHEMA, build_inventory
from whisper_assets.curation.processing import (
    PROCESSED_SCHEMA,
    STATUS_OK,
    ProcessJob,
    output_key,
    output_path,
    process_items,
)
from whisper_assets.curation.transcripts import TRANSCRIPTS_SCHEMA, normalize_inventory
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.reporting import count_reasons, markdown_table
from whisper_assets.sources.prepare import prepare_source
from whisper_assets.tables import read_rows, read_table_all, table_path, write_rows

GROUP = "ingest"
UNREADABLE_CHECK = "unreadable_share"


def _table(platform: PlatformSettings, name: str, source: str) -> Path:
    return table_path(platform.settings.tables_root, name, source)


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(UNREADABLE_CHECK, asset="inventory")],
    description="Every file of a dataset source: audio properties, transcript found, and why it is unusable.",
)
def inventory(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    source = settings.source(context.partition_key)
    folder, mirrored = prepare_source(settings, source)
    path = _table(platform, "inventory", source.name)
    declared = {
        "source": source.name,
        "kind": source.kind,
        "license": source.license,
        "provenance": source.provenance,
    }
    result = build_inventory(
        source.name, folder, source.language, read_rows(path), platform.workers, provenance=declared
    )
    write_rows(path, result.rows, INVENTORY_SCHEMA)

    audio = [r for r in result.rows if r["is_audio"]]
    unreadable = [r for r in audio if not r["readable"]]
    rejected = [r for r in result.rows if r["rejection_reason"]]
    share = len(unreadable) / len(audio) if audio else 0.0
    hours = sum(r["duration"] or 0 for r in audio if r["readable"]) / 3600
    context.log.info(f"{source.name}: {len(result.rows)} files, {result.probed} read, {result.reused} reused")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.rows),
            "audio_files": len(audio),
            "total_hours": round(hours, 4),
            "rejected": len(rejected),
            "rejections": count_reasons(r["rejection_reason"] for r in rejected),
            "files_read": result.probed,
            "files_reused": result.reused,
            **({"mirrored": mirrored} if mirrored else {}),
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(
                markdown_table(
                    result.rows,
                    (
                        "rel_path",
                        "duration",
                        "sample_rate",
                        "channels",
                        "codec",
                        "transcript_present",
                        "rejection_reason",
                    ),
                )
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=UNREADABLE_CHECK,
                passed=share <= settings.unreadable_warn_share,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"unreadable": len(unreadable), "audio_files": len(audio), "share": round(share, 4)},
                description=f"at most {settings.unreadable_warn_share:.0%} of audio files may be unreadable",
            )
        ],
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=["inventory"],
    description="Exact and content duplicates of this source's audio, within and across sources.",
)
def dedup_report(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    source = settings.source(context.partition_key)
    all_rows = [
        r for r in read_table_all(settings.tables_root, "inventory") if r["is_audio"] and r["readable"]
    ]
    ours = [r for r in all_rows if r["source"] == source.name]
    our_durations = [r["duration"] for r in ours]
    # Other sources' files matter only if they could match one of ours; skip decoding the rest.
    candidates_rows = ours + [
        r for r in all_rows if r["source"] != source.name and could_match(r["duration"], our_durations)
    ]
    identities = audio_identities(
        {r["sha256"]: r["abs_path"] for r in candidates_rows}, settings.cache_root, platform.workers
    )
    candidates = [
        DedupCandidate(
            r["id"],
            r["source"],
            r["rel_path"],
            r["sha256"],
            bool(r["lossless"]),
            r["sample_rate"],
            identities[r["sha256"]],
        )
        for r in candidates_rows
    ]
    rows = [r for r in find_duplicates(candidates) if r["source"] == source.name]
    duplicates = [r for r in rows if not r["is_canonical"]]

    moved = []
    if settings.move_duplicates:
        folder = settings.source_folder(source)
        abs_paths = {r["id"]: Path(r["abs_path"]) for r in ours}
        for row in duplicates:
            if abs_paths[row["id"]].exists():
                moved.append(
                    str(move_aside(abs_paths[row["id"]], folder, settings.duplicates_root, source.name))
                )

    path = _table(platform, "dedup_report", source.name)
    write_rows(path, rows, DEDUP_SCHEMA)
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
    deps=["dedup_report"],
    description="Transcripts cleaned by the source's policy; empty or mismatched ones rejected with a reason.",
)
def normalized_transcripts(
    context: dg.AssetExecutionContext, platform: PlatformSettings
) -> dg.MaterializeResult:
    source = platform.settings.source(context.partition_key)
    rows, report = normalize_inventory(
        read_rows(_table(platform, "inventory", source.name)), source.transcripts
    )
    path = _table(platform, "normalized_transcripts", source.name)
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
    deps=["normalized_transcripts", "dedup_report"],
    description="16 kHz mono 16-bit audio, content-addressed by input hash and processing parameters.",
)
def processed_audio(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    source = settings.source(context.partition_key)
    inventory_rows = {r["id"]: r for r in read_rows(_table(platform, "inventory", source.name))}
    canonical = {
        r["id"] for r in read_rows(_table(platform, "dedup_report", source.name)) if r["is_canonical"]
    }
    accepted = [
        r for r in read_rows(_table(platform, "normalized_transcripts", source.name)) if r["accepted"]
    ]
    jobs = []
    for row in accepted:
        item = inventory_rows.get(row["id"])
        if item is None or row["id"] not in canonical:
            continue
        key = output_key(item["sha256"], source.audio)
        jobs.append(
            ProcessJob(
                item["id"],
                source.name,
                item["rel_path"],
                item["abs_path"],
                str(output_path(settings.processed_root, source.name, key)),
                source.audio,
            )
        )
    rows = process_items(jobs, platform.workers)
    path = _table(platform, "processed_audio", source.name)
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
            "output_folder": dg.MetadataValue.path(str(settings.processed_root / source.name)),
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(
                markdown_table(rows, ("rel_path", "duration", "status", "reason"))
            ),
        }
    )


ingest_assets = [inventory, dedup_report, normalized_transcripts, processed_audio]
ingest_job = dg.define_asset_job(
    "ingest_source",
    selection=dg.AssetSelection.assets(*ingest_assets),
    description="Bring one dataset source from raw files to processed 16 kHz audio.",
)
