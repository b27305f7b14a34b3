"""YouTube and other media sites through yt-dlp: best audio plus subtitles, mirrored as timed recordings.

Manual subtitles are preferred; auto-captions are used only when the source allows it, and are then flagged.
Safety (the yt-dlp CVE-2024-38519 class): only http(s) URLs and nothing that starts with '-', the Python API
with fixed output templates inside the source folder (no shell, no --exec, no cookies), and only audio and
subtitle files kept.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from whisper_assets.audio.decode import AUDIO_EXTENSIONS, AudioDecodeError, decode
from whisper_assets.audio.process import to_mono_16k, write_pcm16
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
from whisper_assets.text.timings import SUBTITLE_SUFFIXES, TimingsError, parse_subtitles


class MediaSiteSource(SourceBase):
    """Videos or playlists from YouTube and other media sites (yt-dlp): audio timed by their subtitles."""

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


def download(url: str, folder: Path, language: str, allow_auto_captions: bool, policy: AddressPolicy) -> dict:
    """Fetch best audio and subtitles of one URL (or playlist) into folder/.raw/; return yt-dlp's info.

    The URL's host must resolve to addresses the policy allows before yt-dlp sees it, and every request yt-dlp
    then makes (pages, redirects, media, subtitles) goes through a guard proxy that checks it again.
    """
    import yt_dlp

    parts = urlsplit(check_url(url, allow_private=True))  # the form; the policy judges the addresses
    resolve_allowed(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), policy)

    raw = folder / ".raw"  # hidden: the inventory reads only the mirrored audio
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
        if path.is_file() and path.suffix.lower() not in AUDIO_EXTENSIONS | set(SUBTITLE_SUFFIXES):
            path.unlink()
    shutil.rmtree(raw / ".tmp", ignore_errors=True)
    return ydl.sanitize_info(info)


def mirror_videos(info: dict, folder: Path, language: str) -> tuple[list[dict], list[dict]]:
    """Each downloaded video's audio (16 kHz) with its subtitle lines as timed segments; manifest rows and
    rejections. The segments step cuts it along those lines, as it does any subtitled recording."""
    rows, rejections = [], []
    for video in info.get("entries") or [info]:
        video_id = video["id"]
        raw = folder / ".raw"  # hidden: the inventory reads only the mirrored audio
        audio_files = [p for p in raw.glob(f"{video_id}.*") if p.suffix.lower() in AUDIO_EXTENSIONS]
        manual = (video.get("subtitles") or {}).keys()
        subtitles = sorted(p for p in raw.glob(f"{video_id}.*") if p.suffix.lower() in SUBTITLE_SUFFIXES)
        if not audio_files or not subtitles:
            rejections.append({"item": video_id, "reason": "no audio or no subtitles in the source language"})
            continue
        caption_kind = "manual" if any(k.startswith(language) for k in manual) else "auto"
        try:
            text = subtitles[0].read_text(encoding="utf-8", errors="replace")
            cues = parse_subtitles(text, subtitles[0].suffix)
            samples, rate = decode(audio_files[0])
        except (TimingsError, AudioDecodeError) as exc:
            rejections.append({"item": video_id, "reason": f"{subtitles[0].name}: {exc}"})
            continue
        name = f"{video_id}.wav"
        write_pcm16(folder / name, to_mono_16k(samples, rate))
        rows.append(
            {
                "id": video_id,
                "audio": name,
                "segments": [{"start": c.start, "end": c.end, "text": c.text} for c in cues],
                "language": language,
                "speaker": video.get("uploader_id") or video.get("uploader"),
                "provenance": {
                    "url": video.get("webpage_url") or video.get("original_url"),
                    "title": video.get("title"),
                    "uploader": video.get("uploader"),
                    "license": video.get("license"),
                    "caption_kind": caption_kind,
                },
            }
        )
    return rows, rejections


def sync_urls(
    urls: Sequence[str], folder: Path, language: str, allow_auto_captions: bool, policy: AddressPolicy
) -> dict:
    """Download every URL; the folder then holds each video's audio and a manifest of its timed lines."""
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
        video_rows, video_rejections = mirror_videos(info, folder, language)
        rows += video_rows
        rejections += video_rejections
    write_mirror(folder, rows, rejections)
    return {"videos": len(rows), "rejected": len(rejections)}
