"""`tts_speakers`: the speaker analysis run on a preprocessed TTS version, and a new version folder whose
metadata.csv adds `speaker_id` (its `file_name`s point into the preprocessed version) (the source's label, a manual override, else the voice's cluster)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.files import write_json_atomic
from whisper_assets.speakers.analysis import SpeakerAnalysis, Utterance, analyze_speakers
from whisper_assets.speakers.embeddings import SpeakerEncoder
from whisper_assets.speakers.policy import SpeakerPolicy
from whisper_assets.tts.preprocess import METADATA_FIELDS, METADATA_NAME, write_metadata

SPEAKER_FIELDS = (*METADATA_FIELDS, "speaker_id")


@dataclass(frozen=True)
class AttributedVoices:
    folder: Path
    rows: list[dict]
    analysis: SpeakerAnalysis
    reused: bool


def attribute_voices(
    preprocessed: Path,
    rows: Sequence[dict],
    root: Path,
    policy: SpeakerPolicy,
    encoder: SpeakerEncoder,
    overrides: dict[str, str],
) -> AttributedVoices:
    """Analyze the speakers of a preprocessed version (`rows` from its metadata.csv) in `root/speaker_analysis/`
    and write the attributed rows to `root/speakers/<version>/` unless that version exists."""
    utterances = [
        Utterance(
            r["id"], str(preprocessed / r["file_name"]), r["clip"], r["recording"], r["speaker"] or None
        )
        for r in rows
    ]
    analysis = analyze_speakers(utterances, root / "speaker_analysis", policy, encoder, overrides)
    digest = hashlib.blake2s(
        json.dumps([preprocessed.name, analysis.speakers], sort_keys=True).encode(), digest_size=8
    )
    folder = root / "speakers" / digest.hexdigest()
    attributed = [
        {
            **r,
            "file_name": os.path.relpath(preprocessed / r["file_name"], folder),
            "speaker_id": analysis.speakers[r["id"]],
        }
        for r in rows
    ]
    reused = (folder / METADATA_NAME).exists()
    if not reused:
        write_json_atomic(folder / "speaker_ids.json", analysis.speakers, indent=1)
        write_metadata(folder, attributed, SPEAKER_FIELDS)
    return AttributedVoices(folder, attributed, analysis, reused)
