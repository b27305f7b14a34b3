"""Resources: the one place Dagster code gets settings, the MLflow tracker and the object store from."""

from functools import cached_property
from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

from whisper_assets.object_store import ObjectStore
from whisper_assets.settings import Settings, load_settings

Options = TypeVar("Options", bound=BaseModel)


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


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> dict | None:
    """The metadata of an asset's (or one partition's) latest materialization, as plain values (None: never
    materialized)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def with_overrides(defaults: Options, config: dg.Config, context: dg.AssetExecutionContext) -> Options:
    """Settings-file defaults, overridden by the fields the run's config sets for this step, read from the run
    config itself. Dagster's `model_fields_set` cannot tell: it leaves out a value equal to the Config class's
    own default (`max_steps: 60` would keep the settings file's value), and it counts every Literal field as set
    even when the run config leaves it out (the settings file's `method: lora` would train as `full`)."""
    given = context.run.run_config.get("ops", {}).get(context.op_def.name, {}).get("config") or {}
    names = set(given) & set(type(config).model_fields)
    return defaults.model_copy(update={name: getattr(config, name) for name in names})


def store_copies(settings: Settings, *paths: Path) -> dict:
    """Copy published outputs to the configured object store; metadata saying where (nothing when local only)."""
    store = ObjectStore.from_settings(settings.object_store, settings.data_root)
    if store is None:
        return {}
    transfers = {store.url(path): store.put(path) for path in paths}
    return {
        "object_store": dg.MetadataValue.json(
            {url: {"copied": t.copied, "unchanged": t.unchanged} for url, t in transfers.items()}
        )
    }
