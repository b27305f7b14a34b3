"""A general-speech set made offline, so the champion gate sees forgetting even when no regression source exists.

Everyday sentences (30 in English, 6 in each of the others), unrelated to any domain, spoken by espeak-ng voices that none of the project's generated sets
use, in every language that has sentences here (English, Croatian, Serbian, Bosnian). A set is versioned by its
sentences, voices and the espeak-ng release, written once under its version and reused: one manifest per
language, evaluated like a regression set. Synthetic voices are a floor, not a substitute: a `role: regression`
source of real speech measures forgetting better, and takes precedence when one is configured.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from whisper_assets.audio.espeak import espeak, espeak_available, espeak_version
from whisper_assets.audio.process import TARGET_RATE, to_mono_16k, write_pcm16
from whisper_assets.files import write_jsonl_atomic

SET_VERSION = 1  # bump when the way a set is built changes
SENTENCES = {
    "en": (
        "The train to the airport leaves every twenty minutes.",
        "Could you tell me where the nearest pharmacy is?",
        "We planted tomatoes and beans in the garden last spring.",
        "The meeting has been moved to Thursday afternoon.",
        "My brother works as a nurse at the city hospital.",
        "Please switch off the lights when you leave the room.",
        "It rained all weekend, so we stayed inside and read.",
        "The library closes early on public holidays.",
        "She forgot her umbrella on the bus this morning.",
        "Our neighbours are painting their fence bright blue.",
        "The bakery on the corner sells fresh bread until noon.",
        "He has been learning to play the violin for three years.",
        "The children were excited about the school trip to the museum.",
        "Remember to water the plants while we are away.",
        "The price of coffee went up again last month.",
        "We watched the sunset from the top of the hill.",
        "The doctor said I should drink more water and sleep longer.",
        "A strong wind knocked over the chairs on the balcony.",
        "The new bridge will open to traffic next summer.",
        "I usually walk the dog before breakfast.",
        "The concert was cancelled because the singer was ill.",
        "They are looking for a bigger flat closer to the city centre.",
        "Could you send me the documents by the end of the week?",
        "The river flooded the fields after days of heavy rain.",
        "My grandmother makes the best apple pie in the village.",
        "The shop assistant helped me find a warmer coat.",
        "We missed the last bus and had to take a taxi home.",
        "The football match ended in a draw after extra time.",
        "Please leave your shoes at the door when you come in.",
        "The old castle attracts thousands of visitors every year.",
    ),
    "hr": (
        "Vlak za zračnu luku polazi svakih dvadeset minuta.",
        "Možete li mi reći gdje je najbliža ljekarna?",
        "Prošlog proljeća posadili smo rajčice u vrtu.",
        "Sastanak je pomaknut na četvrtak poslijepodne.",
        "Moj brat radi kao medicinski tehničar u bolnici.",
        "Molim vas, ugasite svjetlo kad izlazite iz sobe.",
    ),
    "sr": (
        "Voz za aerodrom polazi svakih dvadeset minuta.",
        "Možete li mi reći gde je najbliža apoteka?",
        "Prošlog proleća posadili smo paradajz u bašti.",
        "Sastanak je pomeren za četvrtak popodne.",
        "Moj brat radi kao medicinski tehničar u bolnici.",
        "Molim vas, ugasite svetlo kad izlazite iz sobe.",
    ),
    "bs": (
        "Voz za aerodrom polazi svakih dvadeset minuta.",
        "Možete li mi reći gdje je najbliža apoteka?",
        "Prošlog proljeća posadili smo paradajz u bašti.",
        "Sastanak je pomjeren za četvrtak poslijepodne.",
        "Moj brat radi kao medicinski tehničar u bolnici.",
        "Molim vas, ugasite svjetlo kad izlazite iz sobe.",
    ),
}
# Voices and variants none of the project's generated sets (demo, tests, benchmarks) speak with.
VOICES = {
    "en": ("en-gb-scotland", "en-us-nyc+f3", "en-gb-x-rp+m5", "en-029+f4"),
    "hr": ("hr+m5", "hr+f3"),
    "sr": ("sr+m6", "sr+f5"),
    "bs": ("bs+m4", "bs+f1"),
}


def general_language(language: str) -> bool:
    """Whether a language has a built-in general set."""
    return language in SENTENCES


def general_set_name(language: str) -> str:
    """The set's name in metrics, tables and the dashboard."""
    return f"general_{language}"


def is_general_set(name: str) -> bool:
    return name.startswith("general_")


def general_sets(languages: set[str], root: Path) -> dict[str, Path]:
    """Manifest path per set name, for the languages that have sentences here, built under `root` when missing
    (nothing without espeak-ng)."""
    if not espeak_available():
        return {}
    return {
        general_set_name(language): _built(language, root)
        for language in sorted(languages)
        if general_language(language)
    }


def _built(language: str, root: Path) -> Path:
    folder = root / f"{language}-{_version(language)}"
    manifest = folder / "manifest.jsonl"
    if manifest.exists():
        return manifest
    rows = []
    for k, text in enumerate(SENTENCES[language]):
        voice = VOICES[language][k % len(VOICES[language])]
        samples = to_mono_16k(*espeak(text, voice))
        audio = folder / f"{k:02d}.wav"
        write_pcm16(audio, samples)
        rows.append(
            {
                "id": f"{general_set_name(language)}-{k:02d}",
                "audio": str(audio),
                "transcript": text,
                "language": language,
                "source": general_set_name(language),
                "duration": round(len(samples) / TARGET_RATE, 3),
                "speaker": voice,
            }
        )
    write_jsonl_atomic(manifest, rows)
    return manifest


def _version(language: str) -> str:
    recipe = [SET_VERSION, SENTENCES[language], VOICES[language], espeak_version()]
    return hashlib.blake2s(json.dumps(recipe).encode(), digest_size=6).hexdigest()
