"""Project settings: one YAML file naming the data root and the dataset sources.

The file is `whisper_assets.yaml` beside the project unless `WHISPER_ASSETS_CONFIG` names another. Relative
paths in it are resolved against the file's own folder, so a settings file travels with its data.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from whisper_assets.training.options import TrainingOptions

CONFIG_ENV_VAR = "WHISPER_ASSETS_CONFIG"
DEFAULT_CONFIG_NAME = "whisper_assets.yaml"
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
HTTP_URL = re.compile(r"^https?://[^/\s]+")


class SettingsError(ValueError):
    """Invalid settings: the message names the key and how to fix it."""


class Script(StrEnum):
    """Target script for Serbian/Bosnian transcripts, which are written in either alphabet."""

    KEEP = "keep"
    LATIN = "latin"
    CYRILLIC = "cyrillic"


class NumberPolicy(StrEnum):
    """What to do with digits in transcripts: keep them, or reject the item so a person spells them out."""

    KEEP = "keep"
    REJECT = "reject"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TranscriptPolicy(_Strict):
    """How transcripts of one source are normalized before training."""

    script: Script = Script.KEEP
    strip_annotations: bool = True
    lowercase: bool = False
    remove_punctuation: bool = False
    numbers: NumberPolicy = NumberPolicy.KEEP
    max_chars_per_second: float = Field(25.0, gt=0)


class AudioPolicy(_Strict):
    """How audio is prepared: fixed 16 kHz mono 16-bit output, the rest configurable."""

    loudness_lufs: float | None = Field(None, le=0, description="Normalize to this integrated loudness.")
    trim_silence: bool = False
    trim_threshold_db: float = Field(-45.0, lt=0)
    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> AudioPolicy:
        if self.min_seconds >= self.max_seconds:
            raise ValueError("audio.min_seconds must be below audio.max_seconds")
        return self


class SourceBase(_Strict):
    """What every dataset source has, whatever its kind: a slug name, labels, provenance and policies."""

    name: str
    language: str = "en"
    split_by: Literal["speaker", "content"] = Field(
        "speaker",
        description="Group key for splits when speakers are known: speaker-disjoint, or per content.",
    )
    license: str = "unknown"
    provenance: str = ""
    transcripts: TranscriptPolicy = TranscriptPolicy()
    audio: AudioPolicy = AudioPolicy()

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not SLUG_PATTERN.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a slug: use lowercase letters, digits, '-' or '_' (no commas or pipes, "
                "which break partition backfills), at most 63 characters"
            )
        return name

    @field_validator("language")
    @classmethod
    def _language_code(cls, language: str) -> str:
        if not re.fullmatch(r"[a-z]{2,3}", language):
            raise ValueError(f"{language!r} is not a language code: use a Whisper code such as 'en' or 'hr'")
        return language


class FolderSource(SourceBase):
    """Recordings dropped under `uploads/<name>/` (or `location`): audio + .txt, metadata.csv or JSONL."""

    kind: Literal["folder"] = "folder"
    location: str | None = Field(None, description="Folder to read; default `<uploads_root>/<name>`.")


class ReviewDbSource(SourceBase):
    """Reviewed rows of a review database (SQLite, table s2s_training_data), mirrored into a folder."""

    kind: Literal["review_db"]
    path: str = Field(description="The SQLite file the review app writes.")


class HttpRecordingsSource(SourceBase):
    """`<base_url>/recordings` (.json metadata + .webm audio pairs), mirrored into data/recordings/<name>/."""

    kind: Literal["http_recordings"]
    base_url: str = Field(description="http(s) URL; only its host is ever contacted.")
    allow_private_addresses: bool = Field(False, description="Allow loopback/private hosts (a LAN server).")
    max_file_mb: int = Field(200, ge=1)
    timeout_seconds: float = Field(20.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not HTTP_URL.match(url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url


class HfDatasetSource(SourceBase):
    """A Hugging Face dataset on disk (save_to_disk folder or audiofolder layout), columns mapped to items."""

    kind: Literal["hf_dataset"]
    path: str
    split: str | None = Field(None, description="One split; None takes every split.")
    audio_column: str = "audio"
    text_column: str = "text"
    speaker_column: str | None = None
    language_column: str | None = None
    id_column: str | None = None


class MediaSiteSource(SourceBase):
    """Videos or playlists from YouTube and other media sites (yt-dlp): audio cut along their subtitles."""

    kind: Literal["youtube"]
    urls: list[str] = Field(min_length=1)
    allow_auto_captions: bool = Field(False, description="Use auto-captions when no manual subtitles exist.")

    @field_validator("urls")
    @classmethod
    def _safe_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not HTTP_URL.match(url.strip()):  # so nothing starting with '-' reaches yt-dlp either
                raise ValueError(f"{url!r} is not an http(s) URL (and must not start with '-')")
        return urls


SOURCE_KINDS = ("folder", "review_db", "http_recordings", "hf_dataset", "youtube")


def _source_kind(value: object) -> str | None:
    """Entries without `kind` are upload folders."""
    return value.get("kind", "folder") if isinstance(value, dict) else getattr(value, "kind", None)


DatasetSource = Annotated[
    Annotated[FolderSource, Tag("folder")]
    | Annotated[ReviewDbSource, Tag("review_db")]
    | Annotated[HttpRecordingsSource, Tag("http_recordings")]
    | Annotated[HfDatasetSource, Tag("hf_dataset")]
    | Annotated[MediaSiteSource, Tag("youtube")],
    Discriminator(_source_kind),
]


class SplitSettings(_Strict):
    """Hash-stable train/validation/test assignment."""

    salt: str = "whisper-assets"
    train: float = Field(0.8, ge=0)
    validation: float = Field(0.1, ge=0)
    test: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitSettings:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1 (train + validation + test = {total:g})")
        return self


class EvaluationSettings(_Strict):
    """How models are judged, and when a new one becomes the champion."""

    wer_target: float | None = Field(None, ge=0, description="Normalized test WER a model must reach.")
    max_items: int | None = Field(None, ge=1, description="Evaluate on at most this many items per split.")
    batch_size: int = Field(16, ge=1)


class MlflowSettings(_Strict):
    """Where runs and models are tracked: embedded SQLite under the data root unless a URI is given."""

    tracking_uri: str | None = None
    experiment: str = "whisper-assets"
    registered_model: str = "whisper-assets"


class Settings(_Strict):
    """Everything the platform needs to know about where data lives and what to do with it."""

    data_root: Path = Path(".")
    default_language: str = "en"
    sources: list[DatasetSource] = []
    splits: SplitSettings = SplitSettings()
    unreadable_warn_share: float = Field(0.1, ge=0, le=1)
    move_duplicates: bool = Field(False, description="Move non-canonical duplicates to uploads/duplicates/.")
    training: TrainingOptions = TrainingOptions()
    evaluation: EvaluationSettings = EvaluationSettings()
    mlflow: MlflowSettings = MlflowSettings()

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [s.name for s in self.sources]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return self

    # Layout under the data root -------------------------------------------------------------------------
    @property
    def uploads_root(self) -> Path:
        return self.data_root / "uploads"

    @property
    def duplicates_root(self) -> Path:
        return self.uploads_root / "duplicates"

    @property
    def processed_root(self) -> Path:
        return self.data_root / "data" / "processed"

    @property
    def cache_root(self) -> Path:
        return self.data_root / "data" / "cache"

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
    def logs_root(self) -> Path:
        return self.data_root / "logs"

    @property
    def catalog_path(self) -> Path:
        return self.data_root / "catalog.duckdb"

    # Sources ----------------------------------------------------------------------------------------------
    def source(self, name: str) -> DatasetSource:
        """The configured source, or one inferred with defaults for a folder that appeared under uploads/."""
        for source in self.sources:
            if source.name == name:
                return source
        if (self.uploads_root / name).is_dir():
            return FolderSource(name=name, language=self.default_language)
        raise SettingsError(
            f"unknown dataset source {name!r}: add it under `sources:` in the settings file or create "
            f"{self.uploads_root / name}/"
        )

    def source_folder(self, source: DatasetSource) -> Path:
        """The folder the inventory reads: the upload folder, or the mirror of a non-folder source."""
        if isinstance(source, FolderSource):
            return Path(source.location) if source.location else self.uploads_root / source.name
        if isinstance(source, HttpRecordingsSource):
            return self.data_root / "data" / "recordings" / source.name
        return self.data_root / "data" / "sources" / source.name

    def discover_sources(self) -> list[DatasetSource]:
        """Configured sources plus every slug-named folder under uploads/ (inferred with defaults)."""
        known = {s.name: s for s in self.sources}
        if self.uploads_root.is_dir():
            for child in sorted(self.uploads_root.iterdir()):
                is_candidate = child.is_dir() and child != self.duplicates_root and child.name not in known
                if is_candidate and SLUG_PATTERN.fullmatch(child.name):
                    known[child.name] = FolderSource(name=child.name, language=self.default_language)
        return list(known.values())


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_NAME)).resolve()


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the settings file; a missing default file means all defaults."""
    config_path = Path(path).resolve() if path else default_config_path()
    if not config_path.exists():
        if path or CONFIG_ENV_VAR in os.environ:
            raise SettingsError(f"settings file {config_path} does not exist (set {CONFIG_ENV_VAR} to fix)")
        raw: dict = {}
    else:
        try:
            raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{config_path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise SettingsError(f"{config_path} must hold a mapping of settings at the top level")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_explain(config_path, exc)) from exc
    base = config_path.parent
    data_root = settings.data_root if settings.data_root.is_absolute() else base / settings.data_root
    sources = [_with_absolute_paths(source, base) for source in settings.sources]
    return settings.model_copy(update={"data_root": data_root.resolve(), "sources": sources})


def _with_absolute_paths(source: DatasetSource, base: Path) -> DatasetSource:
    """Relative paths in a source entry are relative to the settings file, like data_root."""
    field = {"folder": "location", "review_db": "path", "hf_dataset": "path"}.get(source.kind)
    value = getattr(source, field) if field else None
    if value is None or Path(value).is_absolute():
        return source
    return source.model_copy(update={field: str((base / value).resolve())})


def _explain(config_path: Path, exc: ValidationError) -> str:
    lines = [f"invalid settings in {config_path}:"]
    for error in exc.errors():
        parts = [str(part) for part in error["loc"]]
        if (
            parts[:1] == ["sources"]
            and len(parts) > 2
            and parts[2] in ("folder", "review_db", "http_recordings")
        ):
            # Drop the union tag pydantic adds: `sources.0.name` reads better than `sources.0.folder.name`.
            del parts[2]
        key = ".".join(parts) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key: remove it or check its spelling"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)
