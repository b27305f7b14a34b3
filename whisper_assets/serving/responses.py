"""OpenAI's response formats for a transcription: json, text, srt, vtt and verbose_json."""

from __future__ import annotations

import math
from dataclasses import asdict

from whisper_assets.serving.engine import Transcription
from whisper_assets.text.timings import format_srt, format_vtt

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("segment", "word")


def render(
    result: Transcription, response_format: str, task: str, granularities: list[str], language_name: str
) -> dict | str:
    """The response body: a JSON object, or text for text/srt/vtt."""
    if response_format == "text":
        return result.text
    if response_format == "srt":
        return format_srt(result.cues)
    if response_format == "vtt":
        return format_vtt(result.cues)
    usage = {"type": "duration", "seconds": math.ceil(result.duration)}
    if response_format == "json":
        return {"text": result.text, "usage": usage}
    body: dict = {
        "task": task,
        "language": language_name,
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if not granularities or "segment" in granularities:
        body["segments"] = [
            {k: v for k, v in asdict(segment).items() if k != "words"} for segment in result.segments
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end} for s in result.segments for w in s.words
        ]
    body["usage"] = usage
    return body
