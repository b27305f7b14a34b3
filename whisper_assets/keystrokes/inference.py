"""Decode one recording into key events with a run's best or latest checkpoint, or an exported model folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor, WhisperForConditionalGeneration

from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.asr.model import resolve_device
from whisper_assets.audio.decode import decode
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.keystrokes import vocabulary
from whisper_assets.keystrokes.model import from_saved_config, greedy_decode, with_adapters
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.keystrokes.trainer import OPTIONS_FILE
from whisper_assets.training.checkpoints import Checkpoints

_MAX_NEW_TOKENS = 400


@dataclass(frozen=True)
class KeyDecoder:
    model: WhisperForConditionalGeneration
    extractor: WhisperFeatureExtractor
    tokenizer: PreTrainedTokenizerFast
    source: str  # which weights: "<run>/checkpoint-…" or the model folder

    @classmethod
    def from_run(cls, run_dir: Path, which: Literal["best", "latest"] = "best") -> KeyDecoder:
        """A run's checkpoint (the best by test token accuracy, or the newest) with the run's own tokenizer."""
        chosen = chosen_checkpoint(run_dir, which)
        model, extractor = from_saved_config(run_dir / "model_config")
        options = KeystrokeOptions.model_validate_json((run_dir / OPTIONS_FILE).read_text())
        model = with_adapters(model, options)
        Checkpoints.load_weights(chosen, model)
        tokenizer = vocabulary.load_tokenizer(run_dir / "tokenizer")
        return cls(model.to(resolve_device()).eval(), extractor, tokenizer, f"{run_dir.name}/{chosen.name}")

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> KeyDecoder:
        """An exported model folder (adapters merged) with its tokenizer/ subfolder."""
        model = WhisperForConditionalGeneration.from_pretrained(model_dir).to(resolve_device()).eval()
        extractor = WhisperFeatureExtractor.from_pretrained(model_dir)
        return cls(model, extractor, vocabulary.load_tokenizer(model_dir / "tokenizer"), str(model_dir))

    def decode_file(self, path: Path) -> list[str]:
        return self.decode_audio(to_mono_16k(*decode(path)))

    def decode_audio(self, audio) -> list[str]:
        """Key event tokens (`KeyA_DOWN` ...) of 16 kHz mono audio within the model's window."""
        features = self.extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        device = next(self.model.parameters()).device
        limit = min(_MAX_NEW_TOKENS, self.model.config.max_target_positions - 1)
        with torch.no_grad():
            decoded = greedy_decode(
                self.model,
                features.to(device),
                self.tokenizer.bos_token_id,
                self.tokenizer.eos_token_id,
                limit,
            )
        return vocabulary.decode(self.tokenizer, decoded.ids[0])


def chosen_checkpoint(run_dir: Path, which: Literal["best", "latest"] = "best") -> Path:
    """The run's best checkpoint by test token accuracy (while it is kept), or its newest."""
    checkpoints = Checkpoints(run_dir / "checkpoints")
    latest = checkpoints.latest()
    if latest is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint yet")
    best_step = json.loads((latest / "trainer_state.json").read_text())["best_step"]
    if which == "best" and best_step is not None and checkpoints.path(best_step).exists():
        return checkpoints.path(best_step)
    return latest


def newest_run(runs_root: Path) -> Path | None:
    """The run folder (under runs_root/<source>/) whose latest checkpoint is the most recent."""
    found = [
        (latest.stat().st_mtime, run)
        for run in runs_root.glob("*/*")
        if (latest := Checkpoints(run / "checkpoints").latest())
    ]
    return max(found)[1] if found else None
