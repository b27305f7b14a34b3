"""Resources: the one place Dagster code gets settings and the MLflow tracker from."""

from functools import cached_property

import dagster as dg

from whisper_assets.settings import Settings, load_settings


class PlatformSettings(dg.ConfigurableResource):
    """The project's settings file, loaded at run time (never at import)."""

    config_path: str | None = None
    workers: int = 0  # threads for per-file work; 0 = one per core

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)


class MlflowTracking(dg.ConfigurableResource):
    """MLflow tracking: the settings file's `mlflow:` section unless overridden here (e.g. by EnvVar)."""

    tracking_uri: str | None = None

    def tracker(self, settings: Settings):
        from whisper_assets.tracking.tracker import Tracker  # imports MLflow: only in runs that track

        return Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root, self.tracking_uri)


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict | None:
    """The metadata of an asset's latest materialization, as plain values (None: never materialized)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}
