"""What every dataset source has, and the contract each source kind implements.

A kind is one module in this package defining a subclass of `SourceBase` with a `kind` literal; the registry
finds it there. The subclass owns its settings (its fields), the folder the inventory reads, how that folder
is mirrored from the origin, how the upload sensor notices a change, and whether a schedule syncs it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from whisper_assets.audio.policy import AudioPolicy
from whisper_assets.layout import DataLayout
from whisper_assets.policy import Policy
from whisper_assets.sources.watch import ScanProgress, fingerprint_tree
from whisper_assets.speakers.policy import SpeakerPolicy
from whisper_assets.text.policy import TranscriptPolicy
from whisper_assets.tts.profile import TtsProfile

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class SourceBase(Policy):
    """A dataset source: a slug name (its partition key), labels, provenance and processing policies."""

    is_default: ClassVar[bool] = False  # the kind of entries that name none (and of discovered folders)
    remote: ClassVar[bool] = False  # synced by the `sync_remote_sources` schedule rather than the sensor
    path_fields: ClassVar[tuple[str, ...]] = ()  # fields holding paths relative to the settings file

    kind: str
    name: str
    language: str = "en"
    split_by: Literal["speaker", "content"] = Field(
        "speaker",
        description="Group key for splits when speakers are known: speaker-disjoint, or per content.",
    )
    role: Literal["domain", "regression", "replay"] = Field(
        "domain",
        description="domain: split into train/validation/test; regression: general speech the model must keep "
        "handling, evaluated as its own set (base vs fine-tuned, guarded by the champion gate), never trained on; "
        "replay: general speech mixed into every training batch (training.replay_share) so the model keeps it.",
    )
    split: Literal["train", "validation", "test"] | None = Field(
        None,
        description="Pin every item to this split instead of the hash assignment (test: a benchmark set you "
        "trust; train: extra training data). The leakage checks still apply.",
    )
    license: str = "unknown"
    provenance: str = ""
    transcripts: TranscriptPolicy = TranscriptPolicy()
    audio: AudioPolicy = AudioPolicy()
    karaoke: bool = Field(False, description="Write a karaoke.lrc (per-word timings) for every item.")
    speakers: SpeakerPolicy = SpeakerPolicy()
    tts: TtsProfile | None = Field(
        None, description="Also make a TTS voice dataset of this source (tts_preprocessed -> tts_dataset)."
    )
    pseudo_labels: Literal["off", "flag", "train"] = Field(
        "off",
        description="Items without a transcript: off (rejected), flag (transcribed by "
        "segmentation.pseudo_label_model, aligned and cut, kept out of training), or train (and trained on).",
    )
    speech_recognition: bool | None = Field(
        None,
        description="Feed the speech-recognition splits (training and evaluation). None: yes, unless the source "
        "holds typing recordings (`keystrokes: true`); set false for a TTS-only source, true for typing "
        "recordings that also hold speech worth training on.",
    )
    shards: int = Field(
        1,
        ge=1,
        le=1024,
        description="Split the source into this many partitions (`<name>~0` ...), each a run of its own, so a big "
        "source ingests on several processes or pods; a file's shard depends only on its path. About 50 to 100 "
        "hours per shard; every shard is a Dagster partition of each per-source asset.",
    )

    @model_validator(mode="after")
    def _role_sets_are_not_split(self) -> Self:
        if self.role != "domain" and self.split is not None:
            raise ValueError(
                f"source {self.name!r} is a {self.role} set, which is never split: drop `split: {self.split}`"
            )
        return self

    @model_validator(mode="after")
    def _shards_need_a_folder_read_in_place(self) -> Self:
        if self.shards > 1 and type(self).mirror is not SourceBase.mirror:
            raise ValueError(
                f"source {self.name!r}: a {self.kind} source is mirrored in one step, so it cannot be sharded; "
                "drop `shards` (or export it to a folder source)"
            )
        if self.shards > 1 and (self.speakers.cluster or self.tts is not None):
            raise ValueError(
                f"source {self.name!r}: speaker clustering and TTS datasets need the whole source in one step; "
                "drop `shards` or `speakers.cluster`/`tts`"
            )
        return self

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not SLUG_PATTERN.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a slug: use lowercase letters, digits, '-' or '_' (no commas or pipes, "
                "which break partition backfills), at most 63 characters"
            )
        return name

    @field_validator("language")
    @classmethod
    def _language_code(cls, language: str) -> str:
        if not re.fullmatch(r"[a-z]{2,3}", language):
            raise ValueError(f"{language!r} is not a language code: use a Whisper code such as 'en' or 'hr'")
        return language

    @property
    def feeds_speech_recognition(self) -> bool:
        return self.speech_recognition if self.speech_recognition is not None else not self.holds_typing

    @property
    def holds_typing(self) -> bool:
        """Whether the recordings are typing for the keystroke model (kinds that can hold them say so)."""
        return False

    def folder(self, layout: DataLayout) -> Path:
        """The folder the inventory reads (for mirrored kinds, the mirror)."""
        return layout.mirrors_root / "sources" / self.name

    def link_roots(self) -> list[Path]:
        """Where links inside the folder may point besides the folder itself (a mirror's origin)."""
        return []

    def mirror(self, folder: Path) -> dict:
        """Bring the folder up to date with the origin; return what was done (shown in the UI)."""
        return {}

    def fingerprint(self, folder: Path, progress: ScanProgress, deadline: float) -> str | None:
        """A cheap value that changes when the content changes (None: the scan ran out of time, resume later)."""
        return fingerprint_tree(folder, progress, deadline)

    def mark_trained(self, item_ids: Sequence[str]) -> int | None:
        """Tell the origin these items were trained on; None when the kind has nowhere to record it."""
        return None
