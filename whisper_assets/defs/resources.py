"""Resources: the one place Dagster code gets settings from."""

from functools import cached_property

import dagster as dg

from whisper_assets.settings import Settings, load_settings


class PlatformSettings(dg.ConfigurableResource):
    """The project's settings file, loaded at run time (never at import)."""

    config_path: str | None = None
    workers: int = 0  # worker processes for per-file work; 0 = one per core

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)
