"""Who spoke when in one recording: speech regions cut into short windows, each embedded, clustered into
speakers, and adjacent windows of one speaker joined into turns. Scored by diarization error rate (DER)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from whisper_assets.audio.vad import SpeechPolicy, detect_speech
from whisper_assets.speakers.clustering import cluster_embeddings, name_clusters
from whisper_assets.speakers.embeddings import EMBEDDING_RATE, SpeakerEncoder
from whisper_assets.speakers.policy import SpeakerPolicy

WINDOW_SECONDS = 1.5  # Resemblyzer's own partial utterances are 1.6 s
MIN_WINDOW_SECONDS = 0.5  # a shorter tail joins the window before it


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


def speech_windows(
    regions: Sequence[tuple[float, float]], window: float = WINDOW_SECONDS
) -> list[tuple[float, float]]:
    """Each speech region cut into windows of `window` seconds; a tail under MIN_WINDOW_SECONDS joins the window
    before it, and a region shorter than that is one window."""
    out = []
    for start, end in regions:
        cuts = list(np.arange(start, end, window)[1:])
        if cuts and end - cuts[-1] < MIN_WINDOW_SECONDS:
            cuts.pop()
        bounds = [start, *cuts, end]
        out.extend((float(a), float(b)) for a, b in pairwise(bounds))
    return out


def diarize(
    audio: np.ndarray,
    encoder: SpeakerEncoder,
    policy: SpeakerPolicy,
    speech: SpeechPolicy | None = None,
) -> list[Turn]:
    """Speaker turns of a 16 kHz recording, speakers named `speaker_<n>` (largest first)."""
    windows = speech_windows(detect_speech(audio, speech).regions)
    if not windows:
        return []
    embeddings = np.vstack(
        [encoder.embed(audio[round(s * EMBEDDING_RATE) : round(e * EMBEDDING_RATE)]) for s, e in windows]
    )
    keys = [str(i) for i in range(len(windows))]
    names = name_clusters(keys, cluster_embeddings(embeddings, policy))
    turns: list[Turn] = []
    for key, (start, end) in zip(keys, windows, strict=True):
        if turns and turns[-1].speaker == names[key] and start - turns[-1].end < WINDOW_SECONDS:
            turns[-1] = Turn(turns[-1].start, end, names[key])
        else:
            turns.append(Turn(start, end, names[key]))
    return turns


def diarization_error_rate(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], resolution: float = 0.01
) -> float:
    """(missed speech + false alarm + speaker confusion) / reference speech, on `resolution`-second frames,
    with hypothesis speakers mapped one-to-one onto reference speakers to maximize their overlap (no collar;
    one speaker per frame, so overlapped speech is not modelled)."""
    from scipy.optimize import linear_sum_assignment

    end = max((t.end for t in [*reference, *hypothesis]), default=0.0)
    frames = int(np.ceil(end / resolution))
    ref, ref_names = _frame_labels(reference, frames, resolution)
    hyp, hyp_names = _frame_labels(hypothesis, frames, resolution)
    speech = ref >= 0
    if not speech.any():
        raise ValueError("the reference has no speech to score against")
    overlap = np.zeros((len(ref_names), len(hyp_names)))
    both = speech & (hyp >= 0)
    np.add.at(overlap, (ref[both], hyp[both]), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    mapped = np.full(len(hyp_names), -2)
    mapped[cols] = rows
    missed = np.sum(speech & (hyp < 0))
    false_alarm = np.sum(~speech & (hyp >= 0))
    confusion = np.sum(both & (mapped[np.maximum(hyp, 0)] != ref))
    return float((missed + false_alarm + confusion) / speech.sum())


def _frame_labels(turns: Sequence[Turn], frames: int, resolution: float) -> tuple[np.ndarray, list[str]]:
    names = sorted({t.speaker for t in turns})
    labels = np.full(frames, -1)
    for turn in turns:
        labels[round(turn.start / resolution) : round(turn.end / resolution)] = names.index(turn.speaker)
    return labels, names
