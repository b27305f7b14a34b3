"""Timed text: words and cues (lines with a start and an end), and the subtitle formats that carry them.

A source that already knows when its lines are spoken (SRT, WebVTT, LRC next to the audio, YouTube's timed-text
XML, or `segments` in a JSONL manifest) gives cues; enhanced LRC's `<mm:ss.xx>` tags and WebVTT's inline
`<hh:mm:ss.mmm>` tags give words too. These timings are used instead of forced alignment.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from xml.etree import ElementTree

SUBTITLE_SUFFIXES = (".srt", ".vtt", ".lrc", ".srv1", ".srv2", ".srv3")


class TimingsError(ValueError):
    """A subtitle file or manifest `segments` value that cannot be read, with where and why."""


@dataclass(frozen=True)
class Word:
    """A word and where it is spoken, in seconds; probability is the aligner's (None when a source gave it)."""

    word: str
    start: float
    end: float
    probability: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cue:
    """A line of text and where it is spoken; `words` when the source timed each word too."""

    start: float
    end: float | None  # None: until the next cue, or the end of the recording (an LRC's last line)
    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)


def cues_to_json(cues: Sequence[Cue]) -> str:
    return json.dumps([asdict(c) for c in cues], ensure_ascii=False)


def cues_from_json(text: str) -> list[Cue]:
    return [
        Cue(c["start"], c["end"], c["text"], tuple(Word(**w) for w in c.get("words") or ()))
        for c in json.loads(text)
    ]


def parse_subtitles(text: str, suffix: str) -> list[Cue]:
    """Cues of an .srt, .vtt, .lrc or .srv1/2/3 file's text, in time order."""
    suffix = suffix.lower()
    parser = (
        _parse_srv
        if suffix.startswith(".srv")
        else {".srt": _parse_srt, ".vtt": _parse_vtt, ".lrc": _parse_lrc}[suffix]
    )
    lines = parser(text.replace("\r\n", "\n").replace("\r", "\n"))
    cues = sorted((c for c in lines if c.text), key=lambda c: c.start)
    if not cues:
        raise TimingsError("no timed lines")
    return cues


def cues_from_segments(segments: object) -> list[Cue]:
    """Cues of a manifest's `segments`: [{start, end, text, words?: [{word, start, end}]}]."""
    if not isinstance(segments, list) or not segments:
        raise TimingsError("segments must be a non-empty list of {start, end, text}")
    cues = []
    for index, segment in enumerate(segments):
        try:
            words = tuple(
                Word(str(w["word"]), float(w["start"]), float(w["end"])) for w in segment.get("words") or ()
            )
            cues.append(Cue(float(segment["start"]), float(segment["end"]), str(segment["text"]), words))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TimingsError(f"segment {index}: needs numeric start and end and a text ({exc})") from exc
    return sorted(cues, key=lambda c: c.start)


def normalize_cues(cues: Sequence[Cue], normalize: Callable[[str], str]) -> list[Cue]:
    """Cues with their text (and each word) normalized; lines and words left empty (annotations) are dropped.

    A cue with words gets the words' joined text, so the words and the line always agree.
    """
    out = []
    for cue in cues:
        words = tuple(replace(w, word=n) for w in cue.words if (n := normalize(w.word)))
        text = " ".join(w.word for w in words) if cue.words else normalize(cue.text)
        if text:
            out.append(Cue(cue.start, cue.end, text, words))
    return out


def settle(cues: Sequence[Cue], duration: float) -> list[Cue]:
    """Cues as the recording allows: an open end closes at the next cue (or the end), none reaches past the
    next cue's start or the recording's end, so cues never overlap."""
    settled = []
    for index, cue in enumerate(cues):
        following = cues[index + 1].start if index + 1 < len(cues) else duration
        start = min(cue.start, duration)
        end = max(start, min(cue.end if cue.end is not None else following, following, duration))
        words = [
            replace(w, start=min(max(w.start, start), end), end=min(max(w.end, start), end))
            for w in cue.words
        ]
        if words and words[-1].end <= words[-1].start:  # the last word's end was not given: the line's end
            words[-1] = replace(words[-1], end=end)
        settled.append(Cue(round(start, 3), round(end, 3), cue.text, tuple(words)))
    return settled


_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?")


def parse_clock(value: str) -> float:
    """Seconds of `hh:mm:ss,mmm`, `hh:mm:ss.mmm`, `mm:ss.mmm` or `mm:ss.xx`."""
    match = _CLOCK.fullmatch(value.strip())
    if not match:
        raise TimingsError(f"not a time: {value!r}")
    hours, minutes, seconds, fraction = match.groups()
    whole = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return round(whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0), 3)


def format_clock(seconds: float, decimal: str = ".") -> str:
    """`hh:mm:ss.mmm` (WebVTT) or, with decimal=",", `hh:mm:ss,mmm` (SRT)."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


def format_srt(cues: Sequence[Cue]) -> str:
    """An SRT file of timed cues (numbered from 1; a cue without an end lasts until it starts)."""
    blocks = [
        f"{n}\n{format_clock(c.start, ',')} --> {format_clock(c.end or c.start, ',')}\n{c.text.strip()}\n"
        for n, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def format_vtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file of timed cues."""
    blocks = [
        f"{format_clock(c.start)} --> {format_clock(c.end or c.start)}\n{c.text.strip()}\n" for c in cues
    ]
    return "\n".join(["WEBVTT\n", *blocks])


_ARROW = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")
_TAG = re.compile(r"<[^<>]*>")


