"""Every source kind ends up as a folder the inventory reads; this module knows how each gets there."""

from __future__ import annotations

from pathlib import Path

from whisper_assets.settings import DatasetSource, FolderSource, ReviewDbSource, Settings
from whisper_assets.sources import review_db
from whisper_assets.sources.watch import ScanProgress, fingerprint_tree


def prepare_source(settings: Settings, source: DatasetSource) -> tuple[Path, dict]:
    """The folder to inventory, after mirroring non-folder sources into it; plus what the mirroring did."""
    folder = settings.source_folder(source)
    if isinstance(source, ReviewDbSource):
        stats = review_db.export_reviewed(Path(source.path), folder, source.language)
        return folder, {
            "exported": stats.exported,
            "written": stats.written,
            "removed": stats.removed,
            "rejected": stats.rejected,
        }
    return folder, {}


def source_fingerprint(
    settings: Settings, source: DatasetSource, progress: ScanProgress, deadline: float
) -> str | None:
    """A cheap value that changes when the source's content changes (None: a folder scan ran out of time)."""
    if isinstance(source, ReviewDbSource):
        return review_db.fingerprint(Path(source.path)) if Path(source.path).exists() else "missing"
    assert isinstance(source, FolderSource)
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
