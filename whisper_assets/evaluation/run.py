"""Evaluate a training run against its base model, record it, and decide whether it becomes the champion.

Both models transcribe the run's test and validation items and every published regression set (general speech
the model must keep handling), each item at its full length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisper_assets.asr.metrics import paired_wer_interval
from whisper_assets.asr.run_folder import RunFolder, Scope
from whisper_assets.curation.manifests import current_role_manifests, read_manifest
from whisper_assets.evaluation.gate import EvaluationSettings, GateDecision, Regression, champion_gate
from whisper_assets.evaluation.general_set import general_sets
from whisper_assets.evaluation.report import UTTERANCE_SCHEMA, evaluate_model, summarize, table_rows
from whisper_assets.files import write_json_atomic
from whisper_assets.tables import table_path, write_rows
from whisper_assets.tracking.tracker import Tracker

EVALUATED_SPLITS = ("test", "validation")
MODELS = ("finetuned", "base")
WER_TABLE_COLUMNS = (
    "wer_orthographic",
    "wer_normalized",
    "wer_folded",
    "cer_normalized",
    "utterances",
    "hallucinations",
)


@dataclass(frozen=True)
class RunEvaluation:
    run: str
    model_version: str
    mlflow_run_id: str
    summaries: dict[str, dict[str, dict]]  # model -> split (or regression set) -> summary
    regressions: list[Regression]
    scope: Scope
    decision: GateDecision
    champion: str | None  # the champion after the gate
    champion_wer: float | None  # the previous champion's test WER, when there was another one
    report_path: Path

    @property
    def metrics(self) -> dict[str, float]:
        return flatten(self.summaries)

    @property
    def test_wer(self) -> float:
        return self.metrics["test_wer_normalized"]

    @property
    def base_wer(self) -> float:
        return self.metrics["test_wer_normalized_base"]

    def wer_table(self) -> list[dict]:
        return [
            {"model": model, "split": split, **{k: summary["overall"][k] for k in WER_TABLE_COLUMNS}}
            for model, by_split in self.summaries.items()
            for split, summary in by_split.items()
        ]


def _split_rows(rows: list[dict], split: str) -> list[dict]:
    """One split's utterance rows in id order, so two models' rows pair up."""
    return sorted((row for row in rows if row["split"] == split), key=lambda row: row["id"])


def flatten(summaries: dict[str, dict[str, dict]]) -> dict[str, float]:
    """`<split>_<metric>` for the fine-tuned model, `<split>_<metric>_base` for its base (MLflow's names)."""
    return {
        f"{split}_{metric}" + ("" if model == "finetuned" else "_base"): value
        for model, by_split in summaries.items()
        for split, summary in by_split.items()
        for metric, value in summary["overall"].items()
    }


def evaluate_run(
    folder: RunFolder,
    tracker: Tracker,
    settings: EvaluationSettings,
    tables_root: Path,
    manifests_root: Path,
    general_root: Path,
    max_items: int | None = None,
) -> RunEvaluation:
    """Transcribe the run's test and validation items and the regression sets with its model and its base; gate
    and log the result. Without a regression source, the built-in general sets of the evaluated languages
    (`general_set.py`, made under `general_root`) stand in for one."""
    run_id, version = folder.mlflow_run_id(), folder.model_version()
    if run_id is None or version is None:
        raise FileNotFoundError(f"{folder.root} has no registered model: materialize `whisper_model` first")
    decoding, scope = folder.decoding(), folder.scope()
    limit = max_items or settings.max_items
    manifests = {split: folder.manifest(split) for split in EVALUATED_SPLITS}
    regression_sets = {
        name: ref.path for name, ref in current_role_manifests(manifests_root, "regression").items()
    }
    items = {name: read_manifest(path)[:limit] for name, path in manifests.items()}
    built_in: dict[str, Path] = {}
    if not regression_sets:  # forgetting is still measured, on general speech made offline
        languages = {item["language"] for split in items.values() for item in split}
        built_in = general_sets(languages, general_root)
    items |= {name: read_manifest(path)[:limit] for name, path in (regression_sets | built_in).items()}
    options = {
        "task": decoding.task,
        "language": decoding.language,
        "batch_size": settings.batch_size,
        "max_new_tokens": decoding.max_new_tokens,
    }
    rows = {
        "finetuned": evaluate_model(str(folder.model_dir), items, **options),
        "base": evaluate_model(decoding.base_model, items, **options),
    }
    summaries = {
        model: {split: summarize([r for r in model_rows if r["split"] == split]) for split in items}
        for model, model_rows in rows.items()
    }
    table = [row for model, model_rows in rows.items() for row in table_rows(model_rows, folder.name, model)]
    write_rows(table_path(tables_root, "eval_utterances", folder.name), table, UTTERANCE_SCHEMA)
    metrics = flatten(summaries)
    regressions = [
        Regression(
            name,
            metrics[f"{name}_wer_normalized"],
            metrics[f"{name}_wer_normalized_base"],
            name in built_in,
            paired_wer_interval(*(_split_rows(rows[model], name) for model in ("base", "finetuned"))),
        )
        for name in items
        if name not in EVALUATED_SPLITS
    ]
    forgetting = {
        r.name: {"points": r.points, "interval": r.interval, "built_in": r.built_in, "gated": r.gated}
        for r in regressions
    }
    report_path = manifests_root / f"eval_{folder.name}.json"
    write_json_atomic(
        report_path,
        {
            "run": folder.name,
            "model_version": version,
            "scope": scope.fields(),
            **summaries,
            "forgetting": forgetting,
        },
        indent=2,
    )
    tracker.log_metrics(run_id, metrics)
    tracker.log_file(run_id, report_path)
    champion = tracker.champion()
    champion_wer = None
    if champion and champion != version:
        champion_wer = tracker.run_metrics(tracker.version_run(champion)).get("test_wer_normalized")
    gate = champion_gate(
        metrics["test_wer_normalized"],
        metrics["test_wer_normalized_base"],
        settings.wer_target,
        champion_wer,
        regressions,
        settings.max_regression_points,
    )
    decision = GateDecision(gate.passed, f"{gate.reason}; {scope.describe()}")
    if decision.passed:
        tracker.set_champion(version)
        champion = version
    tracker.finish(run_id)
    return RunEvaluation(
        folder.name,
        version,
        run_id,
        summaries,
        regressions,
        scope,
        decision,
        champion,
        champion_wer,
        report_path,
    )
