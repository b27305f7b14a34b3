"""Every source kind ends up as a folder the inventory reads; this module knows how each gets there."""

from __future__ import annotations

from pathlib import Path

from whisper_assets.settings import (
    DatasetSource,
    HfDatasetSource,
    HttpRecordingsSource,
    MediaSiteSource,
    ReviewDbSource,
    Settings,
)
from whisper_assets.sources import hf_dataset, http_recordings, media_sites, review_db
from whisper_assets.sources.watch import ScanProgress, fingerprint_tree


def prepare_source(settings: Settings, source: DatasetSource) -> tuple[Path, dict]:
    """The folder to inventory, after mirroring non-folder sources into it; plus what the mirroring did."""
    folder = settings.source_folder(source)
    if isinstance(source, HttpRecordingsSource):
        report = http_recordings.sync(fetcher(source), folder, source.language)
        return folder, {
            "downloaded": len(report.downloaded),
            "refreshed": len(report.refreshed),
            "pruned": report.pruned,
            "failed": report.failed,
            "unchanged": report.unchanged,
        }
    if isinstance(source, MediaSiteSource):
        return folder, media_sites.sync_urls(source.urls, folder, source.language, source.allow_auto_captions)
    if isinstance(source, HfDatasetSource):
        columns = hf_dataset.Columns(
            source.audio_column,
            source.text_column,
            source.speaker_column,
            source.language_column,
            source.id_column,
        )
        return folder, {
            "exported": hf_dataset.export_dataset(
                Path(source.path), folder, source.split, columns, source.language
            )
        }
    if isinstance(source, ReviewDbSource):
        stats = review_db.export_reviewed(Path(source.path), folder, source.language)
        return folder, {
            "exported": stats.exported,
            "written": stats.written,
            "removed": stats.removed,
            "rejected": stats.rejected,
        }
    return folder, {}


def fetcher(source: HttpRecordingsSource) -> http_recordings.Fetcher:
    return http_recordings.Fetcher(
        source.base_url,
        allow_private=source.allow_private_addresses,
        timeout=source.timeout_seconds,
        max_bytes=source.max_file_mb * 2**20,
    )


def source_fingerprint(
    settings: Settings, source: DatasetSource, progress: ScanProgress, deadline: float
) -> str | None:
    """A cheap value that changes when the source's content changes (None: a folder scan ran out of time)."""
    if isinstance(source, ReviewDbSource):
        return review_db.fingerprint(Path(source.path)) if Path(source.path).exists() else "missing"
    if isinstance(source, HfDatasetSource):
        return fingerprint_tree(Path(source.path), progress, deadline)
    if isinstance(source, MediaSiteSource):
        return "urls:" + "|".join(source.urls)  # re-run when the list changes; the schedule re-syncs
    if isinstance(source, HttpRecordingsSource):
        return "synced on a schedule"  # the sensor only adds the partition; sync_remote_sources runs it
    return fingerprint_tree(settings.source_folder(source), progress, deadline)


def mark_reviewed_rows_trained(settings: Settings, train_items: list[dict]) -> dict[str, int]:
    """After a model is saved: is_trained = 1 for the review-database rows in its training manifest only."""
    marked = {}
    for source in settings.sources:
        if isinstance(source, ReviewDbSource):
            prefix = f"{source.name}-"
            rows = [int(i["id"].removeprefix(prefix)) for i in train_items if i["source"] == source.name]
            marked[source.name] = review_db.mark_trained(Path(source.path), rows)
    return marked
