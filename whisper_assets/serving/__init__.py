"""The transcription server: OpenAI's audio API over the champion model's CTranslate2 export (faster-whisper).

It follows the registry's `champion` alias, smoke-tests a new version before swapping it in, and keeps the
previous one when the new one fails. This module holds the settings only (no heavy imports), so the settings
file stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from whisper_assets.policy import Policy


class ServingSettings(Policy):
    """How `whisper-assets serve` runs: which version it serves, on what device, its limits and its smoke test."""

    poll_seconds: float = Field(30.0, gt=0, description="How often the registry's champion alias is read.")
    pinned_version: str | None = Field(
        None, description="Serve this registered version and stop following the champion (a manual pin)."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str | None = Field(
        None, description="CTranslate2 compute type; int8 on CPU, float16 on CUDA."
    )
    quantization: str = Field(
        "int8", description="Which export to fetch, or to make when a version has none."
    )
    workers: int = Field(2, ge=1, description="Transcriptions that run at once (CTranslate2 workers).")
    max_waiting: int = Field(
        8,
        ge=0,
        description="Requests that may wait for a worker; more are refused at once with 429 and Retry-After.",
    )
    request_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="A request not answered this long after it arrived (waiting included) gets 504, and its "
        "transcription stops at its next 30 s window to free the worker.",
    )
    cpu_threads: int = Field(0, ge=0, description="Threads per worker on CPU (0: CTranslate2's default).")
    beam_size: int = Field(5, ge=1, le=20)
    max_upload_mb: float = Field(25.0, gt=0, description="Larger uploads are refused (413), as OpenAI does.")
    vad_above_seconds: float = Field(
        30.0, ge=0, description="Audio longer than this goes through faster-whisper's VAD filter."
    )
    loaded_versions: int = Field(2, ge=0, description="Versions pinned per request kept in memory (LRU).")
    retry_rejected_seconds: float = Field(
        300.0,
        gt=0,
        description="A version that failed to load or its smoke test is tried again after this, then after "
        "twice as long each time it fails again (at most a day).",
    )
    smoke_clip: Path | None = Field(
        None, description="The smoke test's clip; the bundled English one if unset."
    )
    smoke_transcript: str | None = Field(
        None,
        description="What the clip says (the bundled clip's own if unset); None with a clip of your own skips "
        "the WER check.",
    )
    smoke_language: str = "en"
    smoke_max_wer: float = Field(
        0.5, ge=0, description="A new version whose WER on the smoke clip is above this is not swapped in."
    )
