import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from whisper_assets.audio.decode import AudioDecodeError, decode, probe
from whisper_assets.audio.process import (
    TARGET_RATE,
    normalize_loudness,
    to_mono_16k,
    trim_edge_silence,
    write_pcm16,
)

FORMATS = [".wav", ".flac", ".mp3", ".ogg", ".opus", ".webm", ".m4a"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_supported_format_probes_and_decodes(tmp_path, write_clip, suffix):
    path = write_clip(tmp_path / f"clip{suffix}", "hello world", rate=44_100, stereo=True)
    info = probe(path)
    samples, rate = decode(path)
    assert info.channels == 2 and samples.shape[1] == 2
    assert rate == info.sample_rate
    assert info.duration == pytest.approx(samples.shape[0] / rate, abs=0.06)
    assert 1.0 < info.duration < 2.5


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 10, "not a decodable audio file")],
)
def test_unreadable_files_raise_a_specific_error(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=message):
        probe(path)
    with pytest.raises(AudioDecodeError, match=message):
        decode(path)


def test_resampling_to_16k_mono_preserves_duration_and_pitch():
    rate = 44_100
    t = np.arange(rate * 2) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1).astype(np.float32)
    mono = to_mono_16k(stereo, rate)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert len(mono) == 2 * TARGET_RATE
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.fft.rfftfreq(len(mono), 1 / TARGET_RATE)[spectrum.argmax()] == pytest.approx(440, abs=1)


def test_loudness_normalization_reaches_target_without_clipping():
    rng = np.random.default_rng(0)
    quiet = (0.01 * rng.standard_normal(TARGET_RATE * 3)).astype(np.float32)
    louder = normalize_loudness(quiet, -23.0)
    measured = pyloudnorm.Meter(TARGET_RATE).integrated_loudness(louder.astype(np.float64))
    assert measured == pytest.approx(-23.0, abs=0.5)
    assert np.max(np.abs(louder)) <= 10 ** (-1 / 20) + 1e-6


def test_edge_silence_trim_keeps_the_voiced_middle():
    tone = np.sin(2 * np.pi * 300 * np.arange(TARGET_RATE) / TARGET_RATE).astype(np.float32)
    padded = np.concatenate([np.zeros(TARGET_RATE), tone, np.zeros(TARGET_RATE)])
    trimmed = trim_edge_silence(padded, -40.0)
    assert TARGET_RATE <= len(trimmed) <= TARGET_RATE + 3 * TARGET_RATE // 100


def test_pcm16_writer_is_atomic_and_16_bit(tmp_path):
    out = tmp_path / "deep" / "x.wav"
    write_pcm16(out, np.full(1600, 2.0, dtype=np.float32))  # out-of-range input is clipped, not wrapped
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype) == (TARGET_RATE, 1, "PCM_16")
    assert sf.read(str(out))[0].max() == pytest.approx(1.0, abs=1e-4)
    assert [p.name for p in out.parent.iterdir()] == ["x.wav"]
