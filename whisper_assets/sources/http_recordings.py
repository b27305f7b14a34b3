"""Remote recordings: mirror `<base_url>/recordings` (pairs of `.json` metadata and `.webm` audio) into a folder.

New files are downloaded (resumable with HTTP Range, size-limited, checksummed, renamed into place atomically),
changed files refreshed, files gone from the listing pruned and reported. Requests go only to the configured
host over http(s); redirects are followed only to that host; loopback, private and link-local addresses
(169.254.169.254, say) are refused unless the source explicitly allows private addresses.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from whisper_assets.layout import DataLayout
from whisper_assets.sources.base import SourceBase
from whisper_assets.sources.guard import AddressPolicy, UnsafeUrl, address_policy, check_url, pinned_opener
from whisper_assets.sources.mirror import read_state, write_mirror, write_state
from whisper_assets.sources.watch import ScanProgress

PARTIAL_DIR = ".partial"
_MIRRORED_SUFFIXES = (".json", ".webm")
_HREF = re.compile(r'href="([^"?#]+)"', re.IGNORECASE)
_CHUNK = 1 << 16


class HttpRecordingsSource(SourceBase):
    """`<base_url>/recordings` (.json metadata + .webm audio pairs), mirrored into data/recordings/<name>/."""

    remote: ClassVar[bool] = True

    kind: Literal["http_recordings"] = "http_recordings"
    base_url: str = Field(description="http(s) URL; only its host is ever contacted.")
    allow_private_addresses: bool = Field(False, description="Allow loopback/private hosts (a LAN server).")
    max_file_mb: int = Field(200, ge=1)
    timeout_seconds: float = Field(20.0, gt=0)
    keystrokes: bool = Field(
        False, description="The pairs are typing recordings: feed the keystroke model (keystrokes group)."
    )

    @model_validator(mode="after")
    def _safe_url(self) -> HttpRecordingsSource:
        check_url(self.base_url, self.allow_private_addresses)  # at load time: what needs no DNS
        return self

    @property
    def holds_typing(self) -> bool:
        return self.keystrokes

    def folder(self, layout: DataLayout) -> Path:
        return layout.mirrors_root / "recordings" / self.name

    def mirror(self, folder: Path) -> dict:
        report = sync(self.fetcher(), folder, self.language)
        return {
            "downloaded": len(report.downloaded),
            "refreshed": len(report.refreshed),
            "pruned": report.pruned,
            "failed": report.failed,
            "unchanged": report.unchanged,
        }

    def fingerprint(self, folder: Path, progress: ScanProgress, deadline: float) -> str | None:
        return "synced on a schedule"  # the sensor only adds the partition; sync_remote_sources runs it

    def fetcher(self) -> Fetcher:
        return Fetcher(
            self.base_url,
            allow_private=self.allow_private_addresses,
            timeout=self.timeout_seconds,
            max_bytes=self.max_file_mb * 2**20,
        )


class DownloadError(RuntimeError):
    """One file could not be fetched; the sync records it and goes on with the others."""


@dataclass(frozen=True)
class Fetcher:
    """HTTP(S) GETs to one host, with the safety rules, timeouts, retries with backoff and a size limit."""

    base_url: str
    allow_private: bool = False
    timeout: float = 20.0
    retries: int = 3
    backoff: float = 0.5
    max_bytes: int = 200 * 2**20
    policy: AddressPolicy | None = None  # which addresses may be connected to; default from allow_private

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).hostname or ""

    def check(self, url: str) -> None:
        """Scheme and host; the address is checked when connecting (pinned: see sources/guard.py)."""
        check_url(url, self.allow_private)
        if (urllib.parse.urlsplit(url).hostname or "") != self.host:
            raise UnsafeUrl(f"{url!r}: only the configured host {self.host!r} may be contacted")

    def open(self, url: str, headers: dict[str, str] | None = None):
        """GET with retries on connection errors and 5xx; 4xx errors fail at once."""
        self.check(url)
        opener = pinned_opener(self.policy or address_policy(self.allow_private), _SameHostRedirects(self))
        request = urllib.request.Request(url, headers={"User-Agent": "whisper-assets", **(headers or {})})
        for attempt in range(self.retries + 1):
            try:
                return opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == self.retries:
                    raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if isinstance(getattr(exc, "reason", None), UnsafeUrl):
                    raise exc.reason from exc
                if attempt == self.retries:
                    raise DownloadError(f"{url}: {exc}") from exc
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, fetcher: Fetcher):
        self.fetcher = fetcher

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            self.fetcher.check(newurl)
        except UnsafeUrl as exc:
            raise urllib.error.URLError(exc) from exc
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def list_recordings(fetcher: Fetcher) -> list[str]:
    """File names under <base_url>/recordings/: a JSON list (of names or {"name"} objects) or an HTML index."""
    url = fetcher.base_url.rstrip("/") + "/recordings/"
    with fetcher.open(url) as response:
        body = response.read(4 * 2**20).decode("utf-8", "replace")
        kind = response.headers.get_content_type()
    if kind == "application/json":
        entries = json.loads(body)
        names = [e["name"] if isinstance(e, dict) else str(e) for e in entries]
    else:
        names = [urllib.parse.unquote(href) for href in _HREF.findall(body)]
    # Plain file names only: anything with a path separator ("../x.webm", "sub/x.webm") stays unmirrored.
    safe = {n for n in names if "/" not in n and "\\" not in n and not n.startswith(".")}
    return sorted(n for n in safe if n.endswith(_MIRRORED_SUFFIXES))


@dataclass
class SyncReport:
    downloaded: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unchanged: int = 0


def sync(fetcher: Fetcher, mirror: Path, language: str) -> SyncReport:
    """Bring the mirror in line with the listing, then write its manifest and recorded rejections."""
    mirror.mkdir(parents=True, exist_ok=True)
    state: dict[str, dict] = read_state(mirror)
    report = SyncReport()
    try:
        names = list_recordings(fetcher)
    except (DownloadError, UnsafeUrl) as exc:  # server unreachable: keep the mirror as it is, say why
        report.failed["recordings listing"] = str(exc)
        _write_manifest(mirror, state, language, report.failed)
        return report
    for name in names:
        url = fetcher.base_url.rstrip("/") + "/recordings/" + urllib.parse.quote(name)
        try:
            remote = _remote_version(fetcher, url)
            if state.get(name, {}).get("version") == remote and (mirror / name).exists():
                report.unchanged += 1
                continue
            sha256 = _download(fetcher, url, mirror, name)
        except (DownloadError, UnsafeUrl) as exc:
            report.failed[name] = str(exc)
            continue
        (report.refreshed if name in state else report.downloaded).append(name)
        state[name] = {
            "version": remote,
            "sha256": sha256,
            "url": url,
            "retrieved": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    for name in sorted(set(state) - set(names)):
        (mirror / name).unlink(missing_ok=True)
        del state[name]
        report.pruned.append(name)
    write_state(mirror, state)
    _write_manifest(mirror, state, language, report.failed)
    return report


def _remote_version(fetcher: Fetcher, url: str) -> str:
    """A cheap identity of the remote file: ETag, else Last-Modified plus size (a 1-byte ranged GET)."""
    with fetcher.open(url, {"Range": "bytes=0-0"}) as response:
        headers = response.headers
        total = headers.get("Content-Range", "").rpartition("/")[2] or headers.get("Content-Length", "")
        return headers.get("ETag") or f"{headers.get('Last-Modified', '')}|{total}"


def _download(fetcher: Fetcher, url: str, mirror: Path, name: str) -> str:
    """Fetch into .partial/<name>, resuming a previous partial download; rename into place when complete."""
    partial = mirror / PARTIAL_DIR / name
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with fetcher.open(url, headers) as response:
        resumed = response.status == 206 and have > 0
        length = response.headers.get("Content-Length")
        expected = (have if resumed else 0) + int(length) if length is not None else None
        if expected is not None and expected > fetcher.max_bytes:
            raise DownloadError(f"{name} is {expected} bytes, above the {fetcher.max_bytes}-byte limit")
        received = have if resumed else 0
        with open(partial, "ab" if resumed else "wb") as out:
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > fetcher.max_bytes:
                    raise DownloadError(f"{name} exceeds the {fetcher.max_bytes}-byte limit")
                out.write(chunk)
    if expected is not None and received != expected:
        raise DownloadError(f"{name}: truncated download ({received} of {expected} bytes); resumes next sync")
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    partial.replace(mirror / name)
    return digest


def _write_manifest(mirror: Path, state: dict[str, dict], language: str, failed: dict[str, str]) -> None:
    """One manifest line per .webm with its .json metadata: transcript, language, speaker, provenance."""
    lines, rejections = [], [{"item": name, "reason": reason} for name, reason in sorted(failed.items())]
    for name in sorted(n for n in state if n.endswith(".webm")):
        meta_name = name.removesuffix(".webm") + ".json"
        try:
            meta = json.loads((mirror / meta_name).read_text(encoding="utf-8")) if meta_name in state else {}
        except (OSError, json.JSONDecodeError) as exc:
            rejections.append({"item": meta_name, "reason": f"metadata is not JSON: {exc}"})
            meta = {}
        transcript = meta.get("transcript", meta.get("text"))
        lines.append(
            {
                "id": name.removesuffix(".webm"),
                "audio": name,
                "transcript": transcript,
                "language": meta.get("language", language),
                "speaker": meta.get("speaker") or meta.get("author"),
                "provenance": {
                    "url": state[name]["url"],
                    "retrieved": state[name]["retrieved"],
                    "sha256": state[name]["sha256"],
                    "author": meta.get("author"),
                    "license": meta.get("license"),
                },
            }
        )
    write_mirror(mirror, lines, rejections)
