"""How items are aligned and long items cut, and when a cut segment is not trusted."""

from __future__ import annotations

from pydantic import Field

from whisper_assets.policy import Policy


class SegmentationSettings(Policy):
    """Forced alignment of every item, and the checks a segment cut from a long item must pass."""

    alignment_model: str | None = Field(
        None, description="Hub id or local path of the Whisper model that aligns; None: training.base_model."
    )
    pack_short_items: bool = Field(
        True,
        description="Align items trained whole several to a 30 s window (6x faster on 2-4 s clips, the same word "
        "offsets; bench/packed_alignment.py); False: one per window.",
    )
    pad_seconds: float = Field(0.3, ge=0, description="Audio kept around a segment's first and last word.")
    min_probability: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Drop a cut segment whose words' mean teacher-forced probability is below this.",
    )
    max_word_seconds: float = Field(4.0, gt=0, description="A longer word means the alignment slipped.")
    max_short_word_share: float = Field(
        0.25, ge=0, le=1, description="Drop a cut segment where more of its words than this last < 20 ms."
    )
    max_repeats: int = Field(
        3,
        ge=1,
        description="Drop a cut segment where one word is said more than this many times in a row: attention "
        "cannot tell the tenth 'zero' from the eleventh, so alignment miscounts such runs (bench/label_trust.py: "
        "without this, 21 of 29 kept segments of repeated digits were mislabelled).",
    )
    max_cer: float | None = Field(
        None,
        ge=0,
        description="Also transcribe every cut, subtitle-timed or pseudo-labelled segment with the alignment model "
        "and drop it when the CER against its text (spaces and number spelling aside) is above this, or above "
        "twice the median of that language's segments, whichever is higher (so a model that hears a language "
        "badly does not drop all of it); each checked row records the CER and the hypothesis. None: off. Off by "
        "default: tiny.en invents words in long digit strings and dropped 30% of correct segments "
        "(bench/label_trust.py); a strong alignment model makes it worth its cost (about 2 s per audio minute).",
    )
    pseudo_label_model: str = Field(
        "champion",
        description="Who transcribes items without a transcript (sources with pseudo_labels on): 'champion' "
        "(the registered champion, else the alignment model), 'alignment' (the alignment model), or a hub id "
        "or local path.",
    )
