"""`tts_preprocessed`: every trainable utterance of a source cut from its original recording at the TTS rate,
edge silence trimmed, loudness-normalized and bounded in duration.

Clips are content-addressed in a pool per parameter set (`clips/<params>/<clip>.wav`), so a re-run only cuts
new utterances. Each result is a new version folder (`preprocessed/<version>/`: `wavs/` hard links into the
pool, `metadata.csv`, `rejected.csv`), named by the hash of everything in it and never modified afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_assets.audio.decode import AudioDecodeError, decode
from whisper_assets.audio.process import normalize_loudness, to_mono, trim_edge_silence, write_pcm16
from whisper_assets.files import atomic_path, write_text_atomic
from whisper_assets.parallel import parallel_map
from whisper_assets.tts.profile import TtsProfile

METADATA_NAME = "metadata.csv"
METADATA_FIELDS = ("file_name", "text", "duration", "id", "recording", "speaker", "clip")
_VERSION = 1  # bump when the clip processing changes its output for the same parameters


@dataclass(frozen=True)
class TtsClip:
    """One utterance to cut: `recording` is the original file, `file` its path within the source."""

    id: str
    recording: str
    recording_sha256: str
    file: str
    offset: float
    duration: float | None  # None: to the end of the recording
    text: str
    speaker: str | None


@dataclass(frozen=True)
class Preprocessed:
    folder: Path
    rows: list[dict]
    rejected: list[dict]
    reused: bool
    cut_now: int


def tts_clips(
    segments: Sequence[dict], inventory: Sequence[dict], trimmed: bool
) -> tuple[list[TtsClip], list[dict]]:
    """The clips of a source's trainable utterances (`segments` rows with status ok), and the utterances that
    cannot be cut from their recording with a reason: when the source's processing trimmed the audio
    (`trimmed`), a segment's offset no longer points into the original recording."""
    items = {r["id"]: r for r in inventory}
    clips, rejected = [], []
    for row in segments:
        item = items[row["parent_id"]]
        whole = row["id"] == row["parent_id"]
        if trimmed and not whole:
            rejected.append(
                _rejection(
                    row["id"],
                    item["rel_path"],
                    "a segment of a trimmed recording: its offset does not point into the original; turn off "
                    "the source's audio.trim_silence and audio.speech.trim to use long recordings for TTS",
                )
            )
            continue
        clips.append(
            TtsClip(
                row["id"],
                item["abs_path"],
                item["sha256"],
                item["rel_path"],
                0.0 if whole else row["offset"],
                None if whole else row["duration"],
                row["transcript"],
                item["speaker"],
            )
        )
    return clips, rejected


def preprocess(
    clips: Sequence[TtsClip], profile: TtsProfile, root: Path, rejected: Sequence[dict] = (), workers: int = 0
) -> Preprocessed:
    """Cut, trim and normalize every clip into the pool, then write the version folder (if new) under `root`."""
    params = _params_key(profile)
    pool = root / "clips" / params
    by_recording: dict[str, list[TtsClip]] = {}
    for clip in clips:
        by_recording.setdefault(clip.recording, []).append(clip)
    results = [
        r
        for batch in parallel_map(
            lambda group: _cut_recording(group, profile, pool), list(by_recording.values()), workers
        )
        for r in batch
    ]
    cut_now = sum(r.pop("cut_now", False) for r in results)
    rows = sorted((r for r in results if "reason" not in r), key=lambda r: r["id"])
    rejections = sorted([*rejected, *(r for r in results if "reason" in r)], key=lambda r: r["id"])
    payload = json.dumps({"params": params, "rows": rows, "rejected": rejections}, sort_keys=True)
    folder = root / "preprocessed" / hashlib.blake2s(payload.encode(), digest_size=8).hexdigest()
    reused = (folder / METADATA_NAME).exists()
    if not reused:
        _write_version(folder, pool, rows, rejections)
    return Preprocessed(folder, rows, rejections, reused, cut_now)


def read_metadata(folder: Path) -> list[dict]:
    with (folder / METADATA_NAME).open(newline="", encoding="utf-8") as handle:
        return [{**r, "duration": float(r["duration"])} for r in csv.DictReader(handle)]


def write_metadata(
    folder: Path, rows: Sequence[dict], fields: Sequence[str], name: str = METADATA_NAME
) -> None:
    """A CSV of `rows`, atomically; metadata.csv is written last: its presence marks a version folder complete."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(folder / name, buffer.getvalue())


def _params_key(profile: TtsProfile) -> str:
    params = profile.model_dump(include={"sample_rate", "loudness_lufs", "trim", "trim_db"})
    return hashlib.blake2s(json.dumps([_VERSION, params], sort_keys=True).encode(), digest_size=6).hexdigest()


def _clip_key(clip: TtsClip) -> str:
    return hashlib.blake2s(
        f"{clip.recording_sha256}:{clip.offset}:{clip.duration}".encode(), digest_size=12
    ).hexdigest()


def _cut_recording(clips: Sequence[TtsClip], profile: TtsProfile, pool: Path) -> list[dict]:
    """Every clip of one recording (decoded once, only when a clip is not in the pool yet)."""
    rate = profile.sample_rate
    audio: np.ndarray | None = None
    out = []
    for clip in clips:
        key = _clip_key(clip)
        path = pool / f"{key}.wav"
        cut_now = not path.exists()
        if cut_now:
            try:
                if audio is None:
                    audio = to_mono(*decode(clip.recording), rate)
            except (AudioDecodeError, OSError) as exc:
                out.append(_rejection(clip.id, clip.file, f"cannot decode the recording: {exc}"))
                continue
            start = round(clip.offset * rate)
            samples = audio[start : None if clip.duration is None else start + round(clip.duration * rate)]
            if profile.trim:
                samples = trim_edge_silence(samples, profile.trim_db, rate)
            write_pcm16(path, normalize_loudness(samples, profile.loudness_lufs, rate), rate)
        duration = round(_frames(path) / rate, 3)
        if not profile.min_seconds <= duration <= profile.max_seconds:
            reason = f"{duration:.2f} s is outside {profile.min_seconds:g} to {profile.max_seconds:g} s"
            out.append(_rejection(clip.id, clip.file, reason) | {"cut_now": cut_now})
            continue
        out.append(
            {
                "file_name": f"wavs/{clip.id}.wav",
                "text": clip.text,
                "duration": duration,
                "id": clip.id,
                "recording": clip.file,
                "speaker": clip.speaker or "",
                "clip": key,
                "pool": str(path),
                "cut_now": cut_now,
            }
        )
    return out


def _frames(path: Path) -> int:
    return sf.info(str(path)).frames


def _write_version(folder: Path, pool: Path, rows: Sequence[dict], rejected: Sequence[dict]) -> None:
    for row in rows:
        target = folder / row["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # left by a crash before metadata.csv marked the folder complete
        try:
            os.link(row["pool"], target)
        except OSError:  # another file system: copy instead
            with atomic_path(target) as tmp:
                shutil.copyfile(row["pool"], tmp)
    write_metadata(folder, rejected, ("id", "recording", "reason"), name="rejected.csv")
    write_metadata(folder, rows, METADATA_FIELDS)


def _rejection(item_id: str, recording: str, reason: str) -> dict:
    return {"id": item_id, "recording": recording, "reason": reason}
