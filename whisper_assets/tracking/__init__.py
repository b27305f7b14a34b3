"""Experiment tracking on MLflow: where runs and models are tracked (this module) and the client (`tracker`).

The default store is embedded (SQLite plus local artifacts under the data root), so nothing has to be started;
a team points `tracking_uri` at its MLflow server instead. This module imports no MLflow, so settings stay light.
"""

from __future__ import annotations

from pathlib import Path

from whisper_assets.policy import Policy

CHAMPION = "champion"


class MlflowSettings(Policy):
    """Where runs and models are tracked: embedded SQLite under the data root unless a URI is given."""

    tracking_uri: str | None = None
    experiment: str = "whisper-assets"
    registered_model: str = "whisper-assets"
    # Where a new experiment's artifacts go, e.g. s3://bucket/mlflow. Unset: under the data root for the embedded
    # store, and the server's own default (`--artifacts-destination`) for a tracking server.
    artifact_location: str | None = None

    def resolved_uri(self, mlflow_root: Path) -> str:
        """The configured URI, else the embedded SQLite store under the data root."""
        return self.tracking_uri or default_tracking_uri(mlflow_root)

    def resolved_artifact_location(self, mlflow_root: Path, tracking_uri: str) -> str | None:
        """The configured location; else local artifacts beside the embedded store, else the server's choice."""
        if self.artifact_location or tracking_uri != default_tracking_uri(mlflow_root):
            return self.artifact_location
        return (mlflow_root / "artifacts").resolve().as_uri()


def default_tracking_uri(mlflow_root: Path) -> str:
    return f"sqlite:///{(mlflow_root / 'mlflow.db').resolve()}"
