"""YouTube and other media sites through yt-dlp: best audio plus subtitles, cut into <= 30 s utterances.

Manual subtitles are preferred; auto-captions are used only when the source allows it, and are then flagged.
Safety (the yt-dlp CVE-2024-38519 class): only http(s) URLs and nothing that starts with '-', the Python API
with fixed output templates inside the source folder (no shell, no --exec, no cookies), and only audio and
subtitle files kept.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree

import numpy as np
from pydantic import Field, model_validator

from whisper_assets.audio.decode import AUDIO_EXTENSIONS, AudioDecodeError, decode
from whisper_assets.audio.process import TARGET_RATE, to_mono_16k, write_pcm16
from whisper_assets.sources.base import SourceBase
from whisper_assets.sources.guard import (
    AddressPolicy,
    UnsafeUrl,
    address_policy,
    check_url,
    guard_proxy,
    proxy_url,
    resolve_allowed,
)
from whisper_assets.sources.mirror import write_mirror
from whisper_assets.sources.watch import ScanProgress

SUBTITLE_EXTENSIONS = frozenset({".vtt", ".srv1", ".srv2", ".srv3", ".srt"})
MAX_SEGMENT_SECONDS = 30.0
_TIMESTAMP = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
_CUE = re.compile(_TIMESTAMP + r"\s*-->\s*" + _TIMESTAMP)
_TAG = re.compile(r"<[^>]+>")


class MediaSiteSource(SourceBase):
    """Videos or playlists from YouTube and other media sites (yt-dlp): audio cut along their subtitles."""

    remote: ClassVar[bool] = True

    kind: Literal["youtube"] = "youtube"
    urls: list[str] = Field(min_length=1)
    allow_auto_captions: bool = Field(False, description="Use auto-captions when no manual subtitles exist.")
    allow_private_addresses: bool = Field(False, description="Allow loopback/private hosts (a LAN server).")

    @model_validator(mode="after")
    def _safe_urls(self) -> MediaSiteSource:
        for url in self.urls:
            check_url(url, self.allow_private_addresses)  # at load time: what needs no DNS
        return self

    def mirror(self, folder: Path) -> dict:
        policy = address_policy(self.allow_private_addresses)
        return sync_urls(self.urls, folder, self.language, self.allow_auto_captions, policy)

    def fingerprint(self, folder: Path, progress: ScanProgress, deadline: float) -> str | None:
        return "urls:" + "|".join(self.urls)  # re-run when the list changes; the schedule re-syncs


class MalformedSubtitles(ValueError):
    """Subtitles without a single readable cue."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def parse_subtitles(path: Path) -> list[Cue]:
    """Cues of a downloaded subtitle file, whichever format yt-dlp could get (VTT/SRT or SRV1/2/3 XML)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse_srv(text) if path.suffix.lower().startswith(".srv") else parse_vtt(text)


def parse_srv(text: str) -> list[Cue]:
    """YouTube's timed-text XML: srv1 `<text start= dur=>` (seconds) or srv3 `<p t= d=>` (milliseconds)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise MalformedSubtitles(f"subtitles are not valid XML ({exc})") from exc
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
            cues.append(Cue(start, start + length, words))
    if not cues:
        raise MalformedSubtitles("no timed cue could be read from the subtitles")
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """Cues of a WebVTT (or SRT) file; inline tags removed, duplicate rolling lines (auto-captions) merged."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        timing = next((i for i, line in enumerate(lines) if _CUE.search(line)), None)
        if timing is None:
            continue
        match = _CUE.search(lines[timing])
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        words = " ".join(_TAG.sub("", line).strip() for line in lines[timing + 1 :]).strip()
        if end <= start or not words:
            continue
        if cues and words.startswith(cues[-1].text):  # auto-captions repeat the previous line and extend it
            words = words[len(cues[-1].text) :].strip() or words
        cues.append(Cue(start, end, words))
    if not cues:
        raise MalformedSubtitles("no timed cue could be read from the subtitles")
    return cues


def _seconds(parts: Sequence[str | None]) -> float:
    hours, minutes, seconds, millis = (int(p) if p else 0 for p in parts)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def group_cues(cues: Sequence[Cue], max_seconds: float = MAX_SEGMENT_SECONDS) -> list[Cue]:
    """Consecutive cues joined into utterances of at most max_seconds (a longer single cue stays alone)."""
    groups: list[Cue] = []
    for cue in cues:
        if groups and cue.end - groups[-1].start <= max_seconds and cue.start >= groups[-1].end - 0.01:
            last = groups[-1]
            groups[-1] = Cue(last.start, cue.end, f"{last.text} {cue.text}")
        else:
            groups.append(cue)
    return groups


def download(url: str, folder: Path, language: str, allow_auto_captions: bool, policy: AddressPolicy) -> dict:
    """Fetch best audio and subtitles of one URL (or playlist) into folder/.raw/; return yt-dlp's info.

    The URL's host must resolve to addresses the policy allows before yt-dlp sees it, and every request yt-dlp
    then makes (pages, redirects, media, subtitles) goes through a guard proxy that checks it again.
    """
    import yt_dlp

    parts = urlsplit(check_url(url, allow_private=True))  # the form; the policy judges the addresses
    resolve_allowed(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), policy)

    raw = folder / ".raw"  # hidden: the inventory reads only the cut utterances
    raw.mkdir(parents=True, exist_ok=True)
    params = {
        "format": "bestaudio/best",
        "paths": {"home": str(raw), "temp": str(raw / ".tmp")},
        "outtmpl": {"default": "%(id)s.%(ext)s", "subtitle": "%(id)s.%(ext)s"},
        "restrictfilenames": True,
        "windowsfilenames": True,
        "writesubtitles": True,
        "writeautomaticsub": allow_auto_captions,
        "subtitleslangs": [language, f"{language}.*"],
        "subtitlesformat": "vtt/srv3/best",
        "cookiefile": None,
        "noplaylist": False,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "overwrites": False,
        "retries": 3,
        "socket_timeout": 20,
    }
    with guard_proxy(policy) as proxy, yt_dlp.YoutubeDL(params | {"proxy": proxy_url(proxy)}) as ydl:
        try:
            info = ydl.extract_info(url, download=True)
        except Exception as exc:
            if proxy.refused:
                raise UnsafeUrl(f"refused to fetch {'; '.join(proxy.refused)}") from exc
            raise
    for path in raw.rglob("*"):  # keep only audio and subtitles
        if path.is_file() and path.suffix.lower() not in AUDIO_EXTENSIONS | SUBTITLE_EXTENSIONS:
            path.unlink()
    shutil.rmtree(raw / ".tmp", ignore_errors=True)
    return ydl.sanitize_info(info)


def segment_videos(info: dict, folder: Path, language: str) -> tuple[list[dict], list[dict]]:
    """Cut each downloaded video's audio along its subtitle cues; manifest rows and rejections."""
    rows, rejections = [], []
    for video in info.get("entries") or [info]:
        video_id = video["id"]
        raw = folder / ".raw"  # hidden: the inventory reads only the cut utterances
        audio_files = [p for p in raw.glob(f"{video_id}.*") if p.suffix.lower() in AUDIO_EXTENSIONS]
        manual = (video.get("subtitles") or {}).keys()
        subtitles = sorted(p for p in raw.glob(f"{video_id}.*") if p.suffix.lower() in SUBTITLE_EXTENSIONS)
        if not audio_files or not subtitles:
            rejections.append({"item": video_id, "reason": "no audio or no subtitles in the source language"})
            continue
        caption_kind = "manual" if any(k.startswith(language) for k in manual) else "auto"
        try:
            cues = group_cues(parse_subtitles(subtitles[0]))
            samples, rate = decode(audio_files[0])
        except (MalformedSubtitles, AudioDecodeError) as exc:
            rejections.append({"item": video_id, "reason": str(exc)})
            continue
        audio = to_mono_16k(samples, rate)
        for k, cue in enumerate(cues):
            piece = audio[int(cue.start * TARGET_RATE) : int(cue.end * TARGET_RATE)]
            if not np.any(piece):
                continue
            name = f"{video_id}_{k:04d}.wav"
            write_pcm16(folder / name, piece)
            rows.append(
                {
                    "id": f"{video_id}-{k:04d}",
                    "audio": name,
                    "transcript": cue.text,
                    "language": language,
                    "speaker": video.get("uploader_id") or video.get("uploader"),
                    "provenance": {
                        "url": video.get("webpage_url") or video.get("original_url"),
                        "title": video.get("title"),
                        "uploader": video.get("uploader"),
                        "license": video.get("license"),
                        "caption_kind": caption_kind,
                        "start": cue.start,
                        "end": cue.end,
                    },
                }
            )
    return rows, rejections


def sync_urls(
    urls: Sequence[str], folder: Path, language: str, allow_auto_captions: bool, policy: AddressPolicy
) -> dict:
    """Download every URL and cut it into utterances; the folder then holds a manifest the inventory reads."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, rejections = [], []
    for url in urls:
        try:
            info = download(url, folder, language, allow_auto_captions, policy)
        except UnsafeUrl as exc:
            rejections.append({"item": url, "reason": str(exc)})
            continue
        except Exception as exc:  # yt-dlp's DownloadError and friends: recorded, the other URLs go on
            rejections.append({"item": url, "reason": f"download failed: {exc}"})
            continue
        video_rows, video_rejections = segment_videos(info, folder, language)
        rows += video_rows
        rejections += video_rejections
    write_mirror(folder, rows, rejections)
    return {"utterances": len(rows), "rejected": len(rejections)}
