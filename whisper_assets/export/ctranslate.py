"""Export a Whisper model to CTranslate2 for faster-whisper, and check that it transcribes (extra `export`)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from whisper_assets.asr.run_folder import RunFolder, Scope
from whisper_assets.curation.manifests import read_manifest
from whisper_assets.files import write_json_atomic

SCOPE_FILE = "model_scope.json"  # max_input_seconds and general_model, as the MLflow tags say

_COPIED = (
    "tokenizer.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
    "added_tokens.json",
    "generation_config.json",
)


class ExportUnavailable(RuntimeError):
    """The `export` extra (ctranslate2, faster-whisper) is not installed."""


def export_available() -> bool:
    return (
        importlib.util.find_spec("ctranslate2") is not None
        and importlib.util.find_spec("faster_whisper") is not None
    )


def export_ctranslate2(model_dir: Path, out_dir: Path, quantization: str = "int8") -> Path:
    """Convert a saved (LoRA-merged) Whisper model; tokenizer and preprocessor files travel with it."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as exc:
        raise ExportUnavailable("CTranslate2 export needs the extra: pip install -e '.[export]'") from exc
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    copy = [name for name in _COPIED if (model_dir / name).exists()]
    TransformersConverter(str(model_dir), copy_files=copy).convert(
        str(staging), quantization=quantization, force=True
    )
    _write_preprocessor_config(model_dir, staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return out_dir


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    quantization: str
    checked_on: dict | None  # the test item transcribed to prove the export loads
    hypothesis: str
    scope: Scope

    @property
    def size_mb(self) -> float:
        return round(sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file()) / 2**20, 2)


def export_run(folder: RunFolder, exports_root: Path, quantization: str = "int8") -> ExportedModel:
    """Convert a run's model, record its scope next to it (`model_scope.json`: a trimmed-window model is not a
    general one), and transcribe its first test item with the export."""
    out_dir = export_ctranslate2(
        folder.model_dir, exports_root / f"{folder.name}-ct2-{quantization}", quantization
    )
    scope = folder.scope()
    write_json_atomic(out_dir / SCOPE_FILE, {"run": folder.name, **scope.fields()}, indent=2)
    clip = next(iter(read_manifest(folder.manifest("test"))), None)
    compute_type = "int8" if quantization.startswith("int8") else "default"
    hypothesis = transcribe_exported(out_dir, clip["audio"], clip["language"], compute_type) if clip else ""
    return ExportedModel(out_dir, quantization, clip, hypothesis, scope)


def transcribe_exported(model_dir: Path, audio_path: str, language: str | None, compute_type: str) -> str:
    """Load the exported model and transcribe one clip: the export's proof of life.

    A standard 30 s window goes through faster-whisper. faster-whisper pads features to 30 s unconditionally,
    so a model with a trimmed encoder window is run through CTranslate2 directly with features of its own size.
    """
    features = json.loads((model_dir / "preprocessor_config.json").read_text())
    if features.get("chunk_length", 30) >= 30:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ExportUnavailable(
                "verifying the export needs faster-whisper: pip install -e '.[export]'"
            ) from exc
        model = WhisperModel(str(model_dir), device="auto", compute_type=compute_type)
        segments, _ = model.transcribe(audio_path, language=language, beam_size=1, without_timestamps=True)
        return " ".join(segment.text.strip() for segment in segments)
    return _transcribe_ctranslate2(model_dir, audio_path, language, compute_type)


def _transcribe_ctranslate2(model_dir: Path, audio_path: str, language: str | None, compute_type: str) -> str:
    import ctranslate2
    import soundfile as sf
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    audio, _ = sf.read(audio_path, dtype="float32")
    extractor = WhisperFeatureExtractor.from_pretrained(str(model_dir))
    features = extractor(audio, sampling_rate=16_000, return_tensors="np").input_features
    model = ctranslate2.models.Whisper(str(model_dir), device="auto", compute_type=compute_type)
    prompt = ["<|startoftranscript|>"]
    if model.is_multilingual:
        prompt += [f"<|{language}|>", "<|transcribe|>"] if language else ["<|transcribe|>"]
    prompt.append("<|notimestamps|>")
    result = model.generate(
        ctranslate2.StorageView.from_array(features), [prompt], beam_size=1, max_length=128
    )
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).decode(result[0].sequences_ids[0]).strip()


def _write_preprocessor_config(model_dir: Path, out_dir: Path) -> None:
    """faster-whisper reads feature settings (a trimmed window's chunk_length too) from preprocessor_config.json,
    which transformers 5 folds into processor_config.json."""
    target = out_dir / "preprocessor_config.json"
    if target.exists() or not (model_dir / "processor_config.json").exists():
        return
    features = json.loads((model_dir / "processor_config.json").read_text())["feature_extractor"]
    target.write_text(json.dumps(features, indent=2))
