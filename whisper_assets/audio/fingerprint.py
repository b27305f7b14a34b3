"""Content identity of audio: file hashes, exact PCM hashes and spectral-peak landmarks.

A lossless re-encode (wav -> flac) decodes to identical PCM, so the PCM hash matches. A lossy re-encode
(wav -> mp3) does not: landmarks (pairs of spectral peaks, as in Shazam, audfprint and Dejavu) are what the
duplicate index looks it up by, since a re-encode keeps most of its peaks at the same time offsets whatever its
codec, gain or sample rate, and the waveform check (`waveform_similarity`) confirms the match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_assets.audio.process import TARGET_RATE, trim_edge_silence


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


# Landmarks: on the comparable waveform (8 kHz), 32 ms frames every 8 ms, peaks between 125 Hz and 3.1 kHz.
_PEAK_FFT = 256
_PEAK_HOP = 64
_PEAK_BINS = (4, 100)
_PEAK_NEIGHBOURHOOD = (7, 9)  # frames x bins a peak must dominate
# The strongest peaks kept: 32 + 20 per second (fewer missed opus and mp3 at 32 kbps on FSDD's short takes),
# from the first minute of the voiced span (a copy of a long recording starts like it).
_PEAKS = (32, 20)
_LANDMARK_SECONDS = 60.0
_FAN_OUT = 5  # each peak pairs with the next few peaks in its target zone
_ZONE = 31  # at most this many frames later and bins apart (fits the hash's 5 and 6 bits)
LANDMARK_FRAME_SECONDS = _PEAK_HOP / COMPARE_RATE


@dataclass(frozen=True)
class Landmarks:
    """Peak-pair hashes of a comparable waveform and the frame each starts at (both uint32)."""

    hashes: np.ndarray
    frames: np.ndarray

    def to_hex(self) -> str:
        return np.stack([self.hashes, self.frames]).astype("<u4").tobytes().hex()

    @classmethod
    def from_hex(cls, value: str) -> Landmarks:
        pairs = np.frombuffer(bytes.fromhex(value), dtype="<u4").reshape(2, -1)
        return cls(pairs[0].astype(np.uint32), pairs[1].astype(np.uint32))


def landmarks(waveform: np.ndarray) -> Landmarks:
    """Landmarks of a `comparable_waveform`: each strong spectral peak paired with the next peaks near it in
    time and frequency, hashed as (frequency, frequency step, time step) and stamped with its frame."""
    waveform = waveform[: int(_LANDMARK_SECONDS * COMPARE_RATE)]
    if len(waveform) < _PEAK_FFT:
        waveform = np.pad(waveform, (0, _PEAK_FFT - len(waveform)))
    frames = np.lib.stride_tricks.sliding_window_view(waveform, _PEAK_FFT)[::_PEAK_HOP] * np.hanning(
        _PEAK_FFT
    )
    spectrum = np.log(np.abs(np.fft.rfft(frames, axis=1))[:, slice(*_PEAK_BINS)] + 1e-6)
    dt, df = (n // 2 for n in _PEAK_NEIGHBOURHOOD)
    padded = np.pad(spectrum, ((dt, dt), (df, df)), constant_values=-np.inf)
    neighbourhood = np.lib.stride_tricks.sliding_window_view(padded, _PEAK_NEIGHBOURHOOD).max(axis=(2, 3))
    times, bins = np.nonzero(spectrum >= neighbourhood)
    keep = _PEAKS[0] + int(_PEAKS[1] * len(waveform) / COMPARE_RATE)
    strongest = np.sort(np.argsort(-spectrum[times, bins], kind="stable")[:keep])  # back in time order
    times, bins = times[strongest].astype(np.int64), bins[strongest].astype(np.int64)
    # Each peak against the next _ZONE peaks in time order: first _FAN_OUT targets inside the zone.
    later = np.arange(1, _ZONE + 1)
    j = np.arange(len(times))[:, None] + later[None, :]
    valid = j < len(times)
    j = np.minimum(j, len(times) - 1)
    step = times[j] - times[:, None]
    rise = bins[j] - bins[:, None]
    valid &= (step >= 1) & (step <= _ZONE) & (np.abs(rise) <= _ZONE)
    valid &= np.cumsum(valid, axis=1) <= _FAN_OUT
    anchor, target = np.nonzero(valid)
    hashes = (bins[anchor] << 11) | ((rise[anchor, target] + 32) << 5) | step[anchor, target]
    return Landmarks(hashes.astype(np.uint32), times[anchor].astype(np.uint32))
