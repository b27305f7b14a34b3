"""Content identity of audio: file hashes, exact PCM hashes and a perceptual fingerprint.

A lossless re-encode (wav -> flac) decodes to identical PCM, so the PCM hash matches. A lossy re-encode
(wav -> mp3) does not, so we also keep a Haitsma-Kalker style fingerprint: signs of band-energy differences over
time, on a fixed time grid of the voiced part, compared by the share of equal bits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_assets.audio.process import TARGET_RATE, trim_edge_silence

_FRAMES = 48  # fixed time grid: robust to codec delay and small length differences
_BANDS = 17  # log-spaced bands between 150 Hz and 5 kHz, 16 difference bits per frame
_FFT = 512
_HOP = 160


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def pcm_sha256(samples_16k: np.ndarray) -> str:
    """Hash of the 16-bit quantized 16 kHz mono signal: equal for lossless re-encodes of the same audio."""
    pcm = np.clip(np.round(samples_16k * 32767), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """Perceptual fingerprint of the voiced span of a 16 kHz mono signal."""

    bits: np.ndarray  # bool, (_FRAMES - 1) * (_BANDS - 1)
    voiced_seconds: float

    def similarity(self, other: Fingerprint) -> float:
        return float(np.mean(self.bits == other.bits))

    def to_hex(self) -> str:
        return np.packbits(self.bits).tobytes().hex()

    @classmethod
    def from_hex(cls, value: str, voiced_seconds: float) -> Fingerprint:
        size = (_FRAMES - 1) * (_BANDS - 1)
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(value), dtype=np.uint8))[:size].astype(bool)
        return cls(bits=bits, voiced_seconds=voiced_seconds)


def fingerprint(samples_16k: np.ndarray) -> Fingerprint:
    voiced = trim_edge_silence(samples_16k, threshold_db=-35.0)
    if len(voiced) < _FFT:
        voiced = np.pad(voiced, (0, _FFT - len(voiced)))
    frames = np.lib.stride_tricks.sliding_window_view(voiced, _FFT)[::_HOP] * np.hanning(_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(_FFT, 1 / TARGET_RATE)
    edges = np.geomspace(150, 5000, _BANDS + 1)
    band_index = np.digitize(freqs, edges) - 1
    bands = np.stack([power[:, band_index == b].sum(axis=1) for b in range(_BANDS)], axis=1)  # (time, bands)
    # Pool onto a fixed grid of _FRAMES cells spanning the voiced part.
    cells = np.array_split(np.log(bands + 1e-10), _FRAMES, axis=0)
    grid = np.stack([cell.mean(axis=0) if len(cell) else np.zeros(_BANDS) for cell in cells])
    band_diff = grid[:, :-1] - grid[:, 1:]
    bits = (band_diff[1:] - band_diff[:-1]) > 0
    return Fingerprint(bits=bits.ravel(), voiced_seconds=len(voiced) / TARGET_RATE)


def comparable_waveform(samples_16k: np.ndarray) -> np.ndarray:
    """The voiced span in the 0-4 kHz band (8 kHz samples): what `waveform_similarity` compares.

    The band is what survives an 8 kHz copy of a recording; trimming drops leading and trailing silence that
    differs between encodes.
    """
    import soxr

    voiced = trim_edge_silence(samples_16k, threshold_db=-35.0)
    return soxr.resample(voiced, TARGET_RATE, COMPARE_RATE).astype(np.float32)


COMPARE_RATE = 8_000


def waveform_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Peak normalized cross-correlation of two comparable waveforms, within +-MAX_LAG_SECONDS.

    A re-encode of the same recording stays close to 1 whatever its codec, bitrate, gain or sample rate (0.96
    and up on FSDD, opus at 16 kbps the lowest); two takes of the same words by the same voice do not line up
    sample by sample (at most 0.89 on FSDD). The lag window absorbs codec delay.
    """
    if not len(a) or not len(b):
        return 0.0
    size = correlation_size(len(a), len(b))
    spectra = np.fft.rfft(np.stack([_padded(a, size), _padded(b, size)]), axis=1)
    return float(similarities(spectra[0], energy(a), spectra[1:], np.array([energy(b)]), size)[0])


MAX_LAG_SECONDS = 0.25


def correlation_size(*lengths: int) -> int:
    """FFT length for correlating signals this long without wrap-around inside the lag window."""
    return 1 << int(np.ceil(np.log2(max(lengths) + int(MAX_LAG_SECONDS * COMPARE_RATE) + 1)))


def energy(waveform: np.ndarray) -> float:
    return float(np.dot(waveform.astype(np.float64), waveform))


def similarities(
    spectrum: np.ndarray, own_energy: float, others: np.ndarray, other_energies: np.ndarray, size: int
) -> np.ndarray:
    """waveform_similarity of one waveform against several at once, from rfft spectra of length `size`."""
    corr = np.fft.irfft(spectrum[None, :] * np.conj(others), size, axis=1)
    lag = int(MAX_LAG_SECONDS * COMPARE_RATE)
    peak = np.maximum(corr[:, : lag + 1].max(axis=1), corr[:, -lag:].max(axis=1))
    return peak / (np.sqrt(own_energy * other_energies) + 1e-12)


def _padded(waveform: np.ndarray, size: int) -> np.ndarray:
    return np.pad(waveform[:size], (0, max(0, size - len(waveform))))
