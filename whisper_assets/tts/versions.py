"""Immutable version folders per step (`<step>/<version>/`) and a `current` file naming the latest one, which
the next step reads."""

from __future__ import annotations

from pathlib import Path

from whisper_assets.files import write_text_atomic

CURRENT_NAME = "current"


def mark_current(folder: Path) -> None:
    write_text_atomic(folder.parent / CURRENT_NAME, folder.name + "\n")


def current_version(step_root: Path, producer: str) -> Path:
    """The latest version folder of a step, or a clear error naming the asset to materialize first."""
    pointer = step_root / CURRENT_NAME
    if not pointer.exists():
        raise FileNotFoundError(f"{step_root} has no output yet: materialize {producer} first")
    return step_root / pointer.read_text().strip()
