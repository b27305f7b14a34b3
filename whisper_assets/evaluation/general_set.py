"""A general-speech set made offline, so the champion gate sees forgetting even when no regression source exists.

Everyday sentences (30 in English, 6 in each of the others), unrelated to any domain, spoken by espeak-ng voices that none of the project's generated sets
use, in every language that has sentences here (English, Croatian, Serbian, Bosnian). A set is versioned by its
sentences, voices and the espeak-ng release, written once under its version and reused: one manifest per
language, evaluated like a regression set. Synthetic voices are a floor, not a substitute: a `role: regression`
source of real speech measures forgetting better, and takes precedence when one is configured.

A second, smaller set per language (other sentences, other voices) is the selection set: training picks its
interpolation share on it, so the gate's set stays unseen by every choice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from whisper_assets.audio.espeak import espeak, espeak_available, espeak_version
from whisper_assets.audio.process import TARGET_RATE, to_mono_16k, write_pcm16
from whisper_assets.curation.manifests import read_manifest
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


# The selection set: other sentences and voices, on which training picks its interpolation share; never scored by
# the gate, so the gate judges the share on speech nothing chose on.
SELECTION_SENTENCES = {
    "en": (
        "The post office opens at nine on weekdays.",
        "We are having fish and potatoes for dinner tonight.",
        "My sister moved to the coast after she retired.",
        "The printer on the second floor is out of paper again.",
        "Turn left at the church and the school is on your right.",
        "He wrote a long letter to his old teacher.",
        "The kettle is broken, so we boiled water in a pan.",
        "Snow fell all night and the roads were closed.",
        "She keeps her keys in a small wooden box.",
        "The farmer sold his apples at the Saturday market.",
        "I need a new battery for my watch.",
        "Our flight was delayed by almost two hours.",
        "The cat sleeps on the warm windowsill every afternoon.",
        "They built a tree house for their grandchildren.",
        "Please write your name at the top of the form.",
        "The band played old songs until midnight.",
        "We walked along the river to the next village.",
        "The soup needs a little more salt and pepper.",
        "His car would not start on the coldest morning of the year.",
        "The teacher asked everyone to read the first chapter.",
    ),
    "hr": (
        "Pošta se otvara u devet sati radnim danom.",
        "Večeras za večeru imamo ribu i krumpir.",
        "Moja sestra se preselila na obalu.",
        "Skrenite lijevo kod crkve i škola je s desne strane.",
        "Cijelu noć je padao snijeg.",
        "Trebam novu bateriju za sat.",
    ),
    "sr": (
        "Pošta se otvara u devet sati radnim danima.",
        "Večeras za večeru imamo ribu i krompir.",
        "Moja sestra se preselila na obalu.",
        "Skrenite levo kod crkve i škola je sa desne strane.",
        "Celu noć je padao sneg.",
        "Treba mi nova baterija za sat.",
    ),
    "bs": (
        "Pošta se otvara u devet sati radnim danima.",
        "Večeras za večeru imamo ribu i krompir.",
        "Moja sestra se preselila na obalu.",
        "Skrenite lijevo kod crkve i škola je sa desne strane.",
        "Cijelu noć je padao snijeg.",
        "Treba mi nova baterija za sat.",
    ),
}
SELECTION_VOICES = {
    "en": ("en-gb-x-gbclan+f1", "en-us-nyc+m6", "en-029+m2", "en-gb-x-gbcwmd+f4"),
    "hr": ("hr+m2", "hr+f1"),
    "sr": ("sr+m1", "sr+f1"),
    "bs": ("bs+m2", "bs+f3"),
}
_KINDS = {"general": (SENTENCES, VOICES), "selection": (SELECTION_SENTENCES, SELECTION_VOICES)}


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
    return _sets("general", languages, root)


def selection_sets(languages: set[str], root: Path) -> dict[str, Path]:
    """The selection sets (training's interpolation share is chosen on them), like `general_sets`."""
    return _sets("selection", languages, root)


def selection_rows(languages: set[str], root: Path) -> list[dict]:
    """Every item of the selection sets of these languages (built when missing)."""
    return [row for path in selection_sets(languages, root).values() for row in read_manifest(path)]


def _sets(kind: str, languages: set[str], root: Path) -> dict[str, Path]:
    if not espeak_available():
        return {}
    return {
        general_set_name(language): _built(kind, language, root)
        for language in sorted(languages)
        if general_language(language)
    }


def _built(kind: str, language: str, root: Path) -> Path:
    sentences, voices = (table[language] for table in _KINDS[kind])
    prefix = "" if kind == "general" else f"{kind}-"  # the gate's sets keep their folders
    name = f"{prefix}{general_set_name(language)}"
    folder = root / f"{prefix}{language}-{_version(sentences, voices)}"
    manifest = folder / "manifest.jsonl"
    if manifest.exists():
        return manifest
    rows = []
    for k, text in enumerate(sentences):
        voice = voices[k % len(voices)]
        samples = to_mono_16k(*espeak(text, voice))
        audio = folder / f"{k:02d}.wav"
        write_pcm16(audio, samples)
        rows.append(
            {
                "id": f"{name}-{k:02d}",
                "audio": str(audio),
                "transcript": text,
                "language": language,
                "source": name,
                "duration": round(len(samples) / TARGET_RATE, 3),
                "speaker": voice,
            }
        )
    write_jsonl_atomic(manifest, rows)
    return manifest


def _version(sentences: tuple[str, ...], voices: tuple[str, ...]) -> str:
    recipe = [SET_VERSION, sentences, voices, espeak_version()]
    return hashlib.blake2s(json.dumps(recipe).encode(), digest_size=6).hexdigest()
