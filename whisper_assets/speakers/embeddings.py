"""Speaker embeddings with Resemblyzer's d-vector encoder, cached by audio content.

Resemblyzer ships its trained weights (a 3-layer LSTM, GE2E loss, 256 dimensions) inside its PyPI package, so it
runs with no model hub. Embeddings are unit vectors: cosine distance compares voices.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from whisper_assets.files import atomic_path, write_json_atomic
from whisper_assets.parallel import use_all_cores

EMBEDDING_RATE = 16_000
MIN_EMBED_SECONDS = 0.1  # shorter audio has too few 10 ms frames for the encoder
EMBEDDING_DIMS = 256


class SpeakersUnavailable(RuntimeError):
    """The optional speaker encoder is not installed."""


class SpeakerEncoder:
    """Resemblyzer's voice encoder on 16 kHz mono float audio (loaded once, on first use)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._encoder = None

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One 256-dimensional unit vector for the voice in `audio`."""
        if len(audio) < MIN_EMBED_SECONDS * EMBEDDING_RATE:
            raise ValueError(f"{len(audio) / EMBEDDING_RATE:.2f} s is too short to embed a voice")
        return self._load().embed_utterance(np.asarray(audio, dtype=np.float32))

    def _load(self):
        if self._encoder is None:
            try:
                with warnings.catch_warnings():
                    # webrtcvad (a Resemblyzer dependency) imports the deprecated pkg_resources.
                    warnings.simplefilter("ignore", UserWarning)
                    from resemblyzer import VoiceEncoder
            except ImportError as exc:
                raise SpeakersUnavailable(
                    f"speaker embeddings need Resemblyzer ({exc}): pip install 'whisper-assets[speakers]'"
                ) from exc
            use_all_cores()
            self._encoder = VoiceEncoder(self.device, verbose=False)
        return self._encoder


class EmbeddingCache:
    """Embeddings keyed by audio content, in `embeddings.npy` with its keys in `embedding_keys.json`.

    Keys are content addresses (a processed file's name), so a re-run embeds only new audio; the files are
    rewritten whole and atomically, in the order of the latest request.
    """

    def __init__(self, folder: Path) -> None:
        self.matrix_path = folder / "embeddings.npy"
        self.keys_path = folder / "embedding_keys.json"

    def load(self) -> dict[str, np.ndarray]:
        if not (self.matrix_path.exists() and self.keys_path.exists()):
            return {}
        keys = json.loads(self.keys_path.read_text())
        matrix = np.load(self.matrix_path)
        return dict(zip(keys, matrix, strict=True)) if len(keys) == len(matrix) else {}

    def embed(
        self, keys: Sequence[str], read: Callable[[str], np.ndarray], encoder: SpeakerEncoder
    ) -> tuple[np.ndarray, int]:
        """The embeddings of `keys` in order, reading and embedding only those not cached; and how many were new."""
        known = self.load()
        new = 0
        rows = []
        for key in keys:
            if key not in known:
                known[key] = encoder.embed(read(key))
                new += 1
            rows.append(known[key])
        matrix = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, EMBEDDING_DIMS), np.float32)
        with atomic_path(self.matrix_path) as tmp, tmp.open("wb") as out:
            np.save(out, matrix)
        write_json_atomic(self.keys_path, list(keys))
        return matrix, new