def _timed_blocks(text: str) -> list[tuple[int, float, float, list[str]]]:
    """(line number, start, end, text lines) of every `start --> end` block of an SRT or WebVTT file."""
    blocks = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if match := _ARROW.match(line):
            try:
                start, end = parse_clock(match[1]), parse_clock(match[2])
            except TimingsError as exc:
                raise TimingsError(f"line {number}: {exc}") from exc
            if end < start:
                raise TimingsError(f"line {number}: ends before it starts")
            body = []
            for following in lines[number:]:
                if not following.strip():
                    break
                body.append(following.strip())
            blocks.append((number, start, end, body))
    return blocks


def _parse_srt(text: str) -> list[Cue]:
    return [
        Cue(start, end, _TAG.sub("", " ".join(body)).strip()) for _, start, end, body in _timed_blocks(text)
    ]


_VTT_WORD = re.compile(r"<(\d[\d:.]*)>")


def _parse_vtt(text: str) -> list[Cue]:
    """WebVTT cues; a line that repeats the previous one and extends it (YouTube's rolling auto-captions) keeps
    only the new words."""
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise TimingsError("a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    for number, start, end, body in _timed_blocks(text):
        line = " ".join(body)
        pieces = _VTT_WORD.split(line)  # text, time, text, time, text ...
        if len(pieces) == 1:
            words = _TAG.sub("", line).strip()
            if cues and not cues[-1].words and words.startswith(cues[-1].text):
                words = words[len(cues[-1].text) :].strip() or words
            cues.append(Cue(start, end, words))
            continue
        try:
            times = [start] + [parse_clock(t) for t in pieces[1::2]]
        except TimingsError as exc:
            raise TimingsError(f"line {number + 1}: {exc}") from exc
        words = _words(zip(times, [_TAG.sub("", p).strip() for p in pieces[0::2]], strict=True), end)
        cues.append(Cue(start, end, " ".join(w.word for w in words), words))
    return cues


def _parse_srv(text: str) -> list[Cue]:
    """YouTube's timed-text XML: srv1 `<text start= dur=>` (seconds) or srv3 `<p t= d=>` (milliseconds)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise TimingsError(f"not valid XML ({exc})") from exc
    cues = []
    for node in root.iter():
        if node.tag == "text" and "start" in node.attrib:
            start, length = float(node.get("start", 0)), float(node.get("dur", 0))
        elif node.tag == "p" and "t" in node.attrib:
            start, length = int(node.get("t", 0)) / 1000, int(node.get("d", 0)) / 1000
        else:
            continue
        words = html.unescape(" ".join("".join(node.itertext()).split()))
        if words and length > 0:
            cues.append(Cue(start, round(start + length, 3), words))
    return cues


_LRC_TIME = re.compile(r"\[(\d+:\d{2}(?:[.:]\d{1,3})?)\]")
_LRC_WORD = re.compile(r"<(\d+:\d{2}(?:[.:]\d{1,3})?)>")
_LRC_OFFSET = re.compile(r"\[offset:\s*([+-]?\d+)\]", re.IGNORECASE)


def _lrc_clock(value: str) -> float:
    minutes, rest = value.split(":", 1)
    return parse_clock(f"{minutes}:{rest.replace(':', '.')}")


def _parse_lrc(text: str) -> list[Cue]:
    """Lines `[mm:ss.xx]text` (several stamps repeat a line); `<mm:ss.xx>` before words (enhanced LRC); a
    line lasts until the next one; `[offset:ms]` shifts every stamp (positive: earlier, as players read it)."""
    offset = -int(match[1]) / 1000 if (match := _LRC_OFFSET.search(text)) else 0.0
    cues = []
    for number, raw in enumerate(text.split("\n"), start=1):
        stamps = []
        rest = raw.strip()
        while match := _LRC_TIME.match(rest):
            stamps.append(_lrc_clock(match[1]) + offset)
            rest = rest[match.end() :]
        if not stamps:
            continue  # metadata ([ar:...], [length:...]) or a blank line
        pieces = _LRC_WORD.split(rest)
        try:
            word_times = [_lrc_clock(t) + offset for t in pieces[1::2]]
        except TimingsError as exc:
            raise TimingsError(f"line {number}: {exc}") from exc
        for stamp in stamps:  # a line stamped several times (a chorus) repeats with its words moved along
            shift = stamp - stamps[0]
            timed = [(stamp, pieces[0].strip())] + [
                (t + shift, p.strip()) for t, p in zip(word_times, pieces[2::2], strict=True)
            ]
            words = _words(timed, None) if word_times else ()
            closed = bool(word_times) and not pieces[-1].strip()  # a last tag with no word marks the end
            cues.append(
                Cue(
                    max(0.0, stamp),
                    timed[-1][0] if closed else None,
                    " ".join(w.word for w in words) if words else rest.strip(),
                    words,
                )
            )
    return cues


def _words(timed: Iterable[tuple[float, str]], end: float | None) -> tuple[Word, ...]:
    """Words from (time, text) pieces: each lasts until the next piece's time, the last until `end` (None:
    unknown, left at zero length for `settle` to close); an empty piece (a closing tag) only marks a time."""
    pieces = [(max(0.0, t), p) for t, p in timed]
    words = []
    for index, (time, piece) in enumerate(pieces):
        if piece:
            following = pieces[index + 1][0] if index + 1 < len(pieces) else end
            words.append(Word(piece, round(time, 3), round(time if following is None else following, 3)))
    return tuple(words)
