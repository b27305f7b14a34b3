"""The folder of one training run, as training writes it and evaluation and export read it.

`models/whisper/<run>/` holds `model/` (safetensors + processor), `checkpoints/`, `manifests/` (the split
manifests the run used, copied so evaluation and write-backs see exactly them), `run_manifest.json`, and the
ids of its MLflow run and registered model version once it has them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.asr.window import FULL_WINDOW_SECONDS, positions_seconds
from whisper_assets.curation.manifests import ManifestRef, manifest_digest


@dataclass(frozen=True)
class Decoding:
    """How a run's model is prompted and decoded (from its hyperparameters)."""

    base_model: str
    task: str
    language: str | None
    max_new_tokens: int


@dataclass(frozen=True)
class Scope:
    """What a model was trained to take: a general model takes Whisper's full 30 s window; one trained with a
    trimmed window (training.window_seconds) is a specialist for short inputs, whatever its test WER says."""

    max_input_seconds: float

    @property
    def general(self) -> bool:
        return self.max_input_seconds >= FULL_WINDOW_SECONDS

    def describe(self) -> str:
        if self.general:
            return "general model (30 s window)"
        return (
            f"specialist model: trained on a {self.max_input_seconds:g} s window, so longer audio is transcribed "
            "in windows; not a general model"
        )

    def fields(self) -> dict:
        """As metadata and in JSON files."""
        return {"max_input_seconds": self.max_input_seconds, "general_model": self.general}

    def tags(self) -> dict[str, str]:
        """As MLflow tags on the run and its registered model version."""
        return {
            "max_input_seconds": f"{self.max_input_seconds:g}",
            "general_model": str(self.general).lower(),
        }


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @classmethod
    def of(cls, models_root: Path, run: str) -> RunFolder:
        return cls(models_root / "whisper" / run)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def run_manifest_path(self) -> Path:
        return self.root / "run_manifest.json"

    @property
    def mlflow_run_id_path(self) -> Path:
        return self.root / "mlflow_run_id"

    @property
    def model_version_path(self) -> Path:
        return self.root / "mlflow_model_version"

    def manifest(self, split: str) -> Path:
        return self.root / "manifests" / f"{split}.jsonl"

    def snapshot_manifests(self, published: dict[str, ManifestRef]) -> dict[str, ManifestRef]:
        """Copy the published split manifests into the run (once: the run's name covers their digests)."""
        refs = {}
        for split, ref in published.items():
            target = self.manifest(split)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ref.path, target)
            refs[split] = ManifestRef(target, manifest_digest(target))
        return refs

    def read_run_manifest(self) -> dict:
        if not self.run_manifest_path.exists():
            raise FileNotFoundError(f"{self.run_manifest_path} is missing: the run has not finished training")
        return json.loads(self.run_manifest_path.read_text(encoding="utf-8"))

    def decoding(self) -> Decoding:
        hyper = self.read_run_manifest()["hyperparameters"]
        return Decoding(hyper["base_model"], hyper["task"], hyper["language"], hyper["generation_max_tokens"])

    def scope(self) -> Scope:
        """Read from the saved model's own config, so it is true of the artifact whatever produced it."""
        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        return Scope(positions_seconds(config["max_source_positions"]))

    def mlflow_run_id(self) -> str | None:
        return self.mlflow_run_id_path.read_text().strip() if self.mlflow_run_id_path.exists() else None

    def model_version(self) -> str | None:
        return self.model_version_path.read_text().strip() if self.model_version_path.exists() else None
