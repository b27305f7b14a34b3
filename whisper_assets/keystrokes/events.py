"""Key event timelines: the browser's `.json` in its common shapes, normalized to ordered (time, code, DOWN|UP).

Accepted shapes: a list of events, or an object with an `events` or `keystrokes` list. An event names its key by
`code` (`KeyboardEvent.code`, e.g. `KeyA`, `ShiftLeft`), its direction by `type` (keydown/keyup) or a boolean
`down`, and its time by `time`/`t`/`timestamp`/`timeStamp` (seconds or milliseconds: see `_seconds`). Entries
that are not key events (a "start" marker, mouse events) are skipped; auto-repeat keydowns (`repeat: true`, or a
second keydown of a key already down) are dropped, since the microphone hears one press.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

DOWN, UP = "DOWN", "UP"
_TIME_FIELDS = ("time", "t", "timestamp", "timeStamp", "ts")
_MS_FIELDS = ("time_ms", "ms")
_TYPES = {"keydown": DOWN, "down": DOWN, "keyup": UP, "up": UP}
_OFFSET_FIELDS = ("start", "t0", "start_time", "startTime")
_SMALLEST_MS_TIMELINE = 100.0
_TOLERANCE_SECONDS = 0.25  # a timeline may run a little past the encoded audio (encoder delay, last frame)


class TimelineRejected(ValueError):
    """The timeline cannot be used; the message is the recorded reason."""


@dataclass(frozen=True)
class KeyEvent:
    time: float  # seconds from the start of the audio
    code: str  # KeyboardEvent.code
    direction: Literal["DOWN", "UP"]

    @property
    def token(self) -> str:
        return f"{self.code}_{self.direction}"

    def as_row(self) -> list:
        return [self.time, self.code, self.direction]

    @classmethod
    def from_row(cls, row: list) -> KeyEvent:
        return cls(float(row[0]), str(row[1]), row[2])


def parse_timeline(raw: bytes | str, audio_seconds: float) -> list[KeyEvent]:
    """The key events of one recording, in time order; TimelineRejected says why a timeline is unusable."""
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TimelineRejected(f"timeline is not JSON: {exc}") from exc
    entries, offset, unit = _entries(document)
    raw_events = [e for e in (_raw_event(entry) for entry in entries if isinstance(entry, dict)) if e]
    if not raw_events:
        seen = sorted({k for entry in entries if isinstance(entry, dict) for k in entry})
        if not entries:
            raise TimelineRejected("no key events: the event list is empty")
        raise TimelineRejected(
            "no key events: no entry has a `code`, a keydown/keyup `type` (or `down` flag) and a time"
            + (f" (fields seen: {', '.join(seen[:12])})" if seen else "")
        )
    times = _seconds([t for t, _, _, _ in raw_events], offset, unit, audio_seconds)
    events = _drop_repeats(
        sorted(
            (
                (round(time, 3), order, code, direction, repeat)
                for order, (time, (_, code, direction, repeat)) in enumerate(
                    zip(times, raw_events, strict=True)
                )
            ),
            key=lambda e: (e[0], e[1]),
        )
    )
    if not events:
        raise TimelineRejected("no key events left after dropping auto-repeat keydowns")
    return events


def tokens(events: list[KeyEvent]) -> list[str]:
    return [event.token for event in events]


def _entries(document: object) -> tuple[list, float, str | None]:
    if isinstance(document, list):
        return document, 0.0, None
    if isinstance(document, dict):
        for field in ("events", "keystrokes"):
            if isinstance(document.get(field), list):
                offset = next((float(document[k]) for k in _OFFSET_FIELDS if _number(document.get(k))), 0.0)
                unit = document.get("time_unit") or document.get("units")
                return document[field], offset, unit if unit in ("ms", "s") else None
        raise TimelineRejected(
            f"no event list: expected a list or an `events`/`keystrokes` field, found {sorted(document)[:12]}"
        )
    raise TimelineRejected(f"no event list: the timeline is a JSON {type(document).__name__}")


def _raw_event(entry: dict) -> tuple[tuple[float, str | None], str, str, bool] | None:
    """((time, unit if the field names one), code, direction, repeat), or None for entries that are not key events."""
    code = entry.get("code")
    if not isinstance(code, str) or not code:
        return None
    if isinstance(entry.get("type"), str) and entry["type"].lower() in _TYPES:
        direction = _TYPES[entry["type"].lower()]
    elif isinstance(entry.get("down"), bool):
        direction = DOWN if entry["down"] else UP
    else:
        return None
    time = next(((float(entry[k]), "ms") for k in _MS_FIELDS if _number(entry.get(k))), None)
    time = time or next(((float(entry[k]), None) for k in _TIME_FIELDS if _number(entry.get(k))), None)
    if time is None:
        return None
    return time, code, direction, bool(entry.get("repeat", False))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(
    times: list[tuple[float, str | None]], offset: float, unit: str | None, audio_seconds: float
) -> list[float]:
    """Times in seconds from the audio's start. The unit is the field's (`time_ms`), the document's (`time_unit`),
    else inferred: seconds if the timeline fits the audio (or ends before 100), else milliseconds."""
    limit = audio_seconds + _TOLERANCE_SECONDS
    explicit = [t for t, u in times if u == "ms"]
    if explicit:
        values = [(t - offset) / 1000 for t, _ in times]
    else:
        shifted = [t - offset for t, _ in times]
        if unit is None:  # a millisecond timeline passes 100 within its first keystrokes
            unit = "s" if max(shifted) <= max(limit, _SMALLEST_MS_TIMELINE) else "ms"
        values = [t / 1000 for t in shifted] if unit == "ms" else shifted
    first, last = min(values), max(values)
    if first < -_TOLERANCE_SECONDS or last > limit:
        raise TimelineRejected(
            f"events outside the audio: {first:.2f} s to {last:.2f} s against {audio_seconds:.2f} s of audio"
        )
    return [min(max(v, 0.0), audio_seconds) for v in values]


def _drop_repeats(ordered: list[tuple[float, int, str, str, bool]]) -> list[KeyEvent]:
    held: set[str] = set()
    events = []
    for time, _, code, direction, repeat in ordered:
        if direction == DOWN:
            if repeat or code in held:
                continue
            held.add(code)
        else:
            held.discard(code)
        events.append(KeyEvent(time, code, direction))
    return events
