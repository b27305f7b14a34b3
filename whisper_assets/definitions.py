"""The Dagster code location: assets, checks, jobs, sensors and resources. Nothing heavy runs at import."""

import dagster as dg

from whisper_assets.defs.curation import splits
from whisper_assets.defs.ingest import ingest_assets, ingest_job
from whisper_assets.defs.resources import PlatformSettings
from whisper_assets.defs.sensors import curation_automation, new_uploads

defs = dg.Definitions(
    assets=[*ingest_assets, splits],
    jobs=[ingest_job],
    sensors=[new_uploads, curation_automation],
    resources={"platform": PlatformSettings()},
)
