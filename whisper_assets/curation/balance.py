"""How balanced the published dataset is: hours per language, script, source, speaker and split; how much of a
language one speaker holds; duration, SNR and speaking-rate distributions; and what to do about it.

SNR is measured once per processed audio file (keyed by path, size and modification time) and kept in the
`item_levels` table, so a new report reads only new audio.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf
from pydantic import Field

from whisper_assets import charts
from whisper_assets.audio.levels import levels
from whisper_assets.curation.manifests import current_split_manifests, read_manifest
from whisper_assets.files import write_json_atomic, write_text_atomic
from whisper_assets.parallel import parallel_map
from whisper_assets.policy import Policy
from whisper_assets.reporting import html_page, html_table
from whisper_assets.tables import read_rows, table_path, write_rows
from whisper_assets.text.transliterate import TWO_SCRIPT_LANGUAGES, script_of

DIMENSIONS = ("language", "script", "source", "speaker")
NO_SPEAKER = "(no speaker label)"
LEVELS_SCHEMA = pa.schema(
    [("audio", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("snr_db", pa.float64())]
)


class BalanceSettings(Policy):
    """When the balance report recommends a change."""

    top_speaker_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Warn when one speaker holds more than this share of a language's training hours.",
    )
    low_snr_db: float = Field(10.0, description="Recordings below this SNR count as noisy.")
    noisy_share: float = Field(
        0.2, ge=0, le=1, description="Warn when more than this share of a source is noisy."
    )
    max_chars_per_second: float = Field(
        25.0, gt=0, description="Faster transcripts are likely wrong or misaligned (speech runs ~10-20)."
    )
    min_chars_per_second: float = Field(
        2.0, ge=0, description="Slower transcripts likely miss words (or the audio is mostly silence)."
    )


@dataclass(frozen=True)
class Utterance:
    """One manifest item as the report counts it."""

    split: str
    id: str
    language: str
    script: str
    source: str
    speaker: str
    hours: float
    duration: float
    chars_per_second: float
    snr_db: float | None


def utterances(manifests: Mapping[str, Sequence[dict]], snr: Mapping[str, float | None]) -> list[Utterance]:
    return [
        Utterance(
            split,
            item["id"],
            item["language"],
            script_of(item["transcript"]),
            item["source"],
            item.get("speaker") or NO_SPEAKER,
            item["duration"] / 3600,
            item["duration"],
            len(item["transcript"].strip()) / item["duration"] if item["duration"] else 0.0,
            snr.get(item["audio"]),
        )
        for split, items in manifests.items()
        for item in items
    ]


def measure_snr(audio_paths: Sequence[str], tables_root: Path, workers: int = 0) -> dict[str, float | None]:
    """SNR per audio file (None when unreadable), measured once per file version and cached."""
    cache_path = table_path(tables_root, "item_levels")
    cached = {(r["audio"], r["size"], r["mtime_ns"]): r["snr_db"] for r in read_rows(cache_path)}
    keys = {}
    for audio in dict.fromkeys(audio_paths):
        try:
            stat = Path(audio).stat()
            keys[audio] = (audio, stat.st_size, stat.st_mtime_ns)
        except OSError:
            keys[audio] = None
    missing = [audio for audio, key in keys.items() if key is not None and key not in cached]
    for audio, snr in zip(missing, parallel_map(_snr, missing, workers), strict=True):
        cached[keys[audio]] = snr
    if missing:
        rows = [
            {"audio": key[0], "size": key[1], "mtime_ns": key[2], "snr_db": cached[key]}
            for key in keys.values()
            if key is not None
        ]
        write_rows(cache_path, rows, LEVELS_SCHEMA)
    return {audio: None if key is None else cached[key] for audio, key in keys.items()}


def _snr(audio: str) -> float | None:
    try:
        samples, _ = sf.read(audio, dtype="float32", always_2d=False)
    except (OSError, RuntimeError):
        return None
    return levels(samples)["snr_db"]


def split_hours_by(rows: Sequence[Utterance], dimension: str) -> dict[str, dict[str, float]]:
    """{value: {split: hours}} for one dimension, values by total hours, largest first."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        table[getattr(row, dimension)][row.split] += row.hours
    ordered = sorted(table.items(), key=lambda kv: -sum(kv[1].values()))
    return {value: {s: round(h, 4) for s, h in splits.items()} for value, splits in ordered}


