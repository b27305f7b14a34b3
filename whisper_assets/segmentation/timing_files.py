"""Timing files for a timed item (aligned, or timed by its source): transcription_base.json/.txt and karaoke.lrc (enhanced LRC)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from whisper_assets.files import write_text_if_changed
from whisper_assets.text.cuts import Span
from whisper_assets.text.timings import Word


def transcription(
    item_id: str,
    language: str,
    duration: float,
    timed_by: str,
    units: Sequence[Word],
    spans: Sequence[Span],
    word_level: bool = True,
) -> dict:
    """Segments (one per span) with their words (start, end, probability), or their timed lines where only
    lines were timed (`word_level` False: each unit is a line of a source's subtitles)."""
    segments = []
    for index, span in enumerate(spans):
        own = units[span.first : span.last + 1]
        segments.append(
            {
                "id": index,
                "start": span.start,
                "end": span.end,
                "text": " ".join(w.word for w in own),
                "words" if word_level else "lines": [
                    w.to_json() if word_level else {"text": w.word, "start": w.start, "end": w.end}
                    for w in own
                ],
            }
        )
    return {
        "id": item_id,
        "language": language,
        "duration": round(duration, 3),
        "timed_by": timed_by,
        "text": " ".join(w.word for w in units),
        "segments": segments,
    }


def lrc_time(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def karaoke_lrc(doc: dict) -> str:
    """Enhanced LRC: a [mm:ss.xx] line per segment, each word preceded by its <mm:ss.xx> start (plain LRC lines
    where only lines were timed)."""
    lines = [f"[la:{doc['language']}]", f"[length:{lrc_time(doc['duration'])}]"]
    for segment in doc["segments"]:
        if "lines" in segment:
            lines += [f"[{lrc_time(line['start'])}]{line['text']}" for line in segment["lines"]]
            continue
        words = " ".join(f"<{lrc_time(w['start'])}>{w['word']}" for w in segment["words"])
        last = segment["words"][-1]["end"] if segment["words"] else segment["end"]
        lines.append(f"[{lrc_time(segment['start'])}]{words} <{lrc_time(last)}>")
    return "\n".join(lines) + "\n"


def write_timing_files(folder: Path, doc: dict, karaoke: bool) -> None:
    """Write the item's timing files where their content changed (most re-runs write nothing)."""
    files = {
        "transcription_base.json": json.dumps(doc, indent=1, ensure_ascii=False),
        "transcription_base.txt": "\n".join(segment["text"] for segment in doc["segments"]) + "\n",
    }
    if karaoke:
        files["karaoke.lrc"] = karaoke_lrc(doc)
    for name, text in files.items():
        write_text_if_changed(folder / name, text)
