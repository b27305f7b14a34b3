"""Key-event decoding beside transcription: the newest keystroke run's best checkpoint, reloaded as soon as a newer
run or a better checkpoint appears (the same weights `whisper-assets decode-keys` uses)."""

from __future__ import annotations

import threading
from pathlib import Path

from whisper_assets.keystrokes.inference import KeyDecoder, chosen_checkpoint, newest_run
from whisper_assets.serving.errors import ModelNotFound


class NewestKeyDecoder:
    def __init__(self, runs_root: Path):
        self.runs_root = runs_root
        self._loaded: KeyDecoder | None = None
        self._lock = threading.Lock()  # one load at a time; requests in flight keep the decoder they took

    def current(self) -> KeyDecoder:
        run = newest_run(self.runs_root)
        if run is None:
            raise ModelNotFound(
                f"no keystroke model under {self.runs_root} yet: materialize keystroke_model", param="file"
            )
        source = f"{run.name}/{chosen_checkpoint(run).name}"
        with self._lock:
            if self._loaded is None or self._loaded.source != source:
                self._loaded = KeyDecoder.from_run(run)
            return self._loaded
