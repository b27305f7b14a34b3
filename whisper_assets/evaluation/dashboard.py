"""The evaluation dashboard: one self-contained HTML page per evaluated run, or two runs side by side.

It reads what `eval_metrics` left (the run's JSON report and its per-utterance table) and the run's MLflow
metric history, and draws: WER/CER of base vs fine-tuned per split, language, source, speaker and duration;
the regression sets (forgetting); the most frequent word confusions; a speaker x duration error heatmap; the
worst utterances with their audio, both hypotheses and a word diff; and the training curves.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import soundfile as sf

from whisper_assets import charts
from whisper_assets.asr.metrics import view_text
from whisper_assets.asr.run_folder import RunFolder
from whisper_assets.curation.manifests import current_role_manifests, read_manifest
from whisper_assets.evaluation.general_set import is_general_set
from whisper_assets.evaluation.report import BREAKDOWNS
from whisper_assets.evaluation.run import EVALUATED_SPLITS
from whisper_assets.files import write_text_atomic
from whisper_assets.layout import DataLayout
from whisper_assets.reporting import html_page, html_table
from whisper_assets.tables import read_rows, table_path
from whisper_assets.tracking.plots import CURVES, curve_figures
from whisper_assets.tracking.tracker import Tracker

WORST_SHOWN = 10
CONFUSIONS_SHOWN = 15
AUDIO_SECONDS = 30  # longest audio embedded per utterance


@dataclass(frozen=True)
class RunResults:
    """Everything the dashboard shows about one evaluated run."""

    name: str
    model_version: str
    summaries: dict[str, dict[str, dict]]  # model -> split or regression set -> summary
    rows: list[dict]  # the eval_utterances table: one row per model and utterance
    curves: dict[str, list[tuple[int, float]]]
    audio: dict[str, str]  # utterance id -> processed audio path

    def utterances(self, model: str, split: str = "test") -> list[dict]:
        return [r for r in self.rows if r["model"] == model and r["split"] == split]


def resolve_run(reference: str, models_root: Path, tracker: Tracker) -> str:
    """A run folder name, given one or the id of its MLflow run."""
    if RunFolder.of(models_root, reference).root.is_dir():
        return reference
    return tracker.run_name(reference)


def load_run(name: str, layout: DataLayout, tracker: Tracker) -> RunResults:
    """The run's evaluation as `eval_metrics` wrote it."""
    manifests_root, tables_root, models_root = layout.manifests_root, layout.tables_root, layout.models_root
    report_path = manifests_root / f"eval_{name}.json"
    if not report_path.exists():
        raise FileNotFoundError(
            f"run {name} has no evaluation ({report_path}): materialize `eval_metrics` first"
        )
    report = json.loads(report_path.read_text(encoding="utf-8"))
    folder = RunFolder.of(models_root, name)
    manifests = [folder.manifest(split) for split in EVALUATED_SPLITS]
    manifests += [ref.path for ref in current_role_manifests(manifests_root, "regression").values()]
    audio = {item["id"]: item["audio"] for path in manifests if path.exists() for item in read_manifest(path)}
    run_id = folder.mlflow_run_id()
    return RunResults(
        name,
        report["model_version"],
        {model: report[model] for model in ("finetuned", "base")},
        read_rows(table_path(tables_root, "eval_utterances", name)),
        tracker.metric_history(run_id, list(CURVES)) if run_id else {},
        audio,
    )


def write_dashboard(runs: Sequence[str], layout: DataLayout, tracker: Tracker) -> Path:
    """Render one run's dashboard (reports/<run>/index.html) or two runs side by side
    (reports/<second>/vs_<first>.html); returns the page."""
    results = [load_run(resolve_run(run, layout.models_root, tracker), layout, tracker) for run in runs]
    path = dashboard_path(layout, results[-1].name, results[0].name if len(results) > 1 else None)
    write_text_atomic(path, render(results))
    return path


def dashboard_path(layout: DataLayout, run: str, versus: str | None = None) -> Path:
    return layout.reports_root / run / ("index.html" if versus is None else f"vs_{versus}.html")


def comparison_run(run: str, version: str, layout: DataLayout, tracker: Tracker) -> str | None:
    """The run to show beside this one: the champion's, or when this run is the champion, the newest other
    registered version evaluated here; None when there is none."""
    champion = tracker.champion()
    if champion and champion != version:
        candidates = [champion]
    else:
        candidates = [v.version for v in reversed(tracker.model_versions()) if v.version != version]
    for candidate in candidates:
        name = tracker.run_name(tracker.version_run(candidate))
        if name != run and (layout.manifests_root / f"eval_{name}.json").exists():
            return name
    return None


