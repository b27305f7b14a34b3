"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources. Nothing heavy at import."""

import dagster as dg

from whisper_assets.defs.curation import catalog, data_licenses, splits
from whisper_assets.defs.ingest import ingest_assets, ingest_job
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.defs.schedules import retrain_on_new_data, sync_remote_sources
from whisper_assets.defs.sensors import curation_automation, new_uploads
from whisper_assets.defs.training import (
    MlflowTracking,
    eval_metrics,
    exported_model,
    training_job,
    whisper_model,
)

defs = dg.Definitions(
    assets=[*ingest_assets, splits, data_licenses, whisper_model, eval_metrics, exported_model, catalog],
    jobs=[ingest_job, training_job],
    sensors=[new_uploads, curation_automation],
    schedules=[retrain_on_new_data, sync_remote_sources],
    resources={"platform": PlatformSettings(), "mlflow": MlflowTracking()},
)
