"""A source's speaker analysis: every utterance embedded (cached), clustered into speakers, one sample per cluster
for a person to verify, and a manual override file that wins over the clusters.

Folder layout (`speaker_analysis/`): embeddings.npy + embedding_keys.json (the cache), clusters.json (utterance
-> cluster name, kept stable across re-runs), speaker_ids.json (utterance -> speaker, the result) and
cluster_samples/speaker_<n>_sample.wav.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from whisper_assets.audio.decode import decode
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.files import atomic_path, write_json_atomic
from whisper_assets.speakers.clustering import cluster_embeddings, name_clusters
from whisper_assets.speakers.embeddings import EmbeddingCache, SpeakerEncoder
from whisper_assets.speakers.policy import SpeakerPolicy

ORIGIN_LABEL = "label"  # the source's own speaker label
ORIGIN_OVERRIDE = "override"
ORIGIN_CLUSTER = "cluster"


@dataclass(frozen=True)
class Utterance:
    """One piece of audio to attribute: `name` keys the outputs, `key` is its audio's content address, `file`
    the recording it comes from (overrides may name either), `label` the source's own speaker label."""

    name: str
    audio: str
    key: str
    file: str
    label: str | None = None


@dataclass
class SpeakerAnalysis:
    speakers: dict[str, str]
    origins: dict[str, str]
    clusters: dict[str, str]
    embedded_now: int
    samples: dict[str, Path] = field(default_factory=dict)
    unmatched_overrides: list[str] = field(default_factory=list)


def read_overrides(path: Path) -> dict[str, str]:
    """`file,speaker` rows (file: a recording's path in the source, or an utterance's name); empty if absent."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"file", "speaker"} <= set(rows[0]):
        raise ValueError(f"{path} needs the columns file,speaker (found {', '.join(rows[0])})")
    return {
        r["file"].strip(): r["speaker"].strip() for r in rows if r["file"].strip() and r["speaker"].strip()
    }


def analyze_speakers(
    utterances: Sequence[Utterance],
    folder: Path,
    policy: SpeakerPolicy,
    encoder: SpeakerEncoder,
    overrides: dict[str, str] | None = None,
) -> SpeakerAnalysis:
    """Embed, cluster and attribute every utterance; write the analysis folder."""
    overrides = overrides or {}
    audio_of = {u.key: u.audio for u in utterances}
    embeddings, new = EmbeddingCache(folder).embed(
        [u.key for u in utterances], lambda key: to_mono_16k(*decode(audio_of[key])), encoder
    )
    names = [u.name for u in utterances]
    previous = _read_json(folder / "clusters.json")
    clusters = name_clusters(names, cluster_embeddings(embeddings, policy), previous)
    speakers, origins = {}, {}
    for u in utterances:
        override = overrides.get(u.name, overrides.get(u.file))
        if override:
            speakers[u.name], origins[u.name] = override, ORIGIN_OVERRIDE
        elif u.label:
            speakers[u.name], origins[u.name] = u.label, ORIGIN_LABEL
        else:
            speakers[u.name], origins[u.name] = clusters[u.name], ORIGIN_CLUSTER
    write_json_atomic(folder / "clusters.json", clusters, indent=1)
    write_json_atomic(folder / "speaker_ids.json", speakers, indent=1)
    known = set(names) | {u.file for u in utterances}
    return SpeakerAnalysis(
        speakers,
        origins,
        clusters,
        new,
        _write_samples(folder / "cluster_samples", utterances, embeddings, clusters),
        sorted(set(overrides) - known),
    )


def _write_samples(
    folder: Path, utterances: Sequence[Utterance], embeddings: np.ndarray, clusters: dict[str, str]
) -> dict[str, Path]:
    """Per cluster, the utterance nearest its centroid (the most typical voice), copied for listening."""
    shutil.rmtree(folder, ignore_errors=True)
    samples = {}
    for cluster in sorted(set(clusters.values())):
        members = [i for i, u in enumerate(utterances) if clusters[u.name] == cluster]
        centroid = embeddings[members].mean(axis=0)
        best = members[int(np.argmax(embeddings[members] @ centroid))]
        path = folder / f"{cluster}_sample{Path(utterances[best].audio).suffix}"
        with atomic_path(path) as tmp:
            shutil.copyfile(utterances[best].audio, tmp)
        samples[cluster] = path
    return samples


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


SPEAKERS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("parent_id", pa.string()),
        ("duration", pa.float64()),
        ("speaker", pa.string()),
        ("origin", pa.string()),
        ("cluster", pa.string()),
    ]
)


def speaker_rows(
    source: str,
    utterances: Sequence[Utterance],
    parents: dict[str, str],
    durations: dict[str, float],
    analysis: SpeakerAnalysis | None,
) -> list[dict]:
    """The `speakers` table: each utterance's speaker and where it came from (without an analysis, only the
    source's labels)."""
    return [
        {
            "id": u.name,
            "source": source,
            "parent_id": parents[u.name],
            "duration": durations[u.name],
            "speaker": analysis.speakers[u.name] if analysis else u.label,
            "origin": analysis.origins[u.name] if analysis else (ORIGIN_LABEL if u.label else None),
            "cluster": analysis.clusters[u.name] if analysis else None,
        }
        for u in utterances
    ]
