"""Run identity and the run manifest: what went into a model, so it can be explained and reproduced."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from whisper_assets.curation.manifests import ManifestRef
from whisper_assets.files import write_json_atomic
from whisper_assets.training.options import TrainingOptions

_LIBRARIES = (
    "whisper-assets",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "accelerate",
    "jiwer",
    "mlflow",
)


def content_name(prefix: str, parts: Mapping[str, object]) -> str:
    """A folder name that is a short hash of JSON-able parts: same parts, same folder."""
    blob = json.dumps(parts, sort_keys=True)
    return f"{prefix}-" + hashlib.blake2s(blob.encode(), digest_size=6).hexdigest()


def run_name(options: TrainingOptions, manifest_digests: dict[str, str]) -> str:
    """Same options on the same data -> same run folder, which is what lets a re-run resume or skip."""
    return content_name("run", {"options": options.model_dump(mode="json"), "data": manifest_digests})


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_run_manifest(
    path: Path, options: TrainingOptions, manifests: dict[str, ManifestRef], **facts
) -> dict:
    """`run_manifest.json`: split manifest digests, hyperparameters, git commit, library versions, results."""
    payload = {
        "manifests": {name: {"path": str(ref.path), "sha256": ref.sha256} for name, ref in manifests.items()},
        "hyperparameters": options.model_dump(mode="json"),
        "git_commit": git_commit(Path(__file__).parent),
        "libraries": library_versions(),
        **facts,
    }
    write_json_atomic(path, payload, indent=2)
    return payload
