"""The `splits` asset: every source's trainable items in hash-stable train/validation/test manifests."""

import dagster as dg
import pyarrow as pa

from whisper_assets.curation.licenses import licenses_markdown
from whisper_assets.curation.processing import STATUS_OK
from whisper_assets.curation.splits import group_key, hours_by, leaks, split_items, write_manifest
from whisper_assets.defs.ingest import processed_audio
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.reporting import markdown_table
from whisper_assets.tables import read_table_all, refresh_catalog, table_path, write_rows

CATALOG_TABLES = (
    "inventory",
    "dedup_report",
    "normalized_transcripts",
    "processed_audio",
    "splits",
    "eval_utterances",
)
LEAKAGE_CHECK = "no_leakage"
EMPTY_TRANSCRIPT_CHECK = "no_empty_transcripts"
SPLITS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("audio", pa.string()),
        ("transcript", pa.string()),
        ("duration", pa.float64()),
        ("language", pa.string()),
        ("speaker", pa.string()),
        ("source", pa.string()),
        ("group", pa.string()),
        ("content_hash", pa.string()),
    ]
)
# Re-run when any source's processed audio changed, once no source is mid-run.
SPLITS_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("any source updated")


def trainable_items(tables_root, speaker_disjoint: dict[str, bool]) -> list[dict]:
    """Join processed audio, transcripts and inventory labels for every trainable item of every source."""
    inventory = {r["id"]: r for r in read_table_all(tables_root, "inventory")}
    transcripts = {r["id"]: r for r in read_table_all(tables_root, "normalized_transcripts") if r["accepted"]}
    identity = {r["id"]: r for r in read_table_all(tables_root, "dedup_report")}
    items = []
    for row in read_table_all(tables_root, "processed_audio"):
        if row["status"] != STATUS_OK or row["id"] not in transcripts or row["id"] not in identity:
            continue
        labels = inventory[row["id"]]
        content = identity[row["id"]]["cluster_id"]
        items.append(
            {
                "id": row["id"],
                "audio": row["audio"],
                "transcript": transcripts[row["id"]]["transcript"],
                "duration": round(row["duration"], 3),
                "language": labels["language"],
                "speaker": labels["speaker"],
                "source": row["source"],
                "content_hash": content,
                "group": group_key(
                    row["source"], labels["speaker"], content, speaker_disjoint.get(row["source"], True)
                ),
            }
        )
    return items


@dg.asset(
    group_name="curation",
    kinds={"jsonl", "duckdb"},
    deps=[dg.AssetDep(processed_audio, partition_mapping=dg.AllPartitionMapping())],
    automation_condition=SPLITS_AUTOMATION,
    check_specs=[
        dg.AssetCheckSpec(
            LEAKAGE_CHECK,
            asset="splits",
            blocking=True,
            description="No speaker or content hash appears in two splits.",
        ),
        dg.AssetCheckSpec(
            EMPTY_TRANSCRIPT_CHECK,
            asset="splits",
            blocking=True,
            description="No manifest item has an empty transcript.",
        ),
    ],
    description="Hash-stable train/validation/test manifests over every source (speaker-disjoint).",
)
def splits(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    by_speaker = {s.name: s.split_by == "speaker" for s in settings.discover_sources()}
    by_split = split_items(trainable_items(settings.tables_root, by_speaker), settings.splits)
    digests = {
        name: write_manifest(settings.manifests_root / "splits" / f"{name}.jsonl", rows)
        for name, rows in by_split.items()
    }
    all_rows = [row | {"split": name} for name, rows in by_split.items() for row in rows]
    write_rows(table_path(settings.tables_root, "splits"), all_rows, SPLITS_SCHEMA)

    leaked = leaks(by_split)
    empty = [r["id"] for r in all_rows if not r["transcript"].strip()]
    summary = [
        {
            "split": name,
            "items": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "by_language": hours_by(rows, "language"),
            "by_source": hours_by(rows, "source"),
        }
        for name, rows in by_split.items()
    ]
    context.log.info("splits: " + ", ".join(f"{s['split']}={s['items']}" for s in summary))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(all_rows),
            **{f"{s['split']}_items": s["items"] for s in summary},
            **{f"{s['split']}_hours": s["hours"] for s in summary},
            "hours_by_language": {s["split"]: s["by_language"] for s in summary},
            "hours_by_source": {s["split"]: s["by_source"] for s in summary},
            "manifest_sha256": digests,
            "manifests": dg.MetadataValue.path(str(settings.manifests_root / "splits")),
            "summary": dg.MetadataValue.md(
                markdown_table(summary, ("split", "items", "hours", "by_language"))
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=LEAKAGE_CHECK,
                passed=not leaked,
                metadata={"leaks": len(leaked), "examples": dict(list(leaked.items())[:10])},
            ),
            dg.AssetCheckResult(
                check_name=EMPTY_TRANSCRIPT_CHECK,
                passed=not empty,
                metadata={"empty": len(empty), "examples": empty[:10]},
            ),
        ],
    )


@dg.asset(
    group_name="curation",
    kinds={"duckdb"},
    deps=["splits", "eval_metrics"],
    pool="duckdb",  # DuckDB allows one writing process: the pool keeps catalog refreshes one at a time
    automation_condition=dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_progress(),
    description="catalog.duckdb: one view per table over every partition's Parquet files.",
)
def catalog(platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    views = refresh_catalog(settings.catalog_path, settings.tables_root, CATALOG_TABLES)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(settings.catalog_path)), "views": views}
    )


@dg.asset(
    group_name="curation",
    kinds={"markdown"},
    deps=[dg.AssetDep("inventory", partition_mapping=dg.AllPartitionMapping())],
    automation_condition=SPLITS_AUTOMATION,
    description="DATA_LICENSES.md: license and provenance per source, regenerated when sources change.",
)
def data_licenses(platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    path = settings.data_root / "DATA_LICENSES.md"
    text = licenses_markdown(settings.discover_sources(), read_table_all(settings.tables_root, "inventory"))
    path.write_text(text, encoding="utf-8")
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "report": dg.MetadataValue.md(text)}
    )
