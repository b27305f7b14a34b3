"""The smoke test a version passes before it is served: transcribe a known clip and judge the transcript.

A broken model rarely fails to load; it fails by what it writes: nothing, byte debris, a repetition loop,
timestamps past the end of the clip, or words unrelated to what was said. The bundled clip is espeak-ng English
("Please transcribe this short sentence, so we know the model still works.", 5.1 s, generated for this
project); a team whose models do not speak English configures a clip and transcript of its own.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from whisper_assets.asr.metrics import hallucination_flags, score_utterance
from whisper_assets.audio.decode import decode
from whisper_assets.audio.process import TARGET_RATE, to_mono_16k
from whisper_assets.serving import ServingSettings
from whisper_assets.serving.engine import LoadedModel, TranscribeOptions, Transcription

BUNDLED_CLIP = resources.files("whisper_assets.serving") / "smoke_clip.flac"
BUNDLED_TRANSCRIPT = "Please transcribe this short sentence, so we know the model still works."
MAX_COMPRESSION_RATIO = 2.4  # Whisper's own threshold for a repetition loop
MAX_CHARS_PER_SECOND = 30.0  # fast speech is ~15 characters a second
END_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class SmokeClip:
    samples: np.ndarray  # 16 kHz mono
    transcript: str | None  # None: judge plausibility only
    language: str
    max_wer: float

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> SmokeClip:
        if settings.smoke_clip is None:
            with resources.as_file(BUNDLED_CLIP) as path:
                samples = _load(path)
            transcript = settings.smoke_transcript or BUNDLED_TRANSCRIPT
        else:
            samples, transcript = _load(settings.smoke_clip), settings.smoke_transcript
        return cls(samples, transcript, settings.smoke_language, settings.smoke_max_wer)

    @property
    def duration(self) -> float:
        return len(self.samples) / TARGET_RATE

    def failure(self, model: LoadedModel, settings: ServingSettings) -> str | None:
        """Why this model must not be served (None: it passes)."""
        speaks = model.multilingual or self.language == "en"
        options = TranscribeOptions(language=self.language if speaks else None)
        result = model.transcribe(self.samples, options, settings)
        return implausibility(
            result, self.duration, self.transcript if speaks else None, self.language, self.max_wer
        )


def implausibility(
    result: Transcription, duration: float, reference: str | None, language: str, max_wer: float
) -> str | None:
    """What is wrong with a smoke transcript, or None when it is plausible (and close enough to the reference)."""
    text = result.text.strip()
    if not text:
        return "empty transcript"
    if "\ufffd" in text:
        return f"byte debris in the transcript (tokens that are not whole characters): {text[:80]!r}"
    if _compression_ratio(text) > MAX_COMPRESSION_RATIO or hallucination_flags(reference or text, text):
        return f"a repetition loop: {text[:80]!r}"
    if len(text) / duration > MAX_CHARS_PER_SECOND:
        return f"{len(text)} characters for {duration:.1f} s of speech: {text[:80]!r}"
    last_end = max((s.end for s in result.segments), default=0.0)
    if last_end > duration + END_TOLERANCE_SECONDS:
        return f"timestamps run to {last_end:.1f} s in a {duration:.1f} s clip"
    if reference is not None:
        wer = score_utterance(reference, text, language)["wer"]
        if wer > max_wer:
            return f"WER {wer:.0%} on the smoke clip (at most {max_wer:.0%}): {text[:80]!r}"
    return None


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def _load(path: Path) -> np.ndarray:
    samples, rate = decode(path)
    return to_mono_16k(samples, rate)
