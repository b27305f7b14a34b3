"""Review hardest first vs in id order: errors a simulated reviewer finds per 100 entries reviewed.

A review database gets real speech (FSDD digits from two speakers, espeak-ng sentences in four voices) with
transcript errors injected into a share of the entries (another word, a dropped word, another clip's transcript,
extra words, a cut-off transcript). `rank_pending` scores them with a real model, as the `review_priorities`
asset does; the reviewer then checks entries in each order and we count the errors found in the first N.
The stored signals are re-weighted to compare each signal alone with the default mix.

    .venv/bin/python bench/review_priority.py --model ../shared/models/whisper-tiny.en
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import soundfile as sf
from finetuned_alignment import SENTENCES, clip_items, fsdd_files, spoken

from whisper_assets.evaluation.review_policy import PrioritySettings, Signals, priority
from whisper_assets.evaluation.review_priority import rank_pending
from whisper_assets.sources import review_db

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-us+f3")
NO_SIGNAL = {
    "disagreement_weight": 0,
    "logprob_weight": 0,
    "word_logprob_weight": 0,
    "speaking_rate_weight": 0,
}
WEIGHTINGS = {
    "default mix": {},
    "disagreement only": NO_SIGNAL | {"disagreement_weight": 1},
    "mean log-probability only": NO_SIGNAL | {"logprob_weight": 1},
    "worst-token log-probability only": NO_SIGNAL | {"word_logprob_weight": 1},
    "speaking rate only": NO_SIGNAL | {"speaking_rate_weight": 1},
    "equal weights": dict.fromkeys(NO_SIGNAL, 1),
    "without the worst token": {"word_logprob_weight": 0},
}


def corrupt(text: str, others: list[str], rng: random.Random) -> str:
    """One realistic transcript error."""
    words = text.split()
    kind = rng.choice(
        ["substitute", "drop", "swap", "extra", "cut"] if len(words) > 2 else ["substitute", "extra"]
    )
    if kind == "substitute":
        vocabulary = sorted({w for o in others for w in o.split()} - set(words))
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
    elif kind == "drop":
        del words[rng.randrange(len(words))]
    elif kind == "swap":
        return rng.choice([o for o in others if o != text])
    elif kind == "extra":
        words += rng.choice(others).split()[:3]
    else:
        words = words[: len(words) // 2]
    return " ".join(words)


def build(folder: Path, data: Path, error_share: float, seed: int) -> tuple[Path, set[int]]:
    rng = random.Random(seed)
    files = fsdd_files(data)
    digits = [f for f in files if int(f.stem.split("_")[2]) < 4]  # 4 takes of each digit and speaker
    items = clip_items(digits, folder, "fsdd") + spoken(SENTENCES * 4, VOICES, folder, "espeak")
    rng.shuffle(items)
    db = review_db.create_database(folder / "review.db")
    texts = [i["transcript"] for i in items]
    wrong = set()
    with review_db.connect(db) as con:
        for item in items:
            text = item["transcript"]
            if rng.random() < error_share:
                text = corrupt(text, texts, rng)
            samples, _ = sf.read(item["audio"], dtype="float32")
            entry = con.execute(
                f"INSERT INTO {review_db.TABLE} (transcript, audio_blob) VALUES (?, ?)",
                (text, review_db.encode_blob(samples)),
            ).lastrowid
            if text != item["transcript"]:
                wrong.add(entry)
    return db, wrong


def found_per_100(order: list[int], wrong: set[int], reviewed: int) -> float:
    return round(100 * len(set(order[:reviewed]) & wrong) / reviewed, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fsdd-dev"
    )
    parser.add_argument("--error-share", type=float, default=0.2)
    parser.add_argument("--reviewed", type=int, default=25, help="entries the reviewer checks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, wrong = build(Path(tmp), args.data, args.error_share, args.seed)
        started = time.perf_counter()
        result = rank_pending(db, args.model, Path(args.model).name, "en", PrioritySettings())
        seconds = time.perf_counter() - started
        with review_db.connect(db, readonly=True) as con:
            rows = con.execute(
                f"SELECT entry_id, disagreement, logprob, word_logprob, chars_per_second FROM {review_db.PRIORITY_TABLE}"
            ).fetchall()
    entries = sorted(r[0] for r in rows)
    print(
        f"{len(entries)} entries, {len(wrong)} with injected errors ({len(wrong) / len(entries):.0%}); scored in "
        f"{seconds:.1f} s ({result.scored / seconds:.1f} entries/s)"
    )
    print(f"errors found per 100 reviewed, reviewing the first {args.reviewed}:")
    print(f"  id order: {found_per_100(entries, wrong, args.reviewed)}")
    for name, overrides in WEIGHTINGS.items():
        settings = PrioritySettings(**overrides)
        scores = {row[0]: priority(Signals(*row[1:]), settings)[0] for row in rows}
        order = sorted(entries, key=lambda e: (-scores[e], e))
        recall = len(set(order[: args.reviewed]) & wrong) / len(wrong)
        print(f"  hardest first, {name}: {found_per_100(order, wrong, args.reviewed)} (recall {recall:.0%})")
    print(
        f"  a perfect order: {found_per_100(sorted(entries, key=lambda e: e not in wrong), wrong, args.reviewed)}"
    )


if __name__ == "__main__":
    main()
