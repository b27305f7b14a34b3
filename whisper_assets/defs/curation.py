"""Assets over every source: the split manifests, the DuckDB catalog and DATA_LICENSES.md."""

import dagster as dg

from whisper_assets import charts
from whisper_assets.curation.balance import write_balance
from whisper_assets.curation.licenses import licenses_markdown
from whisper_assets.curation.manifests import staging_folder
from whisper_assets.curation.publish import publish_splits
from whisper_assets.curation.splits import Placement
from whisper_assets.defs.ingest import PER_PARTITION_TABLES, inventory, segments
from whisper_assets.defs.resources import PlatformSettings, store_copies
from whisper_assets.defs.speakers import speakers
from whisper_assets.files import write_text_atomic
from whisper_assets.reporting import markdown_table
from whisper_assets.sources.folder import ignored_upload_folders
from whisper_assets.tables import read_table_all, refresh_catalog

CATALOG_TABLES = (*PER_PARTITION_TABLES, "splits", "eval_utterances")
LEAKAGE_CHECK = "no_leakage"
EMPTY_TRANSCRIPT_CHECK = "no_empty_transcripts"
# Re-run when any source's segments changed, once no source is mid-run.
SPLITS_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("any source updated")


@dg.asset(
    group_name="curation",
    kinds={"jsonl", "duckdb"},
    deps=[
        dg.AssetDep(segments, partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(speakers, partition_mapping=dg.AllPartitionMapping()),
    ],
    automation_condition=SPLITS_AUTOMATION,
    check_specs=[
        dg.AssetCheckSpec(
            LEAKAGE_CHECK,
            asset="splits",
            blocking=True,
            description="No speaker, and no recording (found again from its audio), appears in two splits (or a "
            "split and a regression set); the manifests are published only when this passes.",
        ),
        dg.AssetCheckSpec(
            EMPTY_TRANSCRIPT_CHECK,
            asset="splits",
            blocking=True,
            description="No manifest item has an empty transcript.",
        ),
    ],
    description="Hash-stable train/validation/test manifests over every source (speaker-disjoint; a source may "
    "pin its split), and one manifest per regression-set source (evaluated, never trained on).",
)
def splits(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    placement = {
        s.name: Placement(
            s.split_by == "speaker",
            s.split,
            s.role,
            s.speakers.cluster and s.speakers.group_splits,
            s.feeds_speech_recognition,
        )
        for s in settings.discover_sources()
    }
    result = publish_splits(
        layout.tables_root, layout.manifests_root, layout.cache_root, placement, settings.splits
    )
    summary = result.summary()
    context.log.info("splits: " + ", ".join(f"{s['split']}={s['items']}" for s in summary))
    if not result.published:
        context.log.warning(
            f"checks failed: manifests left unpublished in {staging_folder(layout.manifests_root)}"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            **{f"{s['split']}_items": s["items"] for s in summary},
            **{f"{s['split']}_hours": s["hours"] for s in summary},
            "hours_by_language": {s["split"]: s["by_language"] for s in summary},
            "hours_by_source": {s["split"]: s["by_source"] for s in summary},
            "published": result.published,
            **({"ignored_upload_folders": ignored} if (ignored := ignored_upload_folders(layout)) else {}),
            "manifest_sha256": result.digests,
            "manifests": dg.MetadataValue.path(str(layout.manifests_root / "splits")),
            **(store_copies(settings, layout.manifests_root / "splits") if result.published else {}),
            "summary": dg.MetadataValue.md(
                markdown_table(summary, ("split", "items", "hours", "by_language"))
            ),
            "hours_per_split": dg.MetadataValue.md(
                charts.markdown_image(
                    charts.bars({s["split"]: s["by_language"] for s in summary}, "Hours per split", "hours"),
                    "hours per split and language",
                )
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=LEAKAGE_CHECK,
                passed=not result.leaked,
                metadata={"leaks": len(result.leaked), "examples": dict(list(result.leaked.items())[:10])},
            ),
            dg.AssetCheckResult(
                check_name=EMPTY_TRANSCRIPT_CHECK,
                passed=not result.empty,
                metadata={"empty": len(result.empty), "examples": result.empty[:10]},
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
    layout = platform.settings.layout
    views = refresh_catalog(layout.catalog_path, layout.tables_root, CATALOG_TABLES)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(layout.catalog_path)), "views": views}
    )


@dg.asset(
    group_name="curation",
    kinds={"markdown"},
    deps=[dg.AssetDep(inventory, partition_mapping=dg.AllPartitionMapping())],
    automation_condition=SPLITS_AUTOMATION,
    description="DATA_LICENSES.md: license and provenance per source, regenerated when sources change.",
)
def data_licenses(platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    path = settings.layout.licenses_path
    text = licenses_markdown(
        settings.discover_sources(), read_table_all(settings.layout.tables_root, "inventory")
    )
    write_text_atomic(path, text)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "report": dg.MetadataValue.md(text)}
    )


@dg.asset(
    group_name="curation",
    kinds={"json", "html"},
    deps=["splits"],
    automation_condition=dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_progress(),
    description="manifests/dataset_balance.json and .html: hours per language, script, source, speaker and "
    "split, speaker concentration, duration/SNR/speaking-rate histograms, and recommendations.",
)
def dataset_balance(platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    balance = write_balance(layout.manifests_root, layout.tables_root, settings.balance, platform.workers)
    report = balance.report
    advice = "\n".join(f"- {a}" for a in report["recommendations"]) or "_nothing to fix_"
    return dg.MaterializeResult(
        metadata={
            "recommendations": dg.MetadataValue.md(advice),
            "hours_by_split": report["hours_by_split"],
            "speaker_concentration": report["speaker_concentration"],
            "duration_histogram": dg.MetadataValue.md(
                charts.markdown_image(
                    charts.histogram([r.duration for r in balance.rows], "Utterance duration", "seconds"),
                    "duration histogram",
                )
            ),
            "page": dg.MetadataValue.path(str(balance.html_path)),
            "path": dg.MetadataValue.path(str(balance.json_path)),
        }
    )


curation_assets = [splits, dataset_balance, data_licenses, catalog]
curation_job = dg.define_asset_job(
    "publish_splits",
    selection=dg.AssetSelection.assets(*curation_assets),
    executor_def=dg.in_process_executor,
    description="Split every source's processed items into train/validation/test manifests; licenses report; "
    "DuckDB views.",
)
