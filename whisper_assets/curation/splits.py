"""Hash-stable train/validation/test splits, speaker-disjoint where speakers are known.

Each item's split is a pure function of its group key and the salt: blake2s(salt, key) mapped onto [0, 1) and
cut at the cumulative ratios. Adding items therefore never moves an existing one, and every item of a group (a
speaker, or one piece of content) lands in the same split. A source may pin its items to one split instead, or
be a regression set: its own manifest, evaluated and never trained on.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self

from pydantic import Field, model_validator

from whisper_assets.curation.manifests import SPLITS, role_set
from whisper_assets.policy import Policy


class SplitSettings(Policy):
    """Hash-stable train/validation/test assignment."""

    salt: str = "whisper-assets"
    train: float = Field(0.8, ge=0)
    validation: float = Field(0.1, ge=0)
    test: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> Self:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1 (train + validation + test = {total:g})")
        return self


@dataclass(frozen=True)
class Placement:
    """Where a source's items go: grouped by speaker (or content), pinned to one split, or kept whole as a
    regression or replay set (`role`); `speaker_ids` when its speakers are clustered voices; none of them when
    it does not feed speech recognition (`speech`)."""

    by_speaker: bool = True
    pinned: str | None = None
    role: str = "domain"
    speaker_ids: bool = False  # take speakers from the `speakers` table (clustered voices, overrides)
    speech: bool = True  # False: the source feeds other model families only (typing, TTS), never these splits


def group_key(source: str, speaker: str | None, content_hash: str, by_speaker: bool = True) -> str:
    """The speaker when known (namespaced by source: speaker "1" of two sources is two people), else the content.

    A source with very few speakers (two speakers cannot fill three splits) can group by content instead.
    """
    return f"speaker:{source}:{speaker}" if speaker and by_speaker else f"content:{content_hash}"


def assign_split(key: str, settings: SplitSettings) -> str:
    digest = hashlib.blake2s(f"{settings.salt}\x00{key}".encode(), digest_size=8).digest()
    position = int.from_bytes(digest, "big") / 2**64
    cumulative = 0.0
    for name in SPLITS:
        cumulative += getattr(settings, name)
        if position < cumulative:
            return name
    return SPLITS[-1]  # ratios summing to 1 - epsilon


def split_items(
    items: Iterable[dict], settings: SplitSettings, placement: dict[str, Placement] | None = None
) -> dict[str, list[dict]]:
    """Assign each item (with a `group` key) to a split, or to its source's regression or replay set
    (`regression/<source>`, `replay/<source>`); items are sorted by id in each.

    A pseudo-labelled item is only ever trained on (in train or a replay set): one placed anywhere else is left
    out (scoring a model against another model's transcripts measures agreement, not accuracy), and it is not
    moved to train either, where its speaker could leak into the held-out splits.
    """
    placement = placement or {}
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for item in items:
        place = placement.get(item["source"], Placement())
        if place.role != "domain":
            split = role_set(place.role, item["source"])
        else:
            split = place.pinned or assign_split(item["group"], settings)
        if split == "train" or place.role == "replay" or not item.get("pseudo_label"):
            out.setdefault(split, []).append(item)
    for rows in out.values():
        rows.sort(key=lambda r: r["id"])
    return out


def leaks(splits: dict[str, Sequence[dict]]) -> dict[str, list[str]]:
    """Groups (speakers of speaker-disjoint sources) and content hashes found in more than one split."""
    seen: dict[str, set[str]] = defaultdict(set)
    for name, rows in splits.items():
        for row in rows:
            seen[row["group"]].add(name)
            seen[f"content:{row['content_hash']}"].add(name)
    return {key: sorted(names) for key, names in seen.items() if len(names) > 1}
