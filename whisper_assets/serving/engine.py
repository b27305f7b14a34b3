"""A model version loaded into faster-whisper, and one transcription with OpenAI's request options."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from whisper_assets.audio.process import TARGET_RATE
from whisper_assets.export.ctranslate import ExportUnavailable
from whisper_assets.serving import ServingSettings
from whisper_assets.serving.admission import Deadline
from whisper_assets.serving.errors import BadRequest, NotServable
from whisper_assets.text.timings import Cue, Word

# OpenAI's temperature 0 means "start greedy and raise it when a window fails the fallback thresholds".
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class TranscribeOptions:
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False


@dataclass(frozen=True)
class Segment:
    """One decoded window's text as OpenAI's verbose_json describes it."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str
    duration: float
    segments: list[Segment]

    @property
    def cues(self) -> list[Cue]:
        return [Cue(s.start, s.end, s.text.strip(), s.words) for s in self.segments]


@dataclass(frozen=True)
class LoadedModel:
    """A registered version in memory; requests hold their own reference, so a swap never cuts one short."""

    version: str
    path: Path
    whisper: object  # faster_whisper.WhisperModel
    device: str
    compute_type: str
    loaded_at: float

    @property
    def multilingual(self) -> bool:
        return self.whisper.model.is_multilingual

    def transcribe(
        self,
        samples: np.ndarray,
        options: TranscribeOptions,
        settings: ServingSettings,
        deadline: Deadline | None = None,
    ) -> Transcription:
        """Transcribe (or translate) 16 kHz mono samples; long audio goes through the VAD filter. Past the
        `deadline` it stops at the next window (faster-whisper decodes window by window as segments are read)."""
        language = self._checked_language(options)
        duration = len(samples) / TARGET_RATE
        temperature = FALLBACK_TEMPERATURES if options.temperature == 0 else (options.temperature,)
        segments, info = self.whisper.transcribe(
            samples,
            language=language,
            task=options.task,
            beam_size=settings.beam_size,
            temperature=list(temperature),
            initial_prompt=options.prompt or None,
            word_timestamps=options.word_timestamps,
            vad_filter=duration > settings.vad_above_seconds,
        )
        decoded = []
        for found in segments:
            if deadline is not None:
                deadline.check()
            decoded.append(_segment(found))
        return Transcription("".join(s.text for s in decoded).strip(), info.language, duration, decoded)

    def _checked_language(self, options: TranscribeOptions) -> str | None:
        if options.task == "translate" and not self.multilingual:
            raise BadRequest(f"model v{self.version} is English-only: it cannot translate", param="model")
        language = (options.language or "").strip().lower() or None
        if language is not None and language not in self.whisper.supported_languages:
            raise BadRequest(
                f"language {options.language!r} is not one this model knows (ISO-639-1 codes such as 'en', 'hr')",
                param="language",
            )
        return language


def load_model(path: Path, version: str, settings: ServingSettings) -> LoadedModel:
    """Load an export with faster-whisper; a trimmed-window export is refused (faster-whisper pads to 30 s)."""
    features = json.loads((path / "preprocessor_config.json").read_text())
    if (window := features.get("chunk_length", 30)) < 30:
        raise NotServable(
            f"v{version} was trained with a trimmed {window} s encoder window: it is not a general model, and "
            "faster-whisper decodes 30 s windows; serve a version trained with window_seconds: 30"
        )
    try:
        import ctranslate2
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ExportUnavailable("serving needs the extra: pip install -e '.[export]'") from exc
    device = settings.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = settings.compute_type or ("float16" if device == "cuda" else "int8")
    whisper = WhisperModel(
        str(path),
        device=device,
        compute_type=compute_type,
        cpu_threads=settings.cpu_threads,
        num_workers=settings.workers,
    )
    return LoadedModel(version, path, whisper, device, compute_type, time.time())


def _segment(found) -> Segment:
    words = tuple(
        Word(w.word, round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
        for w in found.words or ()
    )
    return Segment(
        id=found.id,
        seek=found.seek,
        start=round(float(found.start), 3),
        end=round(float(found.end), 3),
        text=found.text,
        tokens=list(found.tokens),
        temperature=found.temperature if found.temperature is not None else 0.0,
        avg_logprob=found.avg_logprob,
        compression_ratio=found.compression_ratio,
        no_speech_prob=found.no_speech_prob,
        words=words,
    )
