"""Decode transcript bytes whatever their encoding; say when a conversion happened.

B/C/S transcripts often come from Windows tools as cp1250 (Latin) or cp1251 (Cyrillic). Short texts are too
small for statistical detectors to tell those apart reliably, so for languages with a known alphabet we score
candidate decodings by how many of their letters belong to that alphabet, and to charset-normalizer
only for text in neither Latin nor Cyrillic script.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from charset_normalizer import from_bytes

from whisper_assets.text.transliterate import SERBIAN_CYRILLIC

_BCS_LATIN = set("abcčćdđefghijklmnoprsštuvzž")
_BCS_CYRILLIC = set(SERBIAN_CYRILLIC)
_ALPHABETS: dict[str, set[str]] = {
    lang: _BCS_LATIN | _BCS_CYRILLIC for lang in ("sr", "bs", "hr", "sh", "cnr")
}
_ALPHABETS["sl"] = set("abcčdefghijklmnoprsštuvzž")
_ALPHABETS["en"] = set("abcdefghijklmnopqrstuvwxyz")
_LEGACY_CANDIDATES = ("cp1250", "cp1251", "iso8859_2", "iso8859_5", "cp1252")


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str

    @property
    def converted(self) -> bool:
        """True when the bytes were not UTF-8 and had to be converted."""
        return self.encoding not in ("utf-8", "ascii")


class TranscriptEncodingError(ValueError):
    """No plausible decoding exists (binary data, say)."""


def decode_transcript(data: bytes, language: str | None = None) -> DecodedText:
    """Decode transcript bytes: BOMs first, then strict UTF-8, then the best legacy encoding."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return DecodedText(data.decode(name), name if name != "utf-8-sig" else "utf-8")
    if b"\x00" in data:
        raise TranscriptEncodingError("transcript holds NUL bytes: it is binary, not text")
    try:
        return DecodedText(data.decode("utf-8"), "ascii" if data.isascii() else "utf-8")
    except UnicodeDecodeError:
        pass
    alphabet = _ALPHABETS.get(language or "")
    best = max(_LEGACY_CANDIDATES, key=lambda enc: _alphabet_score(data.decode(enc, "replace"), alphabet))
    if alphabet or _alphabet_score(data.decode(best, "replace"), None) > 0.5:
        return DecodedText(data.decode(best, "replace"), best)
    match = from_bytes(data).best()  # neither Latin nor Cyrillic: Greek, CJK, ...
    if match is None:
        raise TranscriptEncodingError("transcript bytes match no known text encoding")
    return DecodedText(str(match), match.encoding)


def _alphabet_score(text: str, alphabet: set[str] | None) -> float:
    """How plausible a decoding looks: the share of letters in the language's alphabet, minus bad bytes.

    Without a known alphabet: the share of letters that are ASCII (Latin-script text) or Cyrillic, whichever is
    larger, minus the share of words mixing the two (mis-decoded legacy bytes produce such words).
    """
    letters = [c for c in text.lower() if c.isalpha()]
    if not letters:
        return 0.0
    penalty = sum(c == "\ufffd" or (c < " " and c not in "\t\r\n") or "\x7f" <= c <= "\x9f" for c in text)
    if alphabet:
        return sum(c in alphabet for c in letters) / len(letters) - penalty
    ascii_share = sum(c.isascii() for c in letters) / len(letters)
    cyrillic_share = sum(_is_cyrillic(c) for c in letters) / len(letters)
    words = text.split()
    mixed = sum(
        any(_is_cyrillic(c) for c in w) and any(c.isascii() and c.isalpha() for c in w) for w in words
    )
    return max(ascii_share, cyrillic_share) - mixed / max(len(words), 1) - penalty


def _is_cyrillic(char: str) -> bool:
    return "\u0400" <= char <= "\u04ff"
