"""Read an upload folder: audio files with their transcripts from sidecars, metadata.csv or JSONL manifests.

Transcript precedence for one audio file: a JSONL manifest entry, then a metadata.csv row, then same-name
subtitles (`.srt`, `.vtt`, `.lrc`: a transcript with timings), then `.norm.txt`, then `.txt`. Every other file
becomes an entry too, marked with why it cannot be used, so nothing dropped into a folder disappears silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISLNK
from typing import ClassVar, Literal

from pydantic import Field

from whisper_assets.audio.decode import is_audio_path
from whisper_assets.layout import DataLayout
from whisper_assets.sources.base import SLUG_PATTERN, SourceBase
from whisper_assets.sources.mirror import REJECTIONS, STATE
from whisper_assets.sources.watch import walk_files
from whisper_assets.text.encoding import TranscriptEncodingError, decode_transcript
from whisper_assets.text.timings import (
    SUBTITLE_SUFFIXES,
    Cue,
    TimingsError,
    cues_from_segments,
    cues_to_json,
    parse_subtitles,
)

METADATA_CSV = "metadata.csv"
MANIFEST_SUFFIXES = (".jsonl",)
SIDECAR_SUFFIXES = (*SUBTITLE_SUFFIXES, ".norm.txt", ".txt")
IGNORED_NAMES = frozenset(
    {"README.md", "LICENSE", "LICENSE.txt", ".DS_Store", "Thumbs.db", "desktop.ini", STATE}
)


class FolderSource(SourceBase):
    """Recordings dropped under `uploads/<name>/` (or `location`): audio + .txt, metadata.csv or JSONL."""

    is_default: ClassVar[bool] = True
    path_fields: ClassVar[tuple[str, ...]] = ("location",)

    kind: Literal["folder"] = "folder"
    location: str | None = Field(None, description="Folder to read; default `<uploads_root>/<name>`.")

    def folder(self, layout: DataLayout) -> Path:
        return Path(self.location) if self.location else layout.uploads_root / self.name


def ignored_upload_folders(layout: DataLayout) -> dict[str, str]:
    """Folders under uploads/ that cannot become sources, each with why and the name to rename it to."""
    if not layout.uploads_root.is_dir():
        return {}
    ignored = {}
    for child in sorted(layout.uploads_root.iterdir()):
        if child.is_dir() and child != layout.duplicates_root and not SLUG_PATTERN.fullmatch(child.name):
            slug = re.sub(r"[^a-z0-9_-]+", "-", child.name.lower()).strip("-_")[:63] or "source"
            ignored[child.name] = (
                f"not read: {child.name!r} is not a source name (lowercase letters, digits, '-' or '_'); "
                f"rename the folder to {slug!r}"
            )
    return ignored


def upload_folder_sources(layout: DataLayout, known: set[str], language: str) -> list[FolderSource]:
    """Slug-named folders under uploads/ that no settings entry names, as folder sources with defaults."""
    if not layout.uploads_root.is_dir():
        return []
    return [
        FolderSource(name=child.name, language=language)
        for child in sorted(layout.uploads_root.iterdir())
        if child.is_dir()
        and child != layout.duplicates_root
        and child.name not in known
        and SLUG_PATTERN.fullmatch(child.name)
    ]


@dataclass
class FolderEntry:
    """One file of a source folder, with the transcript and labels found for it."""

    rel_path: str
    size: int
    mtime_ns: int
    is_audio: bool
    transcript: str | None = None
    transcript_origin: str | None = None
    transcript_encoding: str | None = None
    language: str | None = None
    speaker: str | None = None
    problem: str | None = None
    item_key: str | None = None  # a manifest's own id for the item, when it has one
    provenance: str | None = None  # JSON from the manifest (origin URL or database row, author, ...)
    timings: str | None = None  # JSON cues, when subtitles or manifest segments time the transcript


@dataclass(frozen=True)
class TreeFile:
    rel_path: str
    size: int
    mtime_ns: int
    refused: str | None = None  # why the file is not read (a link out of the source folder, say)


def list_tree(root: Path, link_roots: Sequence[Path] = ()) -> list[TreeFile]:
    """(relative path, size, mtime) of every file: the cheap signature sensors and caches compare.

    Links are followed only to files inside the source folder (or `link_roots`, where a mirror links to
    its origin); a link anywhere else, a linked folder or a broken link is listed as refused, with the reason.
    """
    inside = [Path(os.path.realpath(r)) for r in (root, *link_roots)]
    files = []
    for rel in walk_files(root):
        path = os.path.join(root, rel)
        try:
            stat = os.lstat(path)
            link = S_ISLNK(stat.st_mode)
            if link:
                stat = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):
                files.append(TreeFile(rel, 0, 0, "broken symbolic link: not read"))
            continue  # else removed while we listed
        refused = None
        if link:
            target = Path(os.path.realpath(path))
            if S_ISDIR(stat.st_mode):
                refused = "linked folder: not followed (copy its files in, or make it a source of its own)"
            elif not any(target.is_relative_to(r) for r in inside):
                refused = f"symbolic link to {target}, outside the source folder: not read"
        files.append(TreeFile(rel, stat.st_size, stat.st_mtime_ns, refused))
    return files


def tree_signature(listed: Sequence[TreeFile], holds: Callable[[str], bool] | None = None) -> str:
    """A digest of a folder's listing (`list_tree`: path, size, mtime, refusal): any file added, removed or
    rewritten changes it. Bookkeeping files (`IGNORED_NAMES`) are left out, and with `holds` so are audio files
    that it refuses (another shard's); every other file stays, since a manifest or sidecar may describe any item."""
    digest = hashlib.sha256()
    for f in listed:
        if PurePosixPath(f.rel_path).name in IGNORED_NAMES:
            continue
        if holds is None or holds(f.rel_path) or not is_audio_path(f.rel_path):
            digest.update(f"{f.rel_path}\0{f.size}\0{f.mtime_ns}\0{f.refused or ''}\n".encode())
    return digest.hexdigest()


def scan_folder(
    root: Path, language: str, link_roots: Sequence[Path] = (), listed: Sequence[TreeFile] | None = None
) -> list[FolderEntry]:
    """All entries of a source folder (`listed`: its `list_tree`, when the caller has it already); audio entries
    carry their transcript when one was found."""
    if not root.is_dir():
        raise FileNotFoundError(f"source folder {root} does not exist")
    listed = list_tree(root, link_roots) if listed is None else listed
    refused = {f.rel_path: f.refused for f in listed if f.refused}
    others = [_entry(f, is_audio=False, problem=f.refused) for f in listed if f.refused]
    tree = {f.rel_path: f for f in listed if not f.refused}
    audio = {rel: _entry(f, is_audio=True) for rel, f in tree.items() if is_audio_path(rel)}
    claimed: set[str] = set()

    for rel, file in tree.items():
        name = PurePosixPath(rel).name
        if rel in audio or name in IGNORED_NAMES:
            continue
        if name == REJECTIONS:
            claimed.add(rel)
            others.extend(_recorded_rejections(root, file))
        elif name == METADATA_CSV or rel.endswith(MANIFEST_SUFFIXES):
            claimed.add(rel)
            others.extend(_read_manifest(root, file, audio, refused, language))

    for rel, entry in audio.items():
        if entry.transcript_origin is not None:
            continue
        stem = rel.rsplit(".", 1)[0]
        for suffix in SIDECAR_SUFFIXES:
            sidecar = stem + suffix
            if sidecar in tree:
                claimed.add(sidecar)
                _set_transcript(entry, (root / sidecar).read_bytes(), sidecar, language)
                break
    # Sidecars of other audio files (a .txt beside a .norm.txt) are claimed too.
    audio_stems = {rel.rsplit(".", 1)[0] for rel in audio}
    for rel, file in tree.items():
        if rel in audio or rel in claimed or PurePosixPath(rel).name in IGNORED_NAMES:
            continue
        if rel.endswith(".json") and rel.removesuffix(".json") in audio_stems:
            continue  # a recording's metadata sidecar (remote recordings come as .json + .webm pairs)
        if suffix := next((s for s in SIDECAR_SUFFIXES if rel.endswith(s)), None):
            if rel.removesuffix(suffix) in audio_stems:
                continue
            others.append(_entry(file, is_audio=False, problem="transcript without a matching audio file"))
        else:
            suffix = PurePosixPath(rel).suffix or "(no extension)"
            others.append(_entry(file, is_audio=False, problem=f"unsupported file type {suffix}"))
    return sorted([*audio.values(), *others], key=lambda e: e.rel_path)


def _entry(file: TreeFile, *, is_audio: bool, problem: str | None = None) -> FolderEntry:
    return FolderEntry(file.rel_path, file.size, file.mtime_ns, is_audio, problem=problem)


def _set_transcript(entry: FolderEntry, data: bytes, origin: str, language: str) -> None:
    entry.transcript_origin = origin
    try:
        decoded = decode_transcript(data, entry.language or language)
    except TranscriptEncodingError as exc:
        entry.problem = f"transcript {origin}: {exc}"
        return
    entry.transcript_encoding = decoded.encoding
    suffix = PurePosixPath(origin).suffix.lower()
    if suffix not in SUBTITLE_SUFFIXES:
        entry.transcript = decoded.text
        return
    try:
        _set_timings(entry, parse_subtitles(decoded.text, suffix))
    except TimingsError as exc:
        entry.problem = f"subtitles {origin}: {exc}"


def _set_timings(entry: FolderEntry, cues: list[Cue]) -> None:
    """Timed lines are the transcript: their text joined, their timings kept for segmentation."""
    entry.transcript = " ".join(cue.text for cue in cues)
    entry.timings = cues_to_json(cues)


def _resolve_audio(root: Path, manifest_rel: str, audio_ref: str) -> str | None:
    """Relative path (inside root) of an audio file named in a manifest, or None when it points outside."""
    base = (root / manifest_rel).parent
    # Lexical normalization, not resolve(): "../" cannot escape, but links placed inside (mirrors) may stay.
    target = Path(os.path.normpath(base / audio_ref))
    try:
        return target.relative_to(Path(os.path.normpath(root))).as_posix()
    except ValueError:
        return None


def _manifest_problem_entry(file: TreeFile, line: int, message: str) -> FolderEntry:
    """A manifest line that could not be used, listed as its own entry (path#Lline) with the reason."""
    entry = _entry(file, is_audio=False, problem=f"line {line}: {message}")
    entry.rel_path = f"{file.rel_path}#L{line}"
    return entry


def _read_manifest(
    root: Path, file: TreeFile, audio: dict[str, FolderEntry], refused: dict[str, str], language: str
) -> list[FolderEntry]:
    """Attach a metadata.csv's or JSONL manifest's rows to their audio; unusable lines become problem entries."""
    try:
        decoded = decode_transcript((root / file.rel_path).read_bytes(), language)
    except TranscriptEncodingError as exc:
        return [_entry(file, is_audio=False, problem=f"{PurePosixPath(file.rel_path).name}: {exc}")]
    is_csv = PurePosixPath(file.rel_path).name == METADATA_CSV
    rows = _csv_rows(decoded.text) if is_csv else _jsonl_rows(decoded.text)
    problems = []
    for line, row in rows:
        problem = row if isinstance(row, str) else _claim(audio, refused, root, file, row, decoded.encoding)
        if problem:
            problems.append(_manifest_problem_entry(file, line, problem))
    return problems


def _csv_rows(text: str) -> list[tuple[int, dict | str]]:
    """(line, row) pairs of a metadata.csv (file_name,transcription[,speaker_id,language])."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"file_name", "transcription"} <= set(reader.fieldnames):
        return [(1, "metadata.csv needs columns file_name,transcription")]
    return [
        (
            line,
            {
                "audio": r.get("file_name"),
                "transcript": r.get("transcription"),
                "speaker": r.get("speaker_id"),
                "language": r.get("language"),
            },
        )
        for line, r in enumerate(reader, start=2)
    ]


def _jsonl_rows(text: str) -> list[tuple[int, dict | str]]:
    """(line, row) pairs of a JSONL manifest ({id, audio, transcript or segments, language, speaker, ...})."""
    rows: list[tuple[int, dict | str]] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            rows.append((line, f"invalid JSON ({exc.msg})"))
            continue
        rows.append((line, row if isinstance(row, dict) else "each line must be a JSON object"))
    return rows


def _claim(
    audio: dict[str, FolderEntry],
    refused: dict[str, str],
    root: Path,
    file: TreeFile,
    row: dict,
    encoding: str,
) -> str | None:
    """Attach one manifest row to its audio entry; return why the row cannot be used, if so."""
    audio_ref = row.get("audio")
    if not isinstance(audio_ref, str) or not audio_ref:
        return "no audio file named"
    rel = _resolve_audio(root, file.rel_path, audio_ref)
    if rel is None:
        return f"audio path {audio_ref!r} points outside the source folder"
    if rel in refused:
        return f"audio path {audio_ref!r}: {refused[rel]}"
    if rel not in audio:
        return f"audio file {audio_ref!r} does not exist"
    entry = audio[rel]
    if entry.transcript_origin is not None and entry.transcript_origin.endswith(MANIFEST_SUFFIXES):
        return None  # a JSONL entry wins over metadata.csv
    entry.speaker = str(row["speaker"]) if row.get("speaker") not in (None, "") else None
    entry.language = str(row["language"]) if row.get("language") not in (None, "") else None
    text = row.get("transcript")
    entry.transcript_origin = file.rel_path
    entry.item_key = str(row["id"]) if row.get("id") not in (None, "") else None
    entry.provenance = json.dumps(row["provenance"], ensure_ascii=False) if row.get("provenance") else None
    entry.transcript = text if isinstance(text, str) else None
    entry.timings = None
    if row.get("segments") is not None:  # timed lines: their text is the transcript
        try:
            _set_timings(entry, cues_from_segments(row["segments"]))
        except TimingsError as exc:
            entry.problem = f"{PurePosixPath(file.rel_path).name}: {exc}"
    entry.transcript_encoding = encoding if entry.transcript is not None else None
    return None


def _recorded_rejections(root: Path, file: TreeFile) -> list[FolderEntry]:
    """Items a source mirror could not write (a corrupt database blob, say), each with its reason."""
    entries = []
    for line in (root / file.rel_path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            entry = _entry(file, is_audio=False, problem=record["reason"])
            entry.rel_path = f"{file.rel_path}#{record['item']}"
            entries.append(entry)
    return entries
