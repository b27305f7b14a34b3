"""Level measurements for a person checking a recording: RMS, peak, clipping, a rough SNR, waveform peaks."""

from __future__ import annotations

import numpy as np

_FRAME = 400  # 25 ms at 16 kHz


def _db(value: float) -> float:
    return round(20 * float(np.log10(max(value, 1e-10))), 1)


def levels(samples: np.ndarray) -> dict:
    """RMS and peak in dBFS, the share of clipped samples, and an SNR estimate (loud vs quiet frames)."""
    if samples.size == 0:
        return {"rms_dbfs": None, "peak_dbfs": None, "clipped_share": 0.0, "snr_db": None}
    usable = samples[: samples.size // _FRAME * _FRAME]
    snr = None
    if usable.size >= 10 * _FRAME:
        power = np.sort(np.mean(usable.reshape(-1, _FRAME) ** 2, axis=1))
        tenth = max(1, power.size // 10)
        snr = round(
            10 * float(np.log10(max(power[-tenth:].mean(), 1e-12) / max(power[:tenth].mean(), 1e-12))), 1
        )
    return {
        "rms_dbfs": _db(float(np.sqrt(np.mean(samples**2)))),
        "peak_dbfs": _db(float(np.max(np.abs(samples)))),
        "clipped_share": round(float(np.mean(np.abs(samples) >= 0.999)), 5),
        "snr_db": snr,
    }


def peaks(samples: np.ndarray, buckets: int) -> list[list[float]]:
    """[min, max] per bucket: enough to draw a waveform without sending the audio."""
    if samples.size == 0:
        return []
    buckets = max(1, min(buckets, samples.size))
    return [
        [round(float(chunk.min()), 4), round(float(chunk.max()), 4)]
        for chunk in np.array_split(samples, buckets)
    ]
