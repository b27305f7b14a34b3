"""Benchmark: fine-tune multilingual Whisper on Croatian, Bosnian and Serbian (Cyrillic) speech with the default
recipe; WER/CER per language and script before and after, and forgetting on the built-in general sets of every
language the run touches (hr, bs, sr and the default English).

    .venv/bin/python bench/multilingual.py --model ../shared/models/whisper-base [--steps 60]

Speech is espeak-ng's (its hr, bs and sr voices), so "the domain" is a synthetic voice: the figures say whether
the multilingual path (per-item language tokens, script handling, script-folded metrics) learns and what it
costs elsewhere, not what a human recording would reach. The general sets are espeak-ng too (other sentences and
voices), so in hr/bs/sr they partly measure learning espeak-ng; English is the cleaner forgetting figure.
Training: 25 sentences in each language in two voice variants, Serbian written in Cyrillic (a source with
`script: cyrillic`); validation: 5 more in the same voices. As in the Dagster step, the auto interpolation share
is chosen on validation and the built-in selection sets of those languages. Held out: 10 other sentences in two
other voice variants, scored per language and script:
- `normalized`: lowercase, no punctuation, the reference's own script (a Latin answer to Cyrillic is wrong);
- `folded`: Serbian and Bosnian Cyrillic read as Latin (the platform's script-folded view).
Serbian is scored twice on the same audio: against its Cyrillic and its Latin transcripts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from finetuned_alignment import spoken

from whisper_assets.asr.metrics import aggregate, score_utterance
from whisper_assets.asr.model import load_base
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.curation.manifests import read_manifest
from whisper_assets.evaluation.general_set import general_sets, selection_rows
from whisper_assets.text.transliterate import latin_to_cyrillic
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train

SENTENCES_LATIN = [
    "Dobar dan, kako ste danas?",
    "Voz kasni deset minuta.",
    "Molim vas, zatvorite prozor.",
    "Sutra idemo na more sa prijateljima.",
    "Moja sestra radi u bolnici.",
    "Ovaj grad ima stari kameni most.",
    "Koliko košta karta do Sarajeva?",
    "Pas spava ispod stola.",
    "Danas je hladno i pada kiša.",
    "Otac čita novine svako jutro.",
    "Nazovi me kad stigneš kući.",
    "Prijatelji se igraju u parku.",
    "Zaboravio sam ključeve u autu.",
    "Restoran je zatvoren do podne.",
    "Učim novi jezik već tri godine.",
    "Naša kuća je blizu škole.",
    "Ona svira gitaru u bendu.",
    "Treba mi nova torba za posao.",
    "Vozač je stao kod pošte.",
    "Popij čašu vode i odmori se.",
    "Muzej je otvoren od devet do pet.",
    "Brat mi je poslao pismo iz Beča.",
    "Na pijaci ima mnogo voća.",
    "Zima je ove godine bila duga.",
    "Moramo završiti posao do petka.",
    "Autobus polazi sa glavne stanice.",
    "Ko želi još jednu šolju čaja?",
    "Telefon mi je pao u vodu.",
    "Profesor je objasnio zadatak.",
    "Jedan, dva, tri, četiri, pet.",
    # held out
    "Kako da stignem do apoteke?",
    "Mačka leži na prozoru.",
    "Ručak je spreman u dva sata.",
    "Moj komšija popravlja bicikl.",
    "Ljudi čekaju ispred banke.",
    "Jezero je mirno i duboko.",
    "Pročitao sam tu knjigu za jedan dan.",
    "Sunce izlazi rano ujutru.",
    "Hvala vam na pomoći.",
    "Nemam vremena za kafu danas.",
]
TRAINED, VALIDATION, HELD_OUT = SENTENCES_LATIN[:25], SENTENCES_LATIN[25:30], SENTENCES_LATIN[30:]
GENERAL_LANGUAGES = {"hr", "bs", "sr", "en"}  # the sources' languages and the default
TRAIN_VOICES, TEST_VOICES = ("", "+f2"), ("+m3", "+f4")
# (language, script): the texts as written in that script
SETS = {
    ("hr", "latin"): lambda texts: texts,
    ("bs", "latin"): lambda texts: texts,
    ("sr", "cyrillic"): lambda texts: [latin_to_cyrillic(t) for t in texts],
}


def voiced(language: str, texts: list[str], voices: tuple[str, ...], folder: Path, prefix: str) -> list[dict]:
    """Every text in every voice variant of the language."""
    items = []
    for variant in voices:
        tag = variant.strip("+") or "default"
        items += spoken(texts, (language + variant,), folder, f"{prefix}-{tag}-", language)
    return items


def scores(model, processor, items: list[dict], language: str) -> dict:
    """Corpus WER/CER, normalized and script-folded, with the language token forced as the platform does."""
    hypotheses = transcribe(model, processor, items, language=language)
    summary = aggregate(
        score_utterance(i["transcript"], h, language) for i, h in zip(items, hypotheses, strict=True)
    )
    return {k: summary[k] for k in ("wer_normalized", "cer_normalized", "wer_folded", "cer_folded")}


def measure(model_path: str, sets: dict[str, list[dict]]) -> dict:
    model, processor = load_base(model_path)
    return {name: scores(model, processor, items, items[0]["language"]) for name, items in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="../shared/models/whisper-base")
    parser.add_argument("--steps", type=int, default=TrainingOptions().max_steps)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--learning-rate", type=float, default=TrainingOptions().learning_rate)
    parser.add_argument(
        "--window", type=float, help="Encoder window in seconds (default: the product's auto window)"
    )
    args = parser.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(f"needs {args.model} (the shared folder beside the checkout)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trained, validation, held_out = [], [], {}
        for (language, script), written in SETS.items():
            trained += voiced(language, written(TRAINED), TRAIN_VOICES, work, f"train-{language}")
            validation += voiced(language, written(VALIDATION), TRAIN_VOICES, work, f"val-{language}")
            held_out[f"{language}-{script}"] = voiced(
                language, written(HELD_OUT), TEST_VOICES, work, f"test-{language}"
            )
        held_out["sr-latin"] = [
            i | {"transcript": t} for i, t in zip(held_out["sr-cyrillic"], HELD_OUT * 2, strict=True)
        ]
        general = {
            name: read_manifest(path)
            for name, path in general_sets(GENERAL_LANGUAGES, work / "general").items()
        }
        sets = held_out | general
        report: dict = {
            "train_items": len(trained),
            "validation_items": len(validation),
            "scored_items": {name: len(items) for name, items in sets.items()},
            "steps": args.steps,
            "learning_rate": args.learning_rate,
            "base": measure(args.model, sets),
        }
        print(json.dumps({"base": report["base"]}), flush=True)
        options = TrainingOptions(
            base_model=args.model,
            language=None,  # each item's own language token
            max_steps=args.steps,
            learning_rate=args.learning_rate,
            batch_size=8,
            seed=args.seed,
            window_seconds=args.window,
            replay_share=0.0,
        )
        began = time.perf_counter()
        result = train(
            options,
            trained,
            validation,
            work / "run",
            work / "cache",
            work / "train.jsonl",
            general_items=selection_rows(GENERAL_LANGUAGES, work / "general"),
        )
        report["train_seconds"] = round(time.perf_counter() - began, 1)
        report["window_seconds"] = result.window_seconds
        report["full_window_steps"] = result.full_window_steps
        report["interpolation"] = result.interpolation
        report["tuned"] = measure(str(result.model_dir), sets)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
