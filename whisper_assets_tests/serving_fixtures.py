"""Registered model versions for the transcription server's tests: a tiny Whisper that learned to say the smoke
clip (a good version) and the same model untrained (a broken one), in a real embedded MLflow registry."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import uvicorn

from whisper_assets.demo.tiny_whisper import build_tiny_whisper
from whisper_assets.export.ctranslate import export_ctranslate2
from whisper_assets.serving import ServingSettings
from whisper_assets.serving.smoke import BUNDLED_TRANSCRIPT, SmokeClip
from whisper_assets.tracking.tracker import Tracker


def speaking_model(base_dir: Path, out_dir: Path, samples: np.ndarray, text: str, steps: int = 300) -> Path:
    """Train a tiny random Whisper until it says `text` (with segment timestamps) for these samples, on the
    features faster-whisper computes (the server's) and its prompt for an English-only model (a tiny model is
    one to CTranslate2: see tiny_whisper.py), so the memorized answer survives serving."""
    import torch
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(base_dir)
    model = WhisperForConditionalGeneration.from_pretrained(base_dir)
    mel = FeatureExtractor(feature_size=80)(samples)[:, :3000]
    features = torch.tensor(np.pad(mel, ((0, 0), (0, 3000 - mel.shape[1])))[None])
    tokenizer = processor.tokenizer
    end = f"<|{round(len(samples) / 16_000 / 0.02) * 0.02:.2f}|>"
    prefix = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|0.00|>"])
    suffix = tokenizer.convert_tokens_to_ids([end, "<|endoftext|>"])
    ids = prefix + tokenizer(f" {text}", add_special_tokens=False).input_ids + suffix
    inputs, labels = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        loss = model(input_features=features, decoder_input_ids=inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if loss.item() < 0.005:
            break
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "generation_config.json").write_bytes((base_dir / "generation_config.json").read_bytes())
    return out_dir


def tiny_models(root: Path) -> tuple[Path, Path]:
    """(a model that says the bundled smoke clip, the same architecture untrained)."""
    smoke = SmokeClip.from_settings(ServingSettings())
    untrained = build_tiny_whisper(
        root / "untrained", [f" {BUNDLED_TRANSCRIPT}"] * 20 + [" zero one two"] * 5, multilingual=False
    )
    return speaking_model(untrained, root / "speaking", smoke.samples, BUNDLED_TRANSCRIPT), untrained


def register(tracker: Tracker, model_dir: Path, exports_root: Path | None) -> str:
    """Register a model as a new version; with `exports_root`, record its int8 export as `exported_model` does."""
    run_id = tracker.start_run(model_dir.name, {})
    version = tracker.register(run_id, tracker.log_artifacts(run_id, model_dir, "model"))
    if exports_root is not None:
        export = export_ctranslate2(model_dir, exports_root / f"{model_dir.name}-v{version}", "int8")
        tracker.record_export(version, run_id, export, "int8")
    return version


@contextmanager
def running(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
