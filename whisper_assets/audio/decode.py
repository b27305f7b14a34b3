"""Probe and decode audio files with libsndfile (soundfile) first and FFmpeg (PyAV) for everything else.

Neither path needs a system ffmpeg: the soundfile wheel bundles libsndfile (wav, flac, ogg/opus, mp3) and the
PyAV wheel bundles FFmpeg's libraries (webm, m4a/aac, and anything libsndfile refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".flac",
        ".mp3",
        ".ogg",
        ".oga",
        ".opus",
        ".webm",
        ".m4a",
        ".mp4",
        ".aac",
        ".aiff",
        ".aif",
        ".wma",
    }
)
LOSSLESS_CODECS = frozenset({"pcm", "flac", "alac", "wav", "aiff"})


class AudioDecodeError(Exception):
    """The file is not audio we can decode; the message says why, for a rejection record."""


@dataclass(frozen=True)
class AudioInfo:
    """What a probe learns about an audio file without decoding it whole."""

    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str

    @property
    def lossless(self) -> bool:
        return any(self.codec.lower().startswith(name) for name in LOSSLESS_CODECS)


def is_audio_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def probe(path: str | Path) -> AudioInfo:
    """Read duration, rate, channels and codec; raise AudioDecodeError for anything unreadable."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return _probe_with_ffmpeg(path)
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioDecodeError("audio stream holds no samples")
    if info.format in _RIFF_FORMATS and (problem := _truncated_riff(path)):
        raise AudioDecodeError(problem)
    return AudioInfo(
        duration=info.frames / info.samplerate,
        sample_rate=info.samplerate,
        channels=info.channels,
        codec=info.subtype.lower(),
        container=info.format.lower(),
    )


_RIFF_FORMATS = ("WAV", "WAVEX")
_STREAMING_SIZES = (0, 0xFFFFFFFF)  # what writers that do not know the length yet put in the header


def _truncated_riff(path: Path) -> str | None:
    """Why a WAV file is cut short: its data chunk promises more bytes than the file holds (None if whole)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    offset = 12  # "RIFF" <size> "WAVE", then chunks of <id> <size> <payload>
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            holds = path.stat().st_size - offset - 8
            if size not in _STREAMING_SIZES and holds < size:
                return f"truncated WAV: its header promises {size} bytes of audio, the file holds {holds}"
            return None
        offset += 8 + size + (size & 1)
    return None


def _probe_with_ffmpeg(path: Path) -> AudioInfo:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream in the file")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:  # Some webm files carry no duration: count the decoded samples.
                duration = sum(frame.samples for frame in container.decode(stream)) / stream.rate
            codec = stream.codec_context.name
            return AudioInfo(
                duration=duration,
                sample_rate=stream.rate,
                channels=stream.channels,
                codec=codec,
                container=container.format.name.split(",")[0],
            )
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise AudioDecodeError(f"not a decodable audio file ({exc.__class__.__name__}: {exc})") from exc


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the whole file to float32 samples shaped (frames, channels) and return them with the rate."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as handle:
            if handle.subtype == "PCM_16":  # libsndfile converts int16 to float ~10x slower than numpy does
                pcm = handle.read(dtype="int16", always_2d=True)
                samples = np.multiply(pcm, np.float32(1 / 32768), dtype=np.float32)
            else:
                samples = handle.read(dtype="float32", always_2d=True)
            rate = handle.samplerate
    except (sf.LibsndfileError, RuntimeError):
        samples, rate = _decode_with_ffmpeg(path)
    if samples.shape[0] == 0:
        raise AudioDecodeError("audio stream holds no samples")
    return samples, rate


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream in the file")
            stream = container.streams.audio[0]
            channels = stream.channels
            # Packed float32 keeps the channel layout; resampling stays with soxr later.
            converter = av.AudioResampler(format="flt", layout=stream.layout, rate=stream.rate)
            chunks = []
            for frame in container.decode(stream):
                for converted in converter.resample(frame):
                    chunks.append(converted.to_ndarray().reshape(-1, channels))
            for converted in converter.resample(None):
                chunks.append(converted.to_ndarray().reshape(-1, channels))
            rate = stream.rate
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise AudioDecodeError(f"not a decodable audio file ({exc.__class__.__name__}: {exc})") from exc
    if not chunks:
        raise AudioDecodeError("audio stream holds no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False), rate
