"""Serbian/Bosnian Cyrillic <-> Latin transliteration (Vuk Karadžić's one-to-one alphabet).

Digraphs map to single Cyrillic letters (lj/nj/dž <-> љ/њ/џ). Capitalization follows the word: Љубав -> Ljubav,
ЉУБАВ -> LJUBAV, and back. A handful of words where Latin "nj"/"dž" are two letters (injekcija, nadživeti)
are kept as exceptions, as in the standard orthography.
"""

from __future__ import annotations

import re
import unicodedata

# Languages written in both Cyrillic and Latin: their transcripts may come in either script.
TWO_SCRIPT_LANGUAGES = frozenset({"sr", "bs", "sh", "cnr"})
SERBIAN_CYRILLIC = "абвгдђежзијклљмнњопрстћуфхцчџш"
_LATIN = "a b v g d đ e ž z i j k l lj m n nj o p r s t ć u f h c č dž š".split()
_CYR_TO_LAT = dict(zip(SERBIAN_CYRILLIC, _LATIN, strict=True))
_LAT_TO_CYR = {lat: cyr for cyr, lat in _CYR_TO_LAT.items()}
_LATIN_TOKEN = re.compile(r"dž|lj|nj|[abcčćdđefghijklmnoprsštuvzž]", re.IGNORECASE)
# Word stems where Latin digraph letters are two separate Cyrillic letters.
_SPLIT_DIGRAPH_STEMS = dict(
    pair.split(":")
    for pair in "injekc:инјекц konjug:конјуг konjunk:конјунк tanjug:танјуг nadžanj:наджањ nadživ:наджив "
    "nadžnj:наджњ podžanr:поджанр".split()
)
_SPLIT_STEM = re.compile("|".join(sorted(_SPLIT_DIGRAPH_STEMS, key=len, reverse=True)), re.IGNORECASE)


def cyrillic_to_latin(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    for i, char in enumerate(text):
        latin = _CYR_TO_LAT.get(char.lower())
        if latin is None:
            out.append(char)
        elif not char.isupper():
            out.append(latin)
        elif len(latin) == 1 or not _in_all_caps_word(text, i):
            out.append(latin.capitalize())
        else:
            out.append(latin.upper())
    return "".join(out)


def latin_to_cyrillic(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _SPLIT_STEM.sub(lambda m: _match_case(_SPLIT_DIGRAPH_STEMS[m.group(0).lower()], m.group(0)), text)
    return _LATIN_TOKEN.sub(lambda m: _token_to_cyrillic(m.group(0)), text)


def _token_to_cyrillic(token: str) -> str:
    cyrillic = _LAT_TO_CYR[token.lower()]
    return cyrillic.upper() if token[0].isupper() else cyrillic


def _match_case(replacement: str, original: str) -> str:
    if original.isupper():
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def _in_all_caps_word(text: str, index: int) -> bool:
    """A capital digraph letter is written in full caps when a neighbouring letter is a capital too."""
    neighbours = [text[j] for j in (index - 1, index + 1) if 0 <= j < len(text) and text[j].isalpha()]
    return any(c.isupper() for c in neighbours)


def has_cyrillic(text: str) -> bool:
    return any("\u0400" <= c <= "\u04ff" for c in text)


def script_of(text: str) -> str:
    """ "cyrillic" or "latin" by the majority of its letters; "none" without letters."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "none"
    return "cyrillic" if sum(map(has_cyrillic, letters)) * 2 > len(letters) else "latin"
