"""Where everything lives under the data root: one place for every folder the platform reads or writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    """The folders under one data root (uploads, mirrors, processed audio, tables, manifests, models, logs)."""

    data_root: Path

    @property
    def uploads_root(self) -> Path:
        return self.data_root / "uploads"

    @property
    def duplicates_root(self) -> Path:
        return self.uploads_root / "duplicates"

    @property
    def mirrors_root(self) -> Path:
        """Non-folder sources are mirrored into a folder each under here."""
        return self.data_root / "data"

    @property
    def processed_root(self) -> Path:
        return self.data_root / "data" / "processed"

    @property
    def cache_root(self) -> Path:
        return self.data_root / "data" / "cache"

    @property
    def general_speech_root(self) -> Path:
        """The built-in general-speech sets (evaluation/general_set.py), one folder per language and version."""
        return self.data_root / "data" / "general_speech"

    @property
    def features_root(self) -> Path:
        return self.data_root / "data" / "features"

    @property
    def outputs_root(self) -> Path:
        """Per-item word timings and karaoke files: outputs/<item id>/."""
        return self.data_root / "outputs"

    @property
    def speakers_root(self) -> Path:
        """Per-source speaker analyses and the manual overrides: speakers/<source>/."""
        return self.data_root / "speakers"

    def speaker_overrides(self, source: str) -> Path:
        """The `file,speaker` CSV a person writes after listening to the cluster samples; it wins over clusters."""
        return self.speakers_root / source / "speaker_overrides.csv"

    @property
    def tts_root(self) -> Path:
        """TTS dataset versions per source: tts/<source>/{preprocessed,speakers,dataset}/<version>/."""
        return self.data_root / "tts"

    @property
    def keystrokes_root(self) -> Path:
        """Keystroke manifests, split maps and tokenizers, per source."""
        return self.data_root / "keystrokes"

    @property
    def tables_root(self) -> Path:
        return self.data_root / "tables"

    @property
    def manifests_root(self) -> Path:
        return self.data_root / "manifests"

    @property
    def models_root(self) -> Path:
        return self.data_root / "models"

    @property
    def reports_root(self) -> Path:
        """HTML pages people look at (evaluation dashboards)."""
        return self.data_root / "reports"

    @property
    def logs_root(self) -> Path:
        return self.data_root / "logs"

    @property
    def mlflow_root(self) -> Path:
        return self.data_root / "mlflow"

    @property
    def catalog_path(self) -> Path:
        return self.data_root / "catalog.duckdb"

    @property
    def licenses_path(self) -> Path:
        return self.data_root / "DATA_LICENSES.md"
