"""How one source's transcripts are normalized before training."""

from enum import StrEnum

from pydantic import Field

from whisper_assets.policy import Policy


class Script(StrEnum):
    """Target script for Serbian/Bosnian transcripts, which are written in either alphabet."""

    KEEP = "keep"
    LATIN = "latin"
    CYRILLIC = "cyrillic"


class NumberPolicy(StrEnum):
    """What to do with digits in transcripts: keep them, or reject the item so a person spells them out."""

    KEEP = "keep"
    REJECT = "reject"


class TranscriptPolicy(Policy):
    """How transcripts of one source are normalized before training."""

    script: Script = Script.KEEP
    strip_annotations: bool = True
    lowercase: bool = False
    remove_punctuation: bool = False
    numbers: NumberPolicy = NumberPolicy.KEEP
    max_chars_per_second: float = Field(25.0, gt=0)
