"""Write audio in any container the platform reads: libsndfile formats directly, the rest through PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

_SOUNDFILE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
}
_FFMPEG_FORMATS = {
    ".webm": ("webm", "libopus"),
    ".m4a": ("mp4", "aac"),
    ".mp3": ("mp3", "libmp3lame"),  # through FFmpeg when a bitrate is asked for
    ".opus": ("ogg", "libopus"),
}
_FRAME_SIZES = {"libopus": 960, "aac": 1024, "libmp3lame": 1152}
_OPUS_RATE = 48_000  # Opus encodes at a handful of rates; 48 kHz is its native one


def write_audio(path: str | Path, samples: np.ndarray, rate: int, bitrate: int | None = None) -> None:
    """Encode float samples shaped (frames,) or (frames, channels) to the format named by the extension.

    `bitrate` (bits per second) sets a lossy encoder's rate; it sends mp3 and opus through FFmpeg.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".opus", ".webm") and rate != _OPUS_RATE:
        samples, rate = soxr.resample(samples, rate, _OPUS_RATE), _OPUS_RATE
    if suffix in _SOUNDFILE_FORMATS and bitrate is None:
        fmt, subtype = _SOUNDFILE_FORMATS[suffix]
        sf.write(str(path), samples, rate, format=fmt, subtype=subtype)
    elif suffix in _FFMPEG_FORMATS:
        _write_with_ffmpeg(path, samples, rate, *_FFMPEG_FORMATS[suffix], bitrate)
    else:
        raise ValueError(
            f"cannot write {suffix} audio; use one of {sorted({*_SOUNDFILE_FORMATS, *_FFMPEG_FORMATS})}"
        )


def _write_with_ffmpeg(
    path: Path, samples: np.ndarray, rate: int, container: str, codec: str, bitrate: int | None
) -> None:
    planar = np.atleast_2d(samples.T if samples.ndim == 2 else samples).astype(np.float32)
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.time_base = Fraction(1, rate)
        if bitrate:
            stream.bit_rate = bitrate
        frame_size = _FRAME_SIZES[codec]
        pts = 0
        for start in range(0, planar.shape[1], frame_size):
            chunk = np.ascontiguousarray(planar[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, pts
            pts += chunk.shape[1]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
