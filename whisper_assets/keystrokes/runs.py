"""A keystroke training run from manifest and tokenizer to a model, tracked on MLflow.

The run folder is named by a hash of the options, the manifest digest and the vocabulary digest, so
materializing the same run again resumes it from its newest checkpoint (or returns the finished run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.keystrokes.manifests import KeystrokeManifest
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.keystrokes.trainer import KeystrokeResult, train_keystrokes
from whisper_assets.keystrokes.vocabulary import load_tokenizer, vocab_digest
from whisper_assets.tracking.tracker import Tracker
from whisper_assets.training.run_manifest import content_name, git_commit

RUN_ID_FILE = "mlflow_run_id"
EVAL_METRICS = (
    "token_accuracy",
    "teacher_forced_accuracy",
    "sequence_accuracy",
    "avg_decode_latency_ms",
)


@dataclass(frozen=True)
class KeystrokeRun:
    folder: Path
    mlflow_run_id: str
    result: KeystrokeResult
    manifest_sha256: str
    tokenizer_sha256: str


def keystroke_run(
    options: KeystrokeOptions,
    manifest: KeystrokeManifest,
    tokenizer_dir: Path,
    data_root: Path,
    runs_root: Path,
    features_root: Path,
    log_path: Path,
    tracker: Tracker,
    tags: Mapping[str, str],
    progress: Callable[[str], None] = lambda _line: None,
) -> KeystrokeRun:
    """Train (or resume) the run these options, this manifest and this vocabulary define; log it to MLflow."""
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer_sha256 = vocab_digest(tokenizer.get_vocab())
    name = content_name(
        "keys",
        {"options": options.model_dump(mode="json"), "manifest": manifest.sha256, "vocab": tokenizer_sha256},
    )
    folder = runs_root / name
    folder.mkdir(parents=True, exist_ok=True)
    run_id = _mlflow_run(folder, tracker, options, manifest, tokenizer_sha256, tags)

    def on_eval(record: dict, samples: Path) -> None:
        metrics = {
            f"{split}_{m}": record[f"{split}_{m}"] for split in ("train", "test") for m in EVAL_METRICS
        }
        tracker.log_metrics(run_id, metrics, step=record["step"])
        tracker.log_file(run_id, samples, "eval_samples")
        progress(
            f"eval step {record['step']}: test token accuracy {record['test_token_accuracy']:.4f}, "
            f"sequence accuracy {record['test_sequence_accuracy']:.4f} ({record['verdict']})"
        )

    try:
        result = train_keystrokes(
            options, manifest.rows, tokenizer, data_root, folder, features_root, log_path, on_eval
        )
    except Exception:
        tracker.finish(run_id, ok=False)
        raise
    if result.failed:
        tracker.set_tags(run_id, {"failure": result.failed[:5000]})
        tracker.finish(run_id, ok=False)
    else:
        tracker.log_metrics(
            run_id,
            {"best_test_token_accuracy": result.best_token_accuracy, "train_seconds": result.train_seconds},
        )
        tracker.log_artifacts(run_id, result.model_dir, "model")
        tracker.finish(run_id, ok=True)
    return KeystrokeRun(folder, run_id, result, manifest.sha256, tokenizer_sha256)


def _mlflow_run(
    folder: Path,
    tracker: Tracker,
    options: KeystrokeOptions,
    manifest: KeystrokeManifest,
    tokenizer_sha256: str,
    tags: Mapping[str, str],
) -> str:
    """The run's MLflow run: started once, with hyperparameters, data hashes and the git commit; reused on resume."""
    stored = folder / RUN_ID_FILE
    if stored.exists():
        return stored.read_text().strip()
    run_id = tracker.start_run(
        folder.name, {**tags, "model_family": "keystrokes", "git_commit": str(git_commit())}
    )
    stored.write_text(run_id)
    tracker.log_params(
        run_id,
        {
            **options.model_dump(mode="json"),
            "manifest_sha256": manifest.sha256,
            "tokenizer_sha256": tokenizer_sha256,
            "train_recordings": len(manifest.split("train")),
            "test_recordings": len(manifest.split("test")),
        },
    )
    return run_id
