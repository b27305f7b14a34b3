"""Cluster speaker embeddings into speakers, keep speaker names stable across re-runs, and score clusterings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from whisper_assets.speakers.policy import SpeakerPolicy

SPEAKER_PREFIX = "speaker_"


def cluster_embeddings(embeddings: np.ndarray, policy: SpeakerPolicy) -> np.ndarray:
    """A cluster label per row: average-linkage agglomerative clustering on cosine distance, stopped at the
    policy's threshold, or at the nearest allowed count when that finds fewer than `min_speakers` or more
    than `max_speakers`."""
    from sklearn.cluster import AgglomerativeClustering  # scikit-learn comes with the `speakers` extra

    if len(embeddings) < 2:
        return np.zeros(len(embeddings), dtype=int)

    def fit(**stop: float | int | None) -> np.ndarray:
        model = AgglomerativeClustering(metric="cosine", linkage="average", **stop)
        return model.fit_predict(embeddings)

    labels = fit(n_clusters=None, distance_threshold=policy.threshold)
    found = len(set(labels))
    wanted = min(
        max(found, policy.min_speakers or 1), policy.max_speakers or len(embeddings), len(embeddings)
    )
    return labels if wanted == found else fit(n_clusters=wanted)


def name_clusters(
    ids: Sequence[str], labels: Sequence[int], previous: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A speaker name (`speaker_<n>`) per id. A cluster keeps the name most of its members had before (largest
    clusters choose first); clusters without one get new numbers after the highest used, so adding recordings
    renames nobody who was already known."""
    previous = previous or {}
    members: dict[int, list[str]] = {}
    for item, label in zip(ids, labels, strict=True):
        members.setdefault(int(label), []).append(item)
    order = sorted(members.values(), key=lambda group: (-len(group), min(group)))
    numbers = [_number(name) for name in previous.values()]
    next_number = max((n for n in numbers if n is not None), default=-1) + 1
    taken: set[str] = set()
    names: dict[str, str] = {}
    for group in order:
        votes = Counter(previous[i] for i in group if i in previous and previous[i] not in taken)
        if votes:
            name = votes.most_common(1)[0][0]
        else:
            name, next_number = f"{SPEAKER_PREFIX}{next_number}", next_number + 1
        taken.add(name)
        names.update(dict.fromkeys(group, name))
    return names


def _number(name: str) -> int | None:
    suffix = name.removeprefix(SPEAKER_PREFIX)
    return int(suffix) if name.startswith(SPEAKER_PREFIX) and suffix.isdigit() else None


def purity(truth: Sequence[str], predicted: Sequence[object]) -> float:
    """Share of items in their cluster's majority speaker (1.0: no cluster mixes speakers)."""
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(truth, predicted)
    return float(table.max(axis=0).sum() / table.sum())


def nmi(truth: Sequence[str], predicted: Sequence[object]) -> float:
    """Normalized mutual information (1.0: the clusters are exactly the speakers; splits and merges lower it)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(truth, predicted))
