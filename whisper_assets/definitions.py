"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources. Nothing heavy at import.

`build_definitions(config_path)` is the one wiring: the code location, the CLI's demo, the benchmarks and the
tests all take their jobs and resources from it.
"""

import dagster as dg

from whisper_assets.defs.compute import step_executor, training_pipes_client
from whisper_assets.defs.curation import curation_assets, curation_job
from whisper_assets.defs.ingest import ingest_assets, ingest_job
from whisper_assets.defs.keystrokes import (
    build_keystroke_schedule,
    keystroke_assets,
    keystroke_data_after_sync,
    keystroke_data_job,
    keystroke_training_job,
)
from whisper_assets.defs.resources import MlflowTracking, PlatformSettings
from whisper_assets.defs.review import review_job, review_priorities, review_queue
from whisper_assets.defs.schedules import build_schedules
from whisper_assets.defs.sensors import curation_automation, new_uploads
from whisper_assets.defs.speakers import speakers
from whisper_assets.defs.training import model_assets, sweep_job, training_job
from whisper_assets.defs.tts import tts_assets, tts_job
from whisper_assets.settings import load_settings


def build_definitions(config_path: str | None = None, workers: int = 0) -> dg.Definitions:
    """Everything, bound to one settings file (None: `WHISPER_ASSETS_CONFIG` or ./whisper_assets.yaml)."""
    settings = load_settings(config_path)
    assets = [
        *ingest_assets,
        speakers,
        *curation_assets,
        *model_assets,
        review_priorities,
        *tts_assets,
        *keystroke_assets,
    ]
    return dg.Definitions(
        assets=assets,
        jobs=[
            ingest_job,
            curation_job,
            training_job,
            sweep_job,
            review_job,
            tts_job,
            keystroke_data_job,
            keystroke_training_job,
        ],
        executor=step_executor(settings.compute, assets),
        sensors=[new_uploads, curation_automation, review_queue, keystroke_data_after_sync],
        schedules=[
            *build_schedules(settings.schedules),
            build_keystroke_schedule(settings.schedules.retrain_cron),
        ],
        resources={
            "platform": PlatformSettings(config_path=config_path, workers=workers),
            "mlflow": MlflowTracking(),
            "training_pipes": training_pipes_client(settings.compute),
        },
    )


defs = build_definitions()
