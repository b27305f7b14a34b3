"""A source's TTS dataset profile: sample rate, loudness, trimming, duration bounds and the validation split."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from whisper_assets.policy import Policy


class TtsProfile(Policy):
    """How a source becomes a TTS training dataset (`tts_preprocessed` -> `tts_speakers` -> `tts_dataset`)."""

    language: str | None = Field(None, description="Language code of the dataset; default: the source's.")
    sample_rate: Literal[16_000, 22_050, 24_000] = Field(
        22_050, description="Clips are resampled from the original recording (never up from 16 kHz copies)."
    )
    loudness_lufs: float = Field(
        -20.0, le=0, description="Integrated loudness (ITU-R BS.1770) of every clip."
    )
    trim: bool = Field(True, description="Cut leading and trailing silence (frames quieter than trim_db).")
    trim_db: float = Field(-40.0, lt=0, description="Relative to the clip's loudest 10 ms frame.")
    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = Field(15.0, gt=0)
    validation_share: float = Field(0.1, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.min_seconds >= self.max_seconds:
            raise ValueError("tts.min_seconds must be below tts.max_seconds")
        return self
