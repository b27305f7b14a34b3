"""Benchmark: which fine-tuning recipe learns the domain fast and forgets least? One run, same data and machine.

    .venv/bin/python bench/recipes.py --model ../shared/models/whisper-tiny.en --data ../shared/data/fsdd-dev \
        [--recipes full_lr1e-5 lora_r8 ...] [--steps 60]

Every recipe fine-tunes the model on one FSDD speaker (same clips, steps, batch and seed) and is measured on:
- the domain: WER on the other speaker's clips (a speaker never trained on);
- regression: WER on espeak-ng English sentences and a long espeak-ng paragraph (longer than a trimmed window,
  transcribed in speech windows as the platform evaluates), next to the base model;
- training wall time.
Replay recipes mix a replay set into each batch: other espeak-ng sentences (other texts and voices than the
regression set), labelled with the base model's own transcripts, as a user's unlabeled general audio would be.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from finetuned_alignment import SENTENCES, heard_and_unseen, speaker_parser, spoken, wer

from whisper_assets.asr.model import load_base
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train

RECIPES: dict[str, dict] = {
    "full_lr1e-4": {"learning_rate": 1e-4},  # the learning rate the project shipped with
    "full_lr1e-5": {"learning_rate": 1e-5},
    "full_lr1e-5_replay25": {"learning_rate": 1e-5, "replay_share": 0.25},
    "full_lr1e-4_replay25": {"learning_rate": 1e-4, "replay_share": 0.25},
    "freeze_encoder_lr1e-5": {"method": "freeze_encoder", "learning_rate": 1e-5},
    "lora_r8_lr1e-3": {"method": "lora", "lora_rank": 8, "lora_alpha": 16, "learning_rate": 1e-3},
    "lora_r8_lr1e-3_replay25": {
        "method": "lora",
        "lora_rank": 8,
        "lora_alpha": 16,
        "learning_rate": 1e-3,
        "replay_share": 0.25,
    },
    "lora_r32_lr5e-4": {"method": "lora", "lora_rank": 32, "lora_alpha": 64, "learning_rate": 5e-4},
    "packing_lr1e-5": {"learning_rate": 1e-5, "packing": True},
    "window30_full_lr1e-5": {"learning_rate": 1e-5, "window_seconds": 30.0},
}
REPLAY_SENTENCES = [
    "The train to the city leaves every hour from platform two.",
    "I forgot my umbrella at the office yesterday evening.",
    "Could you send me the report before the meeting starts?",
    "The garden looks beautiful after a week of spring rain.",
    "We need to buy bread, eggs and a bottle of olive oil.",
    "Her new job starts next month in a different town.",
    "The museum is closed on Mondays and public holidays.",
    "He fixed the old bicycle with a few simple tools.",
    "Most birds fly south when the days become shorter.",
    "Let me know if you need any help with the project.",
    "The library has a quiet room for reading and study.",
    "Our neighbours painted their house a bright yellow colour.",
]
REPLAY_VOICES = ("en-gb", "en-us+f3", "en-us+m7")
PARAGRAPH = (
    "Last summer we drove along the coast for two weeks. Every morning we stopped in a small village for "
    "coffee, and every evening we looked for a quiet beach to watch the sun go down."
)


def base_labelled(model_path: str, items: list[dict]) -> list[dict]:
    """The items with the base model's transcripts as labels (replay keeps what the model already does)."""
    model, processor = load_base(model_path)
    return [
        i | {"transcript": t.strip()} for i, t in zip(items, transcribe(model, processor, items), strict=True)
    ]


def measure(model_path: str, unseen: list[dict], sentences: list[dict], paragraph: list[dict]) -> dict:
    model, processor = load_base(model_path)
    return {
        "domain_wer_unseen_speaker": wer(model, processor, unseen, spell=True),
        "regression_wer_espeak_sentences": wer(model, processor, sentences, spell=False),
        "regression_wer_espeak_paragraph": wer(model, processor, paragraph, spell=False),
    }


def main() -> None:
    parser = speaker_parser()
    parser.add_argument("--window", type=float, default=10.0, help="Encoder window unless a recipe sets one.")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        heard, unseen = heard_and_unseen(args, work / "audio")
        sentences = spoken(SENTENCES, ("en-us",), work / "audio", "sentence")
        paragraph = spoken([PARAGRAPH], ("en-us",), work / "audio", "paragraph")
        replay = base_labelled(args.model, spoken(REPLAY_SENTENCES, REPLAY_VOICES, work / "audio", "replay"))
        report: dict = {
            "train": {"speaker": args.train_speaker, "items": len(heard) - 20, "steps": args.steps},
            "replay_items": len(replay),
            "paragraph_seconds": round(paragraph[0]["duration"], 1),
            "base": measure(args.model, unseen, sentences, paragraph),
        }
        for name in args.recipes:
            options = TrainingOptions(
                **{
                    "base_model": args.model,
                    "max_steps": args.steps,
                    "batch_size": 8,
                    "eval_every": args.steps,
                    "save_every": args.steps,
                    "max_eval_items": 20,
                    "seed": 0,
                    "window_seconds": args.window,
                    "replay_share": 0.0,  # replay only where a recipe says so
                }
                | RECIPES[name]
            )
            run = work / name
            began = time.perf_counter()
            result = train(
                options, heard[20:], heard[:20], run, run / "cache", work / f"{name}.jsonl", None, replay
            )
            report[name] = {
                "train_seconds": round(time.perf_counter() - began, 1),
                **measure(str(result.model_dir), unseen, sentences, paragraph),
            }
            print(json.dumps({name: report[name]}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
