"""Where a registered version's CTranslate2 export comes from: the registry (logged by `exported_model`), or,
for a version that has none, a conversion here with the same code `exported_model` runs."""

from __future__ import annotations

import logging
from pathlib import Path

from whisper_assets.export.ctranslate import export_ctranslate2
from whisper_assets.serving.errors import ModelNotFound, NotServable
from whisper_assets.tracking.tracker import Tracker, export_tag

log = logging.getLogger(__name__)


class ExportCache:
    """Exports of registered versions as local folders under `root`, fetched or converted once per version."""

    def __init__(self, tracker: Tracker, root: Path, quantization: str):
        self.tracker = tracker
        self.root = root
        self.quantization = quantization

    def local_export(self, version: str) -> Path:
        info = self.tracker.model_version(version)
        if info is None:
            raise ModelNotFound(
                f"{self.tracker.registered_model} has no version {version!r} (GET /v1/models lists them)",
                param="model",
            )
        folder = self.root / f"{self.tracker.registered_model}-v{version}-ct2-{self.quantization}"
        if folder.is_dir():
            return folder
        if uri := info.tags.get(export_tag(self.quantization)):
            return self.tracker.download(uri, folder)
        log.info("v%s has no %s export in the registry: converting it here", version, self.quantization)
        try:
            model_dir = self.tracker.download_version(version, self.root / "transformers")
            return export_ctranslate2(model_dir, folder, self.quantization)
        except Exception as exc:  # the reason goes to /health; the server keeps what it serves
            raise NotServable(
                f"v{version} has no {self.quantization} CTranslate2 export in the registry and converting it here "
                f"failed ({exc.__class__.__name__}: {exc}); materialize `exported_model` (train_and_evaluate job) "
                "when this version is promoted, or install the `export` extra here"
            ) from exc
