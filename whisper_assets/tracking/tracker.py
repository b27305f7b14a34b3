"""The MLflow client the platform uses: runs, params, metrics, dataset inputs, registry and champion alias."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from whisper_assets.curation.manifests import ManifestRef
from whisper_assets.tracking import CHAMPION, MlflowSettings

_BATCH = 900  # MLflow accepts at most 1000 entities per log_batch
# MLflow 3's UI opens an experiment in its model-training view (runs, metrics, charts) rather than its GenAI
# view (traces, judges) when the experiment carries this kind; it is the value the UI's own switch writes.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
UI_BASE = "http://127.0.0.1:5000"
PROMOTED_AT_TAG = "promoted_at"  # on a model version: when it last became the champion (UTC, ISO 8601)


def export_tag(quantization: str) -> str:
    """The model version tag that holds the artifact URI of its CTranslate2 export at this quantization."""
    return f"ctranslate2_{quantization}"


class UnknownVersion(LookupError):
    """The registered model has no such version."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version as the server and the CLI see it."""

    version: str
    run_id: str
    source: str
    created_at: int  # seconds since the epoch
    aliases: tuple[str, ...]
    tags: dict[str, str]

    @classmethod
    def of(cls, found: ModelVersion, aliases: Mapping[str, str]) -> ModelVersionInfo:
        version = str(found.version)
        return cls(
            version,
            found.run_id,
            found.source,
            found.creation_timestamp // 1000,
            tuple(sorted(alias for alias, target in aliases.items() if target == version)),
            dict(found.tags or {}),
        )


