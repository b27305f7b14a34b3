"""Clean transcripts for training, recording what changed and why an item is rejected.

Diacritics (č ć š ž đ ...) are never stripped: they are spelling, not decoration.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from whisper_assets.text.policy import NumberPolicy, Script, TranscriptPolicy
from whisper_assets.text.transliterate import cyrillic_to_latin, has_cyrillic, latin_to_cyrillic

_ANNOTATION = re.compile(r"\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>|\{[^{}]*\}")
_WHITESPACE = re.compile(r"\s+")
NO_TRANSCRIPT = "no transcript for this recording"
_LATIN_ONLY_LANGUAGES = frozenset(
    "en hr de fr es it pt nl pl cs sk sl hu ro fi sv da no nn et lv lt tr id ms vi sq".split()
)
_CYRILLIC_ONLY_LANGUAGES = frozenset("ru uk be bg mk kk".split())


@dataclass(frozen=True)
class NormalizedTranscript:
    text: str
    changes: tuple[str, ...] = field(default_factory=tuple)
    rejection: str | None = None


def normalize_transcript(
    raw: str | None, policy: TranscriptPolicy, language: str, duration: float | None = None
) -> NormalizedTranscript:
    """Apply the source's policy; return the cleaned text, the names of the steps that changed it, or a reason."""
    if raw is None:
        return NormalizedTranscript("", rejection=NO_TRANSCRIPT)
    changes: list[str] = []
    text = raw.strip()  # a trailing newline is file formatting, not a change worth reporting

    def step(name: str, new: str) -> None:
        nonlocal text
        if new != text:
            changes.append(name)
            text = new

    step("unicode_nfc", unicodedata.normalize("NFC", text))
    if policy.strip_annotations:
        step("annotations", _strip_annotations(text))
    step("whitespace", _WHITESPACE.sub(" ", text).strip())
    if policy.script is Script.LATIN:
        step("transliterated", cyrillic_to_latin(text))
    elif policy.script is Script.CYRILLIC:
        step("transliterated", latin_to_cyrillic(text))
    if policy.remove_punctuation:
        step("punctuation", remove_punctuation(text))
    if policy.lowercase:
        step("lowercase", text.lower())

    if not raw.strip():
        return NormalizedTranscript("", tuple(changes), "empty transcript")
    if not text:
        return NormalizedTranscript("", tuple(changes), "transcript is empty once annotations are removed")
    if policy.numbers is NumberPolicy.REJECT and any(c.isdigit() for c in text):
        return NormalizedTranscript(
            text, tuple(changes), "transcript contains digits (numbers policy: reject)"
        )
    if reason := script_mismatch(text, language):
        return NormalizedTranscript(text, tuple(changes), reason)
    if duration and len(text) / duration > policy.max_chars_per_second:
        return NormalizedTranscript(
            text,
            tuple(changes),
            f"transcript too long for the audio ({len(text)} characters in {duration:.1f} s, "
            f"above {policy.max_chars_per_second:g}/s)",
        )
    return NormalizedTranscript(text, tuple(changes))


def _strip_annotations(text: str) -> str:
    previous = None
    while previous != text:  # nested brackets: strip inside-out
        previous, text = text, _ANNOTATION.sub(" ", text)
    return text


def remove_punctuation(text: str) -> str:
    """Drop punctuation and symbols, keeping apostrophes and hyphens inside words (don't, Jean-Luc)."""
    out = []
    for i, char in enumerate(text):
        category = unicodedata.category(char)
        if category[0] in "PS":
            inside_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            out.append(char if inside_word and char in "'’-" else " ")
        else:
            out.append(char)
    return _WHITESPACE.sub(" ", "".join(out)).strip()


def script_mismatch(text: str, language: str) -> str | None:
    """A reason when the letters are mostly in a script the language is never written in."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    cyrillic_share = sum(has_cyrillic(c) for c in letters) / len(letters)
    if language in _LATIN_ONLY_LANGUAGES and cyrillic_share > 0.5:
        return f"transcript is in Cyrillic but the language is {language!r}"
    latin_share = sum(c.isascii() or "LATIN" in unicodedata.name(c, "") for c in letters) / len(letters)
    if language in _CYRILLIC_ONLY_LANGUAGES and latin_share > 0.5:
        return f"transcript is in Latin script but the language is {language!r}"
    return None


def comparable(text: str) -> str:
    """A transcript as compared for sameness: NFC, lowercase, no punctuation, one script, single spaces."""
    text = remove_punctuation(unicodedata.normalize("NFC", text)).lower()
    return _WHITESPACE.sub(" ", cyrillic_to_latin(text)).strip()
