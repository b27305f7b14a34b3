"""WER and CER three ways (orthographic, normalized, script-folded), per utterance and aggregated.

Aggregates are corpus-level: total errors over total reference words (or characters), not a mean of
per-utterance rates, so long utterances weigh what they should.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import jiwer
import numpy as np

from whisper_assets.text.normalize import remove_punctuation
from whisper_assets.text.transliterate import TWO_SCRIPT_LANGUAGES, cyrillic_to_latin

VIEWS = ("orthographic", "normalized", "folded")
# A model that misses more than this share of a built-in synthetic set's words does not hear it: a rise there is
# noise, not forgetting (the gate reports such a set without holding to it; training does not choose on it).
HEARD_MAX_WER = 0.5
_WHITESPACE = re.compile(r"\s+")
_RESAMPLES_AT_ONCE = 100
_DURATION_BUCKETS = ((2.0, "<2s"), (5.0, "2-5s"), (10.0, "5-10s"), (float("inf"), "10-30s"))


def view_text(text: str, view: str, language: str) -> str:
    """The text as compared in one view: as written; lowercased without punctuation; and script-folded."""
    text = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if view == "orthographic":
        return text
    text = remove_punctuation(text).lower()  # diacritics are kept: č and c are different letters
    if view == "folded" and language in TWO_SCRIPT_LANGUAGES:
        text = cyrillic_to_latin(text)
    return text


def agreement_cer(text: str, heard: str, language: str) -> float:
    """How far what a model heard is from a label, by characters, spaces and the way numbers are written aside:
    English through Whisper's own normalizer (so "eight three" and "8 3" agree), other languages folded."""
    if language == "en":
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        normalize = EnglishTextNormalizer({})
        text, heard = normalize(text), normalize(heard)
    else:
        text, heard = view_text(text, "folded", language), view_text(heard, "folded", language)
    text, heard = text.replace(" ", ""), heard.replace(" ", "")
    if not text:
        return float(bool(heard))
    return float(jiwer.cer(text, heard or " "))


def duration_bucket(seconds: float) -> str:
    return next(label for limit, label in _DURATION_BUCKETS if seconds < limit)


def hallucination_flags(reference: str, hypothesis: str) -> list[str]:
    """Signs of a decoder running away: a repeated n-gram loop, or output far longer than the reference."""
    flags = []
    words = hypothesis.split()
    for n in (1, 2, 3, 4):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        if grams and max(grams.values()) >= max(4, 8 // n) and len(words) >= 4 * n:
            flags.append(f"repeated_{n}gram")
            break
    if len(words) > 2 * len(reference.split()) + 5:
        flags.append("too_long")
    return flags


def score_utterance(reference: str, hypothesis: str, language: str) -> dict:
    """Error counts in every view for one utterance (an empty reference counts every output word as an error)."""
    row: dict = {"hallucination": hallucination_flags(reference, hypothesis)}
    for view in VIEWS:
        ref, hyp = view_text(reference, view, language), view_text(hypothesis, view, language)
        ref_words, ref_chars = len(ref.split()), len(ref)
        if ref_words == 0:
            word_errors, char_errors = len(hyp.split()), len(hyp)
        else:
            word_errors = _errors(jiwer.process_words(ref, hyp or " "))
            char_errors = _errors(jiwer.process_characters(ref, hyp or " "))
        row |= {
            f"{view}_word_errors": word_errors,
            f"{view}_ref_words": ref_words,
            f"{view}_char_errors": char_errors,
            f"{view}_ref_chars": ref_chars,
        }
    row["wer"] = _rate(row["normalized_word_errors"], row["normalized_ref_words"])
    row["cer"] = _rate(row["normalized_char_errors"], row["normalized_ref_chars"])
    return row


def aggregate(rows: Iterable[dict]) -> dict:
    """Corpus-level WER and CER in every view, plus counts."""
    totals: dict[str, float] = defaultdict(float)
    count = flagged = 0
    for row in rows:
        count += 1
        flagged += bool(row["hallucination"])
        for view in VIEWS:
            for part in ("word_errors", "ref_words", "char_errors", "ref_chars"):
                totals[f"{view}_{part}"] += row[f"{view}_{part}"]
    out: dict = {"utterances": count, "hallucinations": flagged}
    for view in VIEWS:
        out[f"wer_{view}"] = _rate(totals[f"{view}_word_errors"], totals[f"{view}_ref_words"])
        out[f"cer_{view}"] = _rate(totals[f"{view}_char_errors"], totals[f"{view}_ref_chars"])
    return out


def paired_wer_interval(
    base: Sequence[dict], tuned: Sequence[dict], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The interval of the change in normalized corpus WER (points, `tuned` minus `base`) by a paired bootstrap
    over utterances (Bisani & Ney, 2004): both models' rows score the same utterances, in the same order. On a
    few hundred words, one utterance more or less wrong moves a WER by points; this says how many."""
    base_errors, tuned_errors, words = (
        np.array([row[key] for row in rows], dtype=float)
        for rows, key in (
            (base, "normalized_word_errors"),
            (tuned, "normalized_word_errors"),
            (base, "normalized_ref_words"),
        )
    )
    if not len(words):
        return 0.0, 0.0
    rng, difference, changes = np.random.default_rng(seed), tuned_errors - base_errors, []
    for start in range(0, resamples, _RESAMPLES_AT_ONCE):  # memory: _RESAMPLES_AT_ONCE x utterances indices
        drawn = rng.integers(0, len(words), size=(min(_RESAMPLES_AT_ONCE, resamples - start), len(words)))
        changes.append(100 * difference[drawn].sum(1) / np.maximum(words[drawn].sum(1), 1))
    low, high = np.quantile(np.concatenate(changes), [(1 - level) / 2, (1 + level) / 2])
    return round(float(low), 2), round(float(high), 2)


def breakdown(rows: Sequence[dict], field: str) -> dict[str, dict]:
    """Aggregates per value of a field (language, source, speaker, duration_bucket)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row.get(field) or "unknown")].append(row)
    return {key: aggregate(group) for key, group in sorted(groups.items())}


def _errors(output) -> int:
    return output.substitutions + output.deletions + output.insertions


def _rate(errors: float, total: float) -> float:
    return round(errors / total, 4) if total else 0.0