class Tracker:
    """A thin, explicit wrapper around MlflowClient (no global mlflow state, safe in Dagster workers)."""

    @classmethod
    def from_settings(
        cls, settings: MlflowSettings, mlflow_root: Path, tracking_uri: str | None = None
    ) -> Tracker:
        """The tracker for these settings: an explicit URI wins, then the settings', then the embedded store."""
        uri = tracking_uri or settings.resolved_uri(mlflow_root)
        return cls(
            uri,
            settings.experiment,
            settings.registered_model,
            artifact_location=settings.resolved_artifact_location(mlflow_root, uri),
        )

    def __init__(
        self, tracking_uri: str, experiment: str, registered_model: str, artifact_location: str | None = None
    ):
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.registered_model = registered_model
        found = self.client.get_experiment_by_name(experiment)
        if found:
            self.experiment_id = found.experiment_id
        else:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_location
            )
        if (found.tags if found else {}).get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)

    def start_run(self, name: str, tags: Mapping[str, str]) -> str:
        return self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags)).info.run_id

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        entries = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(entries), _BATCH):
            self.client.log_batch(run_id, params=entries[start : start + _BATCH])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        for start in range(0, len(entries), _BATCH):
            self.client.log_batch(run_id, metrics=entries[start : start + _BATCH])

    def log_datasets(self, run_id: str, manifests: Mapping[str, ManifestRef]) -> None:
        """Record each split manifest (path and sha256 digest) as a dataset input of the run."""
        inputs = [
            DatasetInput(
                Dataset(name=name, digest=ref.sha256[:36], source_type="local", source=str(ref.path)),
                tags=[InputTag("mlflow.data.context", name)],
            )
            for name, ref in manifests.items()
        ]
        self.client.log_inputs(run_id, datasets=inputs)

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> str:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)
        return f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_figure(self, run_id: str, figure: Figure, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    def metric_history(self, run_id: str, keys: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
        """Each metric's (step, value) points, in step order (a metric never logged has none)."""
        return {
            key: sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))
            for key in keys
        }

    def run_name(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.run_name

    def register(self, run_id: str, source_uri: str, tags: Mapping[str, str] | None = None) -> str:
        """A new version of the registered model (with these tags); returns the version number."""
        try:
            self.client.create_registered_model(self.registered_model)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        return str(
            self.client.create_model_version(
                self.registered_model, source=source_uri, run_id=run_id, tags=dict(tags or {})
            ).version
        )

    def champion(self) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.registered_model, CHAMPION).version)
        except MlflowException:
            return None

    def download_champion(self, cache_root: Path) -> Path | None:
        """The champion model as a local folder (downloaded once per version under cache_root), or None."""
        version = self.champion()
        return None if version is None else self.download_version(version, cache_root)

    def download_version(self, version: str, cache_root: Path) -> Path:
        """A registered version's model as a local folder, downloaded once under cache_root."""
        folder = cache_root / f"{self.registered_model}-v{version}"
        if not folder.is_dir():
            self.download(self.client.get_model_version(self.registered_model, version).source, folder)
        return folder

    def download(self, artifact_uri: str, folder: Path) -> Path:
        """Download artifacts into `folder` through a staging folder, so a crash never leaves half of them."""
        staging = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(staging), tracking_uri=self.tracking_uri
            )
        )
        downloaded.rename(folder)
        shutil.rmtree(staging, ignore_errors=True)
        return folder

    def set_champion(self, version: str) -> None:
        """Point the `champion` alias at a version and stamp when (the history `champion` and `/v1/models` show)."""
        if self.model_version(version) is None:
            raise UnknownVersion(f"{self.registered_model} has no version {version!r}")
        self.client.set_registered_model_alias(self.registered_model, CHAMPION, version)
        self.client.set_model_version_tag(
            self.registered_model, version, PROMOTED_AT_TAG, datetime.now(UTC).isoformat(timespec="seconds")
        )

    def model_versions(self) -> list[ModelVersionInfo]:
        """Every registered version, oldest first, with its aliases and tags (none before the first)."""
        aliases = self._aliases()
        found = self.client.search_model_versions(f"name = '{self.registered_model}'")
        return sorted((ModelVersionInfo.of(v, aliases) for v in found), key=lambda v: int(v.version))

    def model_version(self, version: str) -> ModelVersionInfo | None:
        if not version.isdigit():
            return None
        try:
            found = self.client.get_model_version(self.registered_model, version)
        except MlflowException:
            return None
        return ModelVersionInfo.of(found, self._aliases())

    def _aliases(self) -> dict[str, str]:
        """alias -> version (search results carry no aliases; the registered model does)."""
        try:
            return {
                k: str(v) for k, v in self.client.get_registered_model(self.registered_model).aliases.items()
            }
        except MlflowException:
            return {}

    def record_export(self, version: str, run_id: str, export_dir: Path, quantization: str) -> str:
        """Log an export next to its run's model and tag the version with where it is, so a server anywhere finds
        it; returns the artifact URI."""
        uri = self.log_artifacts(run_id, export_dir, f"ctranslate2-{quantization}")
        self.client.set_model_version_tag(self.registered_model, version, export_tag(quantization), uri)
        return uri

    def version_run(self, version: str) -> str:
        return self.client.get_model_version(self.registered_model, version).run_id

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def finish(self, run_id: str, ok: bool = True) -> None:
        self.client.set_terminated(
            run_id, RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED)
        )

    # MLflow 3's UI picks its GenAI or model-training view from the address (else from the browser's last
    # choice, GenAI at first): every link names the model-training view.
    def run_link(self, run_id: str, ui_base: str = UI_BASE) -> str:
        return f"{ui_base}/#/experiments/{self.experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"

    def experiment_link(self, ui_base: str = UI_BASE) -> str:
        """The experiment's runs, best test WER first."""
        order = urlencode({"orderByKey": "metrics.`test_wer_normalized`", "orderByAsc": "true"})
        return f"{ui_base}/#/experiments/{self.experiment_id}/runs?{MODEL_TRAINING_VIEW}&{order}"

    def compare_link(self, run_ids: Sequence[str], ui_base: str = UI_BASE) -> str:
        """MLflow's side-by-side comparison of runs: parameters, metrics (WER/CER of both models) and plots."""
        query = urlencode(
            {"runs": json.dumps(list(run_ids)), "experiments": json.dumps([self.experiment_id])}
        )
        return f"{ui_base}/#/compare-runs?{query}&{MODEL_TRAINING_VIEW}"
