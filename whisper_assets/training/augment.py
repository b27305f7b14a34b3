"""Training-time audio augmentation: noise, speed, pitch, reverb and gain (audiomentations, extra `augment`).

A sample is augmented with probability `augment_probability`, and each transform then applies with probability
one half. Every draw is a pure function of (seed, sample ids, epoch), so a resumed run sees the same audio as an
uninterrupted one, and each epoch hears a sample differently.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import fftconvolve

from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.training.options import TrainingOptions

_EACH = 0.5  # probability of each transform inside an augmented sample
_MAX_SNR_DB = 40.0
_ROOM_SECONDS = (0.2, 0.8)  # reverberation time (RT60) of the generated rooms


class AugmentationUnavailable(RuntimeError):
    """Augmentation was asked for but the `augment` extra (audiomentations) is not installed."""


class Augmenter:
    """Draws and applies the augmentation of one sample in one epoch."""

    def __init__(self, options: TrainingOptions):
        try:
            from audiomentations import AddGaussianSNR, Compose, Gain, PitchShift, Resample
        except ImportError as exc:
            raise AugmentationUnavailable(
                "augment_probability > 0 needs audiomentations: pip install -e '.[augment]'"
            ) from exc
        self.probability = options.augment_probability
        self.seed = options.seed
        speed = options.augment_speed
        transforms: list[Callable] = [
            # Played back at 16 kHz, audio resampled to 16 kHz / s is s times faster (Kaldi's speed perturbation).
            Resample(
                min_sample_rate=round(SAMPLE_RATE / (1 + speed)),
                max_sample_rate=round(SAMPLE_RATE / (1 - speed)),
                p=_EACH,
            ),
            PitchShift(
                min_semitones=-options.augment_pitch_semitones,
                max_semitones=options.augment_pitch_semitones,
                p=_EACH,
            ),
            Gain(min_gain_db=-options.augment_gain_db, max_gain_db=options.augment_gain_db, p=_EACH),
            AddGaussianSNR(min_snr_db=options.augment_noise_snr_db, max_snr_db=_MAX_SNR_DB, p=_EACH),
        ]
        self._compose = Compose(transforms, p=1.0)
        self.reverb = options.augment_reverb

    def __call__(self, audio: np.ndarray, ids: Sequence[str], epoch: int) -> np.ndarray | None:
        """The augmented audio, or None when this sample is heard clean in this epoch."""
        rng = np.random.default_rng(_entropy(self.seed, ids, epoch))
        if rng.random() >= self.probability:
            return None
        saved = random.getstate(), np.random.get_state()
        try:  # audiomentations draws from the global generators: seed them for this sample, then restore them
            random.seed(int(rng.integers(2**32)))
            np.random.seed(int(rng.integers(2**32)))
            out = self._compose(samples=np.asarray(audio, dtype=np.float32), sample_rate=SAMPLE_RATE)
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
        if self.reverb and rng.random() < _EACH:
            out = reverberate(out, float(rng.uniform(*_ROOM_SECONDS)), rng)
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Audio in a generated room: the direct sound plus a diffuse tail of exponentially decaying noise that falls
    60 dB in rt60 seconds, of equal energy (0 dB direct-to-reverberant ratio), at the original peak level."""
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    response = rng.normal(0, 1, len(t)) * 10 ** (-3 * t / rt60)
    response /= np.linalg.norm(response)
    response[0] += 1.0
    wet = fftconvolve(audio, response)[: len(audio)]
    peak = np.abs(wet).max()
    return wet * (np.abs(audio).max() / peak) if peak > 0 else wet


def _entropy(seed: int, ids: Sequence[str], epoch: int) -> int:
    digest = hashlib.blake2s("\x00".join([str(seed), str(epoch), *ids]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
