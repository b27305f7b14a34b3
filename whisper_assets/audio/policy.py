"""How one source's audio is prepared: fixed 16 kHz mono 16-bit output, the rest configurable."""

from typing import Self

from pydantic import Field, model_validator

from whisper_assets.audio.vad import SpeechPolicy
from whisper_assets.policy import Policy


class AudioPolicy(Policy):
    """Loudness, silence trimming, speech detection and the duration bounds of a training item."""

    loudness_lufs: float | None = Field(None, le=0, description="Normalize to this integrated loudness.")
    trim_silence: bool = False
    trim_threshold_db: float = Field(-45.0, lt=0)
    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = Field(30.0, gt=0, description="Longer items are cut into segments at word pauses.")
    speech: SpeechPolicy = SpeechPolicy()

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.min_seconds >= self.max_seconds:
            raise ValueError("audio.min_seconds must be below audio.max_seconds")
        return self
