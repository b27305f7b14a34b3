"""Project settings: one YAML file naming the data root and the dataset sources.

The file is `whisper_assets.yaml` beside the project unless `WHISPER_ASSETS_CONFIG` names another. Relative
paths in it are resolved against the file's own folder, so a settings file travels with its data.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from whisper_assets.compute import ComputeSettings
from whisper_assets.curation.balance import BalanceSettings
from whisper_assets.curation.splits import SplitSettings
from whisper_assets.evaluation.gate import EvaluationSettings
from whisper_assets.evaluation.review_policy import PrioritySettings
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.layout import DataLayout
from whisper_assets.object_store import ObjectStoreSettings
from whisper_assets.partition_keys import SourcePartition, source_of_key, source_partitions
from whisper_assets.policy import Policy
from whisper_assets.segmentation.policy import SegmentationSettings
from whisper_assets.serving import ServingSettings
from whisper_assets.sources.folder import upload_folder_sources
from whisper_assets.sources.registry import SOURCE_KINDS, DatasetSource
from whisper_assets.tracking import MlflowSettings
from whisper_assets.training.options import TrainingOptions

CONFIG_ENV_VAR = "WHISPER_ASSETS_CONFIG"
DEFAULT_CONFIG_NAME = "whisper_assets.yaml"


class SettingsError(ValueError):
    """Invalid settings: the message names the key and how to fix it."""


class ScheduleSettings(Policy):
    """When the schedules fire (cron, in the Dagster instance's time zone)."""

    sync_cron: str = Field(
        "*/15 * * * *", description="Sync remote sources (recordings endpoints, media sites)."
    )
    retrain_cron: str = Field("0 3 * * *", description="Retrain when the split manifests changed.")


class Settings(Policy):
    """Everything the platform needs to know about where data lives and what to do with it."""

    data_root: Path = Path(".")
    default_language: str = "en"
    sources: list[DatasetSource] = Field(default_factory=list)
    splits: SplitSettings = SplitSettings()
    balance: BalanceSettings = BalanceSettings()
    unreadable_warn_share: float = Field(0.1, ge=0, le=1)
    move_duplicates: bool = Field(False, description="Move non-canonical duplicates to uploads/duplicates/.")
    segmentation: SegmentationSettings = SegmentationSettings()
    training: TrainingOptions = TrainingOptions()
    keystrokes: KeystrokeOptions = KeystrokeOptions()
    evaluation: EvaluationSettings = EvaluationSettings()
    review: PrioritySettings = PrioritySettings()
    mlflow: MlflowSettings = MlflowSettings()
    object_store: ObjectStoreSettings = ObjectStoreSettings()
    compute: ComputeSettings = ComputeSettings()
    serving: ServingSettings = ServingSettings()
    schedules: ScheduleSettings = ScheduleSettings()

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [s.name for s in self.sources]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_root)

    @property
    def alignment_model(self) -> str:
        return self.segmentation.alignment_model or self.training.base_model

    def source(self, name: str) -> DatasetSource:
        """The configured source, or one inferred with defaults for a folder that appeared under uploads/ (`name`
        may be a partition key: a shard's key names its source)."""
        name = source_of_key(name)
        for source in self.discover_sources():
            if source.name == name:
                return source
        raise SettingsError(
            f"unknown dataset source {name!r}: add it under `sources:` in the settings file or create "
            f"{self.layout.uploads_root / name}/"
        )

    def partition(self, key: str) -> tuple[DatasetSource, SourcePartition]:
        """The source of a per-source asset's partition key, and which part of it the key names."""
        source = self.source(source_of_key(key))
        for part in source_partitions(source.name, source.shards):
            if part.key == key:
                return source, part
        raise SettingsError(
            f"partition {key!r} is not one of source {source.name!r} (shards: {source.shards}): its partitions "
            f"are {', '.join(p.key for p in source_partitions(source.name, source.shards))}"
        )

    def partition_keys(self) -> dict[str, list[str]]:
        """Every source's partition keys, by source name."""
        return {s.name: [p.key for p in source_partitions(s.name, s.shards)] for s in self.discover_sources()}

    def discover_sources(self) -> list[DatasetSource]:
        """Configured sources plus every slug-named folder under uploads/ (inferred with defaults)."""
        known = {s.name for s in self.sources}
        return [*self.sources, *upload_folder_sources(self.layout, known, self.default_language)]


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
    serving = settings.serving
    if serving.smoke_clip is not None and not serving.smoke_clip.is_absolute():
        serving = serving.model_copy(update={"smoke_clip": (base / serving.smoke_clip).resolve()})
    return settings.model_copy(
        update={"data_root": data_root.resolve(), "sources": sources, "serving": serving}
    )


def _with_absolute_paths(source: DatasetSource, base: Path) -> DatasetSource:
    """Relative paths in a source entry are relative to the settings file, like data_root."""
    update = {
        field: str((base / value).resolve())
        for field in source.path_fields
        if (value := getattr(source, field)) is not None and not Path(value).is_absolute()
    }
    return source.model_copy(update=update) if update else source


def _explain(config_path: Path, exc: ValidationError) -> str:
    lines = [f"invalid settings in {config_path}:"]
    for error in exc.errors():
        parts = [str(part) for part in error["loc"]]
        if parts[:1] == ["sources"] and len(parts) > 2 and parts[2] in SOURCE_KINDS:
            # Drop the union tag pydantic adds: `sources.0.name` reads better than `sources.0.folder.name`.
            del parts[2]
        key = ".".join(parts) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key: remove it or check its spelling"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)