def alignment(reference: str, hypothesis: str, language: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(kind, reference words, hypothesis words) chunks of the normalized texts' word alignment; kind is equal,
    substitute, delete or insert."""
    ref, hyp = view_text(reference, "normalized", language), view_text(hypothesis, "normalized", language)
    if not ref.split():
        if hyp.split():
            yield "insert", [], hyp.split()
        return
    output = jiwer.process_words(ref, hyp or " ")
    ref_words, hyp_words = output.references[0], output.hypotheses[0]
    for chunk in output.alignments[0]:
        yield (
            chunk.type,
            ref_words[chunk.ref_start_idx : chunk.ref_end_idx],
            hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx],
        )


def confusions(rows: Sequence[dict]) -> dict[str, Counter]:
    """How often each word was substituted (reference -> hypothesis), inserted and deleted."""
    found = {"substitute": Counter(), "insert": Counter(), "delete": Counter()}
    for row in rows:
        for kind, ref, hyp in alignment(row["reference"], row["hypothesis"], row["language"]):
            if kind == "substitute":
                found[kind].update(f"{r} → {h}" for r, h in zip(ref, hyp, strict=True))
            elif kind in found:
                found[kind].update(hyp if kind == "insert" else ref)
    return found


def word_diff(reference: str, hypothesis: str, language: str) -> str:
    """The hypothesis against the reference as HTML: deleted words struck, inserted words marked."""
    parts = []
    for kind, ref, hyp in alignment(reference, hypothesis, language):
        if kind == "equal":
            parts.append(html.escape(" ".join(ref)))
            continue
        if ref:
            parts.append(f"<del>{html.escape(' '.join(ref))}</del>")
        if hyp:
            parts.append(f"<ins>{html.escape(' '.join(hyp))}</ins>")
    return " ".join(parts)


def error_matrix(rows: Sequence[dict], across: str, down: str) -> tuple[list[str], list[str], list[list]]:
    """Corpus WER per (down, across) cell, None where there is no utterance."""
    errors: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        cell = errors[(str(row[down] or "unknown"), str(row[across]))]
        cell[0] += row["word_errors"]
        cell[1] += row["ref_words"]
    downs = sorted({d for d, _ in errors})
    acrosses = sorted({a for _, a in errors})
    matrix = [
        [errors[(d, a)][0] / errors[(d, a)][1] if errors.get((d, a), [0, 0])[1] else None for a in acrosses]
        for d in downs
    ]
    return downs, acrosses, matrix


def render(runs: Sequence[RunResults]) -> str:
    """The dashboard of one run, or of several side by side (the first is the reference: usually the champion)."""
    title = " vs ".join(f"{r.name} (v{r.model_version})" for r in runs)
    sections = [
        ("Summary", _side_by_side(runs, _summary)),
        ("Regression sets (forgetting)", _side_by_side(runs, _regressions)),
        *[
            (f"WER by {field.replace('_', ' ')}", _side_by_side(runs, lambda r, f=field: _breakdown(r, f)))
            for field in BREAKDOWNS
        ],
        ("Word confusions", _side_by_side(runs, _confusions)),
        ("Error heatmap", _side_by_side(runs, _heatmap)),
        ("Worst utterances", _side_by_side(runs, _worst)),
        ("Training curves", _curves(runs)),
    ]
    intro = (
        '<p class="note">Test split unless a section says otherwise. WER and CER are normalized (lowercase, no '
        "punctuation), corpus-level. Fine-tuned vs its base model on the same utterances.</p>"
    )
    return html_page(f"Evaluation: {title}", sections, intro)


def _side_by_side(runs: Sequence[RunResults], part) -> str:
    if len(runs) == 1:
        return part(runs[0])
    columns = "".join(
        f"<div><h3>{html.escape(r.name)} (v{r.model_version})</h3>{part(r)}</div>" for r in runs
    )
    return f'<div class="columns">{columns}</div>'


def _summary(run: RunResults) -> str:
    rows = []
    for split, tuned in run.summaries["finetuned"].items():
        base = run.summaries["base"][split]["overall"]
        tuned = tuned["overall"]
        rows.append(
            {
                "split": split,
                "WER base": base["wer_normalized"],
                "WER fine-tuned": tuned["wer_normalized"],
                "change (points)": round(100 * (tuned["wer_normalized"] - base["wer_normalized"]), 2),
                "CER base": base["cer_normalized"],
                "CER fine-tuned": tuned["cer_normalized"],
                "utterances": tuned["utterances"],
            }
        )
    return html_table(rows, list(rows[0]) if rows else ["split"])


def _regressions(run: RunResults) -> str:
    sets = [s for s in run.summaries["finetuned"] if s not in EVALUATED_SPLITS]
    if not sets:
        return (
            '<p class="note">No regression set is published and no built-in general set covers these '
            "languages, so forgetting is not measured: add a source with <code>role: regression</code>.</p>"
        )
    groups = {
        name: {
            "base": run.summaries["base"][name]["overall"]["wer_normalized"],
            "fine-tuned": run.summaries["finetuned"][name]["overall"]["wer_normalized"],
        }
        for name in sets
    }
    chart = charts.svg(charts.bars(groups, "Regression sets: WER", "WER"))
    if all(is_general_set(name) for name in sets):
        return (
            '<p class="note">No source has <code>role: regression</code>, so forgetting is measured on the '
            "built-in general set (espeak-ng sentences in voices no other set uses); a regression source of "
            "real speech is better.</p>" + chart
        )
    return chart


def _breakdown(run: RunResults, field: str) -> str:
    by = {model: run.summaries[model]["test"][f"by_{field}"] for model in ("base", "finetuned")}
    groups = {
        value: {"base": by["base"][value]["wer_normalized"], "fine-tuned": summary["wer_normalized"]}
        for value, summary in by["finetuned"].items()
    }
    return charts.svg(charts.bars(groups, f"Test WER by {field.replace('_', ' ')}", "WER"))


def _confusions(run: RunResults) -> str:
    found = confusions(run.utterances("finetuned"))
    tables = [
        html_table(
            [{label: w, "count": n} for w, n in found[kind].most_common(CONFUSIONS_SHOWN)], (label, "count")
        )
        for kind, label in (("substitute", "substitution"), ("insert", "insertion"), ("delete", "deletion"))
    ]
    return '<div class="columns">' + "".join(f"<div>{t}</div>" for t in tables) + "</div>"


def _heatmap(run: RunResults) -> str:
    speakers, buckets, matrix = error_matrix(run.utterances("finetuned"), "duration_bucket", "speaker")
    if not speakers:
        return '<p class="note">no test utterances</p>'
    return charts.svg(charts.heatmap(matrix, speakers, buckets, "Fine-tuned test WER: speaker x duration"))


def _worst(run: RunResults) -> str:
    base = {r["id"]: r["hypothesis"] for r in run.utterances("base")}
    worst = sorted(run.utterances("finetuned"), key=lambda r: (-r["word_errors"], -r["wer"], r["id"]))[
        :WORST_SHOWN
    ]
    rows = "".join(
        f"<tr><td>{html.escape(r['id'])}<br>{_player(run.audio.get(r['id']))}</td>"
        f'<td class="num">{r["wer"]:.2f}</td><td>{html.escape(r["reference"])}</td>'
        f"<td>{word_diff(r['reference'], r['hypothesis'], r['language'])}</td>"
        f"<td>{html.escape(base.get(r['id'], ''))}</td></tr>"
        for r in worst
    )
    head = "<tr><th>utterance</th><th>WER</th><th>reference</th><th>fine-tuned (diff)</th><th>base</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _player(audio: str | None) -> str:
    """An audio player with the clip inside the page (Ogg Opus), or a note when the audio is gone."""
    if not audio:
        return '<span class="note">no audio</span>'
    try:
        samples, rate = sf.read(audio, dtype="float32", frames=AUDIO_SECONDS * 16_000, always_2d=False)
        buffer = io.BytesIO()
        sf.write(buffer, samples, rate, format="OGG", subtype="OPUS")
    except (OSError, RuntimeError) as exc:
        return f'<span class="note">audio unreadable: {html.escape(str(exc))}</span>'
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<audio controls preload="none" src="data:audio/ogg;base64,{data}"></audio>'


def _curves(runs: Sequence[RunResults]) -> str:
    figures = curve_figures({r.name: r.curves for r in runs})
    if not figures:
        return '<p class="note">no training metrics in MLflow for these runs</p>'
    return (
        '<div class="columns">' + "".join(f"<div>{charts.svg(f)}</div>" for f in figures.values()) + "</div>"
    )
