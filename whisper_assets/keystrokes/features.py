"""The keystroke feature cache: log-mel features, label ids and attention mask per recording, memory-mapped.

Each entry is `<key>.features.npy`, `<key>.labels.npy`, `<key>.mask.npy` and `<key>.meta.json` (duration,
frames, labels, split, hash). The key covers the audio's content, the events, the vocabulary and the feature
settings, so a changed recording, timeline, vocabulary or window gets a new entry and an unchanged one is reused.
An entry whose files are missing or unreadable is recomputed on the fly, and the repair is logged and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor

from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.audio.decode import decode
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.files import write_json_atomic
from whisper_assets.keystrokes.events import KeyEvent, tokens
from whisper_assets.keystrokes.vocabulary import encode

log = logging.getLogger(__name__)
_VERSION = 1
_PARTS = ("features", "labels", "mask")


@dataclass(frozen=True)
class Example:
    features: np.ndarray  # (mels, frames), memory-mapped when read from the cache
    labels: np.ndarray  # token ids ending in </s>
    attention_mask: np.ndarray  # (frames,): 1 where there is audio, 0 in the padding
    meta: dict


class KeystrokeFeatureCache:
    def __init__(
        self,
        root: Path,
        extractor: WhisperFeatureExtractor,
        tokenizer: PreTrainedTokenizerFast,
        data_root: Path,
    ):
        self.root = root
        self.extractor = extractor
        self.tokenizer = tokenizer
        self.data_root = data_root
        settings = {
            "version": _VERSION,
            "mels": extractor.feature_size,
            "samples": extractor.n_samples,
            "hop": extractor.hop_length,
            "vocab": hashlib.sha256(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode()).hexdigest(),
        }
        self._salt = json.dumps(settings, sort_keys=True)
        self.hits = self.misses = self.repaired = 0

    def key(self, row: dict) -> str:
        blob = json.dumps([self._salt, row["audio_sha256"], row["events"]])
        return hashlib.blake2s(blob.encode(), digest_size=16).hexdigest()

    def paths(self, key: str) -> dict[str, Path]:
        shard = self.root / key[:2]
        return {part: shard / f"{key}.{part}.npy" for part in _PARTS} | {"meta": shard / f"{key}.meta.json"}

    def get(self, row: dict) -> Example:
        key = self.key(row)
        paths = self.paths(key)
        if paths["meta"].exists():
            try:
                example = Example(
                    np.load(paths["features"], mmap_mode="r"),
                    np.load(paths["labels"]),
                    np.load(paths["mask"]),
                    json.loads(paths["meta"].read_text(encoding="utf-8")),
                )
                if (
                    example.meta.get("hash") == key
                    and example.features.shape[-1] == self.extractor.nb_max_frames
                ):
                    self.hits += 1
                    return example
                raise ValueError("entry does not match its key")
            except (OSError, ValueError, json.JSONDecodeError) as exc:
                log.warning(
                    "keystroke feature cache entry %s for %s unreadable (%s): recomputing",
                    key,
                    row["id"],
                    exc,
                )
                self.repaired += 1
        self.misses += 1
        example = self.compute(row, key)
        self._store(paths, example)
        return example

    def compute(self, row: dict, key: str) -> Example:
        audio = to_mono_16k(*decode(self.data_root / row["audio"]))
        extracted = self.extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="np", return_attention_mask=True
        )
        features = extracted.input_features[0].astype(np.float32)
        mask = extracted.attention_mask[0].astype(np.int8)
        labels = np.asarray(
            encode(self.tokenizer, tokens([KeyEvent.from_row(e) for e in row["events"]])), dtype=np.int64
        )
        meta = {
            "id": row["id"],
            "duration": row["duration"],
            "frames": int(mask.sum()),
            "labels": len(labels),
            "split": row["split"],
            "hash": key,
        }
        return Example(features, labels, mask, meta)

    @staticmethod
    def _store(paths: dict[str, Path], example: Example) -> None:
        paths["meta"].parent.mkdir(parents=True, exist_ok=True)
        for part, array in zip(
            _PARTS, (example.features, example.labels, example.attention_mask), strict=True
        ):
            tmp = paths[part].with_suffix(".tmp.npy")
            np.save(tmp, array)
            tmp.replace(paths[part])
        write_json_atomic(paths["meta"], example.meta)  # written last: an entry counts once its meta exists
