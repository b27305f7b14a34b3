"""Prepare audio for training: 16 kHz mono 16-bit files, content-addressed so finished work is never redone."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import soundfile as sf

from whisper_assets.audio.decode import AudioDecodeError, decode
from whisper_assets.audio.policy import AudioPolicy
from whisper_assets.audio.process import (
    TARGET_RATE,
    normalize_loudness,
    to_mono_16k,
    trim_edge_silence,
    write_pcm16,
)
from whisper_assets.audio.vad import SpeechRegions, detect_speech, trim_to_speech
from whisper_assets.files import write_json_atomic
from whisper_assets.parallel import parallel_map
from whisper_assets.text.normalize import NO_TRANSCRIPT

PROCESSED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("rel_path", pa.string()),
        ("audio", pa.string()),
        ("duration", pa.float64()),
        ("speech_seconds", pa.float64()),
        ("speech_peak", pa.float64()),
        ("speech_regions", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("reused", pa.bool_()),
    ]
)
STATUS_OK = "ok"
STATUS_TOO_SHORT = "too_short"
STATUS_NEEDS_SEGMENTATION = "needs_segmentation"
STATUS_NO_SPEECH = "no_speech"
STATUS_FAILED = "failed"
_PROCESSING_VERSION = 3  # bump when the processing code changes its output for the same parameters


@dataclass(frozen=True)
class ProcessJob:
    id: str
    source: str
    rel_path: str
    input_path: str
    output_path: str
    policy: AudioPolicy


def output_key(sha256: str, policy: AudioPolicy) -> str:
    """Content address of a processed file: the input bytes plus every parameter that shapes the output."""
    params = {
        "version": _PROCESSING_VERSION,
        "rate": TARGET_RATE,
        "loudness_lufs": policy.loudness_lufs,
        "trim_silence": policy.trim_silence,
        "trim_threshold_db": policy.trim_threshold_db if policy.trim_silence else None,
        "speech_threshold": policy.speech.threshold,
        "speech_trim_pad": policy.speech.pad_seconds if policy.speech.trim else None,
    }
    blob = sha256 + json.dumps(params, sort_keys=True)
    return hashlib.blake2s(blob.encode(), digest_size=16).hexdigest()


def output_path(processed_root: Path, source: str, key: str) -> Path:
    return processed_root / source / key[:2] / f"{key}.wav"


def speech_path(audio_path: Path | str) -> Path:
    """The speech regions of a processed file, written after it: its presence marks the file complete."""
    return Path(audio_path).with_suffix(".speech.json")


def source_jobs(
    source: str,
    policy: AudioPolicy,
    inventory: Sequence[dict],
    dedup_report: Sequence[dict],
    transcripts: Sequence[dict],
    processed_root: Path,
    untranscribed: bool = False,
) -> list[ProcessJob]:
    """One job per item with an accepted transcript (or, with `untranscribed`, none at all: to be
    pseudo-labelled) that is the canonical copy of its content."""
    by_id = {r["id"]: r for r in inventory}
    canonical = {r["id"] for r in dedup_report if r["is_canonical"]}
    jobs = []
    for row in transcripts:
        item = by_id.get(row["id"])
        wanted = row["accepted"] or (untranscribed and row["rejection_reason"] == NO_TRANSCRIPT)
        if not wanted or item is None or row["id"] not in canonical:
            continue
        key = output_key(item["sha256"], policy)
        jobs.append(
            ProcessJob(
                item["id"],
                source,
                item["rel_path"],
                item["abs_path"],
                str(output_path(processed_root, source, key)),
                policy,
            )
        )
    return jobs


def process_items(jobs: Sequence[ProcessJob], workers: int = 0) -> list[dict]:
    """Process every job, in job order; finished outputs (their speech file written) are only read back."""
    todo = [job for job in jobs if not speech_path(job.output_path).exists()]
    done = dict(zip((job.id for job in todo), parallel_map(_process_one, todo, workers), strict=True))
    return [done[job.id] if job.id in done else _process_one(job) for job in jobs]


def _process_one(job: ProcessJob) -> dict:
    out = Path(job.output_path)
    reused = speech_path(out).exists()
    try:
        speech = _read_speech(out) if reused else _process_audio(job, out)
    except (AudioDecodeError, OSError, sf.LibsndfileError) as exc:
        return _result(job, None, STATUS_FAILED, f"processing failed: {exc}", reused=False)
    policy = job.policy
    duration = speech.duration
    if speech.peak < policy.speech.reject_below:
        status = STATUS_NO_SPEECH
        reason = f"no speech detected (peak speech probability {speech.peak:.2f} in {duration:.1f} s)"
    elif duration < policy.min_seconds:
        status, reason = STATUS_TOO_SHORT, f"{duration:.2f} s is shorter than {policy.min_seconds:g} s"
    elif duration > policy.max_seconds:
        status = STATUS_NEEDS_SEGMENTATION
        reason = f"{duration:.1f} s is longer than {policy.max_seconds:g} s: cut into segments"
    else:
        status, reason = STATUS_OK, None
    return _result(job, speech, status, reason, reused=reused)


def _process_audio(job: ProcessJob, out: Path) -> SpeechRegions:
    samples, rate = decode(job.input_path)
    audio = to_mono_16k(samples, rate)
    policy = job.policy
    if policy.trim_silence:
        audio = trim_edge_silence(audio, policy.trim_threshold_db)
    speech = detect_speech(audio, policy.speech)
    if policy.speech.trim:
        audio, speech = trim_to_speech(audio, speech, policy.speech.pad_seconds)
    if policy.loudness_lufs is not None:
        audio = normalize_loudness(audio, policy.loudness_lufs)
    write_pcm16(out, audio)
    write_json_atomic(
        speech_path(out), {"duration": speech.duration, "peak": speech.peak, "regions": speech.to_json()}
    )
    return speech


def _read_speech(out: Path) -> SpeechRegions:
    data = json.loads(speech_path(out).read_text())
    return SpeechRegions(tuple(map(tuple, data["regions"])), data["duration"], data["peak"])


def _result(
    job: ProcessJob, speech: SpeechRegions | None, status: str, reason: str | None, reused: bool
) -> dict:
    return {
        "id": job.id,
        "source": job.source,
        "rel_path": job.rel_path,
        "audio": job.output_path if status != STATUS_FAILED else None,
        "duration": speech.duration if speech else None,
        "speech_seconds": round(speech.seconds, 3) if speech else None,
        "speech_peak": round(speech.peak, 3) if speech else None,
        "speech_regions": json.dumps(speech.to_json()) if speech else None,
        "status": status,
        "reason": reason,
        "reused": reused,
    }