def gini(values: Sequence[float]) -> float:
    """0 when every speaker has the same hours, towards 1 when one has everything."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, x.size + 1)
    return round(float((2 * ranks - x.size - 1) @ x / (x.size * x.sum())), 4)


def concentration(rows: Sequence[Utterance], split: str = "train") -> dict[str, dict]:
    """Per language of one split: labelled speakers, the top three speakers' shares of the labelled hours, the
    Gini of speaker hours, and the hours with no speaker label (not counted as a speaker)."""
    per_language: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        if row.split == split:
            per_language[row.language][row.speaker] += row.hours
    out = {}
    for language, speakers in sorted(per_language.items()):
        unlabeled = speakers.pop(NO_SPEAKER, 0.0)
        total = sum(speakers.values())
        top = sorted(speakers.items(), key=lambda kv: -kv[1])[:3]
        out[language] = {
            "hours": round(total + unlabeled, 4),
            "unlabeled_hours": round(unlabeled, 4),
            "speakers": len(speakers),
            "top_speakers": {name: round(hours / total, 4) for name, hours in top},
            "gini": gini(list(speakers.values())),
        }
    return out


def recommendations(rows: Sequence[Utterance], settings: BalanceSettings) -> list[str]:
    """Concrete things to change, most important first."""
    advice = []
    for language, found in concentration(rows).items():
        if not found["speakers"]:
            continue  # no labels: said once below
        name, share = next(iter(found["top_speakers"].items()))
        if found["speakers"] == 1:
            advice.append(f"`{language}` training data has one speaker ({name}): the model learns one voice")
        elif share > max(
            settings.top_speaker_share, 1.5 / found["speakers"]
        ):  # two speakers at 55/45 is fine
            advice.append(f"speaker {name} is {share:.0%} of `{language}` training hours")
    languages = sorted({r.language for r in rows if r.split == "train"})
    for split in ("validation", "test"):
        present = {r.language for r in rows if r.split == split}
        advice += [f"{split} has no `{language}`" for language in languages if language not in present]
    for language in sorted({r.language for r in rows} & TWO_SCRIPT_LANGUAGES):
        scripts = {r.script for r in rows if r.language == language} - {"none"}
        if len(scripts) == 1:
            (script,) = scripts
            other = "Latin" if script == "cyrillic" else "Cyrillic"
            advice.append(
                f"`{language}` is {script.capitalize()} only: add {other}-script transcripts if the model should "
                f"write {other} (WER is also reported script-folded)"
            )
    unlabeled = sum(r.hours for r in rows if r.speaker == NO_SPEAKER)
    total = sum(r.hours for r in rows)
    if total and unlabeled / total > 0.2:
        advice.append(
            f"{unlabeled / total:.0%} of the hours have no speaker label: their splits group by recording, so "
            "a voice can be both trained on and tested"
        )
    for source in sorted({r.source for r in rows}):
        measured = [r.snr_db for r in rows if r.source == source and r.snr_db is not None]
        noisy = sum(s < settings.low_snr_db for s in measured)
        if measured and noisy / len(measured) > settings.noisy_share:
            advice.append(
                f"{noisy / len(measured):.0%} of `{source}` recordings are below {settings.low_snr_db:g} dB SNR"
            )
    for label, odd in (
        ("faster than", [r for r in rows if r.chars_per_second > settings.max_chars_per_second]),
        ("slower than", [r for r in rows if 0 < r.chars_per_second < settings.min_chars_per_second]),
    ):
        if odd:
            limit = settings.max_chars_per_second if label == "faster than" else settings.min_chars_per_second
            examples = ", ".join(r.id for r in odd[:5])
            advice.append(
                f"{len(odd)} item(s) read {label} {limit:g} characters per second: check their transcripts "
                f"({examples})"
            )
    return advice


def balance_report(rows: Sequence[Utterance], settings: BalanceSettings) -> dict:
    """The report as JSON: hours per dimension and split, concentration, distributions and recommendations."""
    splits: dict[str, float] = defaultdict(float)
    for row in rows:
        splits[row.split] += row.hours
    return {
        "utterances": len(rows),
        "hours_by_split": {s: round(h, 4) for s, h in splits.items()},
        **{f"hours_by_{d}": split_hours_by(rows, d) for d in DIMENSIONS},
        "speaker_concentration": concentration(rows),
        "duration_seconds": _distribution([r.duration for r in rows]),
        "snr_db": _distribution([r.snr_db for r in rows if r.snr_db is not None]),
        "chars_per_second": _distribution([r.chars_per_second for r in rows]),
        "recommendations": recommendations(rows, settings),
    }


def _distribution(values: Sequence[float]) -> dict:
    if not values:
        return {"count": 0}
    p = np.percentile(values, [5, 50, 95])
    return {"count": len(values), "p5": round(p[0], 2), "median": round(p[1], 2), "p95": round(p[2], 2)}


def balance_page(report: dict, rows: Sequence[Utterance]) -> str:
    """The report as a self-contained HTML page with charts."""
    advice = (
        "".join(f"<li>{html.escape(a)}</li>" for a in report["recommendations"]) or "<li>nothing to fix</li>"
    )
    sections = [
        ("Recommendations", f'<ul class="advice">{advice}</ul>'),
        (
            "Hours per split",
            html_table(
                [{"split": s, "hours": h} for s, h in report["hours_by_split"].items()], ("split", "hours")
            ),
        ),
    ]
    for dimension in DIMENSIONS:
        table = report[f"hours_by_{dimension}"]
        shown = dict(list(table.items())[:20])
        chart = charts.svg(charts.bars(shown, f"Hours per {dimension} and split", "hours"))
        split_names = list(report["hours_by_split"])
        listing = html_table(
            [{dimension: value, **by_split} for value, by_split in table.items()],
            (dimension, *split_names),
            50,
        )
        sections.append(
            (f"Hours per {dimension}", f'<div class="columns"><div>{chart}</div><div>{listing}</div></div>')
        )
    concentration_rows = [
        {
            "language": language,
            "hours": found["hours"],
            "speakers": found["speakers"],
            "unlabeled hours": found["unlabeled_hours"],
            "top speakers": ", ".join(f"{n} {s:.0%}" for n, s in found["top_speakers"].items()),
            "gini": found["gini"],
        }
        for language, found in report["speaker_concentration"].items()
    ]
    sections.append(
        (
            "Speaker concentration (training hours)",
            html_table(
                concentration_rows,
                ("language", "hours", "unlabeled hours", "speakers", "top speakers", "gini"),
            ),
        )
    )
    histograms = [
        charts.histogram([r.duration for r in rows], "Utterance duration", "seconds"),
        charts.histogram([r.snr_db for r in rows if r.snr_db is not None], "Signal-to-noise ratio", "dB"),
        charts.histogram([r.chars_per_second for r in rows], "Transcript speed", "characters per second"),
    ]
    sections.append(
        (
            "Distributions",
            '<div class="columns">' + "".join(f"<div>{charts.svg(h)}</div>" for h in histograms) + "</div>",
        )
    )
    intro = f'<p class="note">{report["utterances"]} utterances, {sum(report["hours_by_split"].values()):.2f} hours.</p>'
    return html_page("Dataset balance", sections, intro)


@dataclass(frozen=True)
class BalanceFiles:
    report: dict
    json_path: Path
    html_path: Path
    rows: list[Utterance]


def write_balance(
    manifests_root: Path, tables_root: Path, settings: BalanceSettings, workers: int = 0
) -> BalanceFiles:
    """Report on the published split manifests: manifests/dataset_balance.json and .html."""
    manifests = {
        split: read_manifest(ref.path) for split, ref in current_split_manifests(manifests_root).items()
    }
    snr = measure_snr([item["audio"] for items in manifests.values() for item in items], tables_root, workers)
    rows = utterances(manifests, snr)
    report = balance_report(rows, settings)
    json_path, html_path = manifests_root / "dataset_balance.json", manifests_root / "dataset_balance.html"
    write_json_atomic(json_path, report, indent=2)
    write_text_atomic(html_path, balance_page(report, rows))
    return BalanceFiles(report, json_path, html_path, rows)
