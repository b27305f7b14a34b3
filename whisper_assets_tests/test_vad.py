"""Real Silero VAD on generated speech, silence and noise."""

import numpy as np
import pytest

from whisper_assets.audio.process import TARGET_RATE as RATE
from whisper_assets.audio.vad import SpeechPolicy, detect_speech, trim_to_speech
from whisper_assets.demo.data import espeak_available, speech_like, synthesize


def spoken(text: str) -> np.ndarray:
    """espeak-ng speech where installed (16 kHz), else the synthetic speech-like signal."""
    if not espeak_available():
        return speech_like(text)
    import soxr

    samples, rate = synthesize(text)
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def noises() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(5 * RATE) / RATE
    brown = np.cumsum(rng.normal(0, 1, len(t)))
    return {
        "silence": np.zeros(len(t)),
        "white noise": rng.normal(0, 0.05, len(t)),
        "brown noise": 0.3 * (brown - brown.mean()) / np.abs(brown).max(),
        "mains hum": 0.3 * np.sin(2 * np.pi * 50 * t),
        "clicks": np.where(rng.random(len(t)) < 0.001, 0.8, 0.0),
    }


@pytest.mark.parametrize("name", list(noises()))
def test_silence_and_noise_are_not_speech(name):
    speech = detect_speech(noises()[name].astype(np.float32))
    assert speech.peak < SpeechPolicy().reject_below
    assert speech.seconds == 0 and speech.regions == ()


def test_speech_between_pauses_is_found_where_it_was_put():
    words = spoken("the quick brown fox jumps over the lazy dog")
    pause = np.zeros(2 * RATE, np.float32)
    clip = np.concatenate([pause, words, pause, words, pause])
    speech = detect_speech(clip)
    truth = [(2.0, 2.0 + len(words) / RATE), (4.0 + len(words) / RATE, 4.0 + 2 * len(words) / RATE)]
    assert speech.peak > 0.9
    inside = sum(speech.within(s, e) for s, e in truth)
    assert inside / speech.seconds > 0.9  # precision: detected speech lies in the spoken parts
    assert inside / sum(e - s for s, e in truth) > 0.7  # recall: most of the spoken parts are found
    assert speech.regions[0][0] > 1.5 and speech.regions[-1][1] < clip.size / RATE - 1.5


def test_trimming_keeps_the_speech_and_pads_it():
    words = spoken("hello there")
    clip = np.concatenate([np.zeros(3 * RATE, np.float32), words, np.zeros(3 * RATE, np.float32)])
    speech = detect_speech(clip)
    cut, moved = trim_to_speech(clip, speech, pad_seconds=0.2)
    assert len(cut) / RATE == pytest.approx(speech.regions[-1][1] - speech.regions[0][0] + 0.4, abs=0.01)
    assert moved.regions[0][0] == pytest.approx(0.2, abs=0.002)
    assert moved.seconds == pytest.approx(speech.seconds, abs=0.005)
    assert detect_speech(cut).peak > 0.9
