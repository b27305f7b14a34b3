"""How a source's speakers are found: clustering thresholds and whether splits group by the result."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from whisper_assets.policy import Policy

# Measured in bench/speakers.py on real speech (FSDD's two speakers): with ~2 s utterances every threshold from
# 0.22 to 0.38 finds exactly the two speakers (purity 1.0); with 0.4 s single digits, 0.28 to 0.30 does.
DEFAULT_THRESHOLD = 0.30


class SpeakerPolicy(Policy):
    """Speaker ids for a source whose items carry none (the `speakers` asset)."""

    cluster: bool = Field(
        False,
        description="Compute speaker embeddings of this source's utterances and cluster them into speaker ids "
        "(needs the `speakers` extra).",
    )
    group_splits: bool = Field(
        True,
        description="When clustered, items without a speaker label are split by their recording's clustered "
        "speaker, so train/validation/test are speaker-disjoint on unlabeled data.",
    )
    threshold: float = Field(
        DEFAULT_THRESHOLD,
        gt=0,
        lt=2,
        description="Cosine distance at which average-linkage clustering stops merging (lower: more speakers).",
    )
    min_speakers: int | None = Field(None, ge=1, description="At least this many speakers, when known.")
    max_speakers: int | None = Field(None, ge=1, description="At most this many speakers, when known.")

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(f"min_speakers {self.min_speakers} is above max_speakers {self.max_speakers}")
        return self
