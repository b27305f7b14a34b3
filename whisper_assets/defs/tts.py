"""TTS voice dataset per source: tts_preprocessed -> tts_speakers -> tts_dataset (each a new version folder)."""

import dagster as dg

from whisper_assets.curation.processing import STATUS_OK
from whisper_assets.defs.ingest import segments
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.reporting import count_reasons, hours_by, markdown_table
from whisper_assets.settings import Settings
from whisper_assets.sources.base import SourceBase
from whisper_assets.speakers.analysis import read_overrides
from whisper_assets.speakers.embeddings import SpeakerEncoder
from whisper_assets.tables import read_rows, table_path
from whisper_assets.tts.dataset import build_dataset
from whisper_assets.tts.preprocess import preprocess, read_metadata, tts_clips
from whisper_assets.tts.profile import TtsProfile
from whisper_assets.tts.versions import current_version, mark_current
from whisper_assets.tts.voices import attribute_voices

GROUP = "tts"


def _source(settings: Settings, name: str) -> tuple[SourceBase, TtsProfile]:
    source = settings.source(name)
    if source.tts is None:
        raise dg.Failure(
            f"source {name!r} has no `tts:` profile: add one to its entry under `sources:` in the settings file "
            "to build a TTS dataset from it"
        )
    return source, source.tts


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"wav", "csv"},
    deps=[segments],
    description="The source's trainable utterances cut from the original recordings at the TTS rate, trimmed, "
    "loudness-normalized and bounded in duration: tts/<source>/preprocessed/<version>/metadata.csv + wavs/.",
)
def tts_preprocessed(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    source, profile = _source(settings, context.partition_key)
    utterances = [
        r
        for r in read_rows(table_path(layout.tables_root, "segments", source.name))
        if r["status"] == STATUS_OK
    ]
    inventory = read_rows(table_path(layout.tables_root, "inventory", source.name))
    trimmed = source.audio.trim_silence or source.audio.speech.trim
    clips, rejected = tts_clips(utterances, inventory, trimmed)
    result = preprocess(clips, profile, layout.tts_root / source.name, rejected, platform.workers)
    mark_current(result.folder)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.rows),
            "hours": round(sum(r["duration"] for r in result.rows) / 3600, 4),
            "rejected": len(result.rejected),
            "rejections": count_reasons(r["reason"] for r in result.rejected),
            "cut_now": result.cut_now,
            "reused_version": result.reused,
            "sample_rate": profile.sample_rate,
            "version_folder": dg.MetadataValue.path(str(result.folder)),
            "preview": dg.MetadataValue.md(markdown_table(result.rows, ("id", "duration", "text"))),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"numpy", "csv"},
    deps=[tts_preprocessed],
    description="A speaker id per TTS clip (the source's label, speakers/<source>/speaker_overrides.csv, else the "
    "voice's cluster) in a new metadata.csv; speaker_analysis/ with embeddings and a sample per cluster.",
)
def tts_speakers(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    layout = settings.layout
    source, _ = _source(settings, context.partition_key)
    root = layout.tts_root / source.name
    preprocessed = current_version(root / "preprocessed", "tts_preprocessed")
    voices = attribute_voices(
        preprocessed,
        read_metadata(preprocessed),
        root,
        source.speakers,
        SpeakerEncoder(),
        read_overrides(layout.speaker_overrides(source.name)),
    )
    mark_current(voices.folder)
    analysis = voices.analysis
    if analysis.unmatched_overrides:
        context.log.warning(f"overrides naming no clip: {analysis.unmatched_overrides[:10]}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(voices.rows),
            "speakers": len(set(analysis.speakers.values())),
            "clusters": len(set(analysis.clusters.values())),
            "origins": count_reasons(analysis.origins.values()),
            "hours_by_speaker": hours_by(voices.rows, "speaker_id"),
            "embedded_now": analysis.embedded_now,
            "unmatched_overrides": analysis.unmatched_overrides,
            "reused_version": voices.reused,
            "cluster_samples": dg.MetadataValue.path(str(root / "speaker_analysis" / "cluster_samples")),
            "version_folder": dg.MetadataValue.path(str(voices.folder)),
        }
    )


@dg.asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"huggingface"},
    deps=[tts_speakers],
    description="A Hugging Face DatasetDict (train/validation; audio, text, speaker_id) saved with save_to_disk "
    "under tts/<source>/dataset/<version>/, with a dataset card (README.md) giving hours per speaker.",
)
def tts_dataset(context: dg.AssetExecutionContext, platform: PlatformSettings) -> dg.MaterializeResult:
    settings = platform.settings
    source, profile = _source(settings, context.partition_key)
    root = settings.layout.tts_root / source.name
    attributed = current_version(root / "speakers", "tts_speakers")
    dataset = build_dataset(
        read_metadata(attributed), attributed, profile, root, source.name, profile.language or source.language
    )
    mark_current(dataset.folder)
    card = (dataset.folder / "README.md").read_text(encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            **{f"{split}_clips": len(rows) for split, rows in dataset.rows_by_split.items()},
            "hours_by_speaker": dataset.hours_by_speaker(),
            "reused_version": dataset.reused,
            "path": dg.MetadataValue.path(str(dataset.folder)),
            "card": dg.MetadataValue.md(card),
        }
    )


tts_assets = [tts_preprocessed, tts_speakers, tts_dataset]
tts_job = dg.define_asset_job(
    "build_tts_dataset",
    selection=dg.AssetSelection.assets(*tts_assets),
    executor_def=dg.in_process_executor,
    description="Turn one source into a TTS voice dataset: clips at the TTS rate, speaker ids, a DatasetDict.",
)
