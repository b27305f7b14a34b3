"""Per-source speaker ids: the `speakers` asset (embeddings clustered into speakers for unlabeled sources)."""

from pathlib import Path

import dagster as dg

from whisper_assets.curation.processing import STATUS_OK
from whisper_assets.defs.ingest import GROUP, segments
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.reporting import count_reasons, hours_by
from whisper_assets.speakers.analysis import (
    SPEAKERS_SCHEMA,
    Utterance,
    analyze_speakers,
    read_overrides,
    speaker_rows,
)
from whisper_assets.speakers.embeddings import SpeakerEncoder
from whisper_assets.tables import read_rows, table_path, write_rows


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"parquet", "numpy"},
    deps=[segments],
    description="Each utterance's speaker: the source's label, a line of speakers/<source>/speaker_overrides.csv, "
    "or (sources with speakers.cluster) its voice's cluster; cluster samples to verify by ear.",
)
def speakers(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    source, part = settings.partition(context.partition_key)
    labels = {r["id"]: r["speaker"] for r in read_rows(table_path(layout.tables_root, "inventory", part.key))}
    rows = [
        r for r in read_rows(table_path(layout.tables_root, "segments", part.key)) if r["status"] == STATUS_OK
    ]
    utterances = [
        Utterance(r["id"], r["audio"], Path(r["audio"]).stem, r["rel_path"], labels.get(r["parent_id"]))
        for r in rows
    ]
    analysis = None
    metadata: dict = {}
    if source.speakers.cluster:
        folder = layout.speakers_root / source.name / "speaker_analysis"
        overrides = read_overrides(layout.speaker_overrides(source.name))
        analysis = analyze_speakers(utterances, folder, source.speakers, SpeakerEncoder(), overrides)
        metadata = {
            "clusters": len(set(analysis.clusters.values())),
            "embedded_now": analysis.embedded_now,
            "unmatched_overrides": analysis.unmatched_overrides,
            "analysis": dg.MetadataValue.path(str(folder)),
            "cluster_samples": dg.MetadataValue.path(str(folder / "cluster_samples")),
        }
        if analysis.unmatched_overrides:
            context.log.warning(f"overrides naming no utterance: {analysis.unmatched_overrides[:10]}")
    table = speaker_rows(
        source.name,
        utterances,
        {r["id"]: r["parent_id"] for r in rows},
        {r["id"]: r["duration"] for r in rows},
        analysis,
    )
    path = table_path(layout.tables_root, "speakers", part.key)
    write_rows(path, table, SPEAKERS_SCHEMA)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "speakers": len({r["speaker"] for r in table if r["speaker"]}),
            "origins": count_reasons(r["origin"] or "unknown" for r in table),
            "hours_by_speaker": hours_by(
                [{**r, "speaker": r["speaker"] or "unknown"} for r in table], "speaker"
            ),
            "overrides": dg.MetadataValue.path(str(layout.speaker_overrides(source.name))),
            **metadata,
            "path": dg.MetadataValue.path(str(path)),
        }
    )
