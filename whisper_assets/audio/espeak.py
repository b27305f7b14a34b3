"""Speech from espeak-ng, a system program: the demo's generated recordings and the built-in general-speech set."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess

import numpy as np
import soundfile as sf


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str = "en-us", words_per_minute: int = 150) -> tuple[np.ndarray, int]:
    """`text` spoken by an espeak-ng voice (`hr`, `en-gb-scotland`, `sr+f2`): mono samples and their rate."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(words_per_minute), text],
        capture_output=True,
        check=True,
    ).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return samples, rate


@functools.cache
def espeak_version() -> str:
    """The installed espeak-ng's version line (its voices change between releases)."""
    return subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
