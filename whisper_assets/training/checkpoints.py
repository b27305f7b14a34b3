"""Training checkpoints that survive crashes: a checkpoint counts only once its completion marker exists.

Each checkpoint folder holds the model weights, optimizer, scheduler, grad scaler, RNG states and the trainer
state (step, epoch, position in the epoch). The marker file is written last, after everything was flushed, so a
process killed mid-save leaves an unmarked folder that is ignored (and later removed) while the previous
checkpoint stays usable.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MARKER = "COMPLETE"
_NAME = re.compile(r"^checkpoint-(\d{8})$")


class Checkpoints:
    def __init__(self, root: Path):
        self.root = root

    def complete(self) -> list[Path]:
        """Finished checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if _NAME.match(p.name) and (p / MARKER).exists()]
        return sorted(found, key=lambda p: p.name)

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def path(self, step: int) -> Path:
        return self.root / f"checkpoint-{step:08d}"

    @staticmethod
    def step_of(folder: Path) -> int:
        return int(_NAME.match(folder.name).group(1))

    def save(self, step: int, model, optimizer, scheduler, scaler, state: dict) -> Path:
        folder = self.path(step)
        if folder.exists():  # an unfinished save of the same step from a crashed process
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(_untied(weights), str(folder / "model.safetensors"))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
            },
            folder / "training_state.pt",
        )
        torch.save(_rng_state(), folder / "rng.pt")
        (folder / "trainer_state.json").write_text(json.dumps(state, indent=1))
        _fsync_tree(folder)
        marker = folder / MARKER
        marker.write_text(str(step))
        _fsync_tree(folder)
        return folder

    def load(self, folder: Path, model, optimizer, scheduler, scaler) -> dict:
        """Restore everything a checkpoint holds; return its trainer state."""
        model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
        training = torch.load(folder / "training_state.pt", weights_only=False)
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        scaler.load_state_dict(training["scaler"])
        _set_rng_state(torch.load(folder / "rng.pt", weights_only=False))
        return json.loads((folder / "trainer_state.json").read_text())

    @staticmethod
    def load_weights(folder: Path, model) -> None:
        model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)

    def rotate(self, keep_last: int, best_step: int | None) -> None:
        """Keep the latest, the best and the last `keep_last`; drop unfinished folders of crashed saves."""
        done = self.complete()
        keep = {p.name for p in done[-keep_last:]}
        if best_step is not None:
            keep.add(self.path(best_step).name)
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            unfinished = _NAME.match(folder.name) and not (folder / MARKER).exists()
            if unfinished or (folder in done and folder.name not in keep):
                shutil.rmtree(folder, ignore_errors=True)


def _untied(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage (Whisper ties proj_out to the token embedding): copy duplicates."""
    seen: set[int] = set()
    out = {}
    for name, tensor in weights.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
