"""Forced alignment: the speech-constrained word path, windowing on a tiny random model, and accuracy on real
speech with the shared tiny.en (skipped without ../shared)."""

import itertools
import re
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from whisper_assets.asr.align import Aligner, Clip, _kept, _speech_weights
from whisper_assets.asr.model import load_base
from whisper_assets.asr.word_path import word_path
from whisper_assets.audio.vad import SpeechRegions, detect_speech
from whisper_assets.demo.data import speech_like
from whisper_assets.demo.long_form import assemble
from whisper_assets.text.timings import Word
from whisper_assets.training.model import trim_encoder_window
from whisper_assets_tests.helpers import FSDD, TINY_EN
from whisper_assets_tests.training_fixtures import make_tiny_model

DIGITS = "zero one two three four five six seven eight nine".split()


def _speech(frames: int, regions: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(frames)
    for start, end in regions:
        mask[start:end] = 1.0
    return mask


def test_repeated_words_take_one_stretch_of_speech_each_where_attention_cannot_tell_them_apart():
    regions = [(10, 25), (40, 52), (70, 90), (120, 131)]
    scores = np.ones((4, 150))  # four identical words: attention says nothing about which is where
    scores[:, 40:52] = 3.0  # ... and likes the second take for all of them
    assert word_path(scores, _speech(150, regions)) == regions


def test_a_word_said_again_does_not_split_one_take_when_a_pause_separates_the_takes():
    regions = [(10, 30), (50, 70)]
    scores = np.zeros((3, 100))
    scores[0, 10:20] = scores[1, 20:30] = 4.0  # attention splits the first take between the two "five"s
    scores[2, 50:70] = 4.0
    split = word_path(scores, _speech(100, regions))
    assert split[0][1] == split[1][0]  # different words may meet without a pause
    repeats = np.array([False, True, False])
    placed = word_path(scores, _speech(100, regions), repeats=repeats)
    assert placed[0][1] < placed[1][0]  # the same word said again starts after a pause


def test_a_window_keeps_no_word_next_to_one_the_model_doubts():
    found = [Word("five", 21.0, 21.4, 0.95), Word("five", 22.0, 22.4, 0.93), Word("five", 27.0, 27.1, 0.9)]
    found += [Word("six", 27.1, 27.5, 0.01), Word("six", 28.0, 28.4, 0.8), Word("six", 29.0, 29.4, 0.8)]
    assert _kept(found, 30.0) == 2  # the "five" squeezed before the doubted "six" is not kept
    assert _kept([replace(w, probability=0.9) for w in found], 30.0) == 5  # all but the last fed word
    early = [Word("four", 0.5, 0.9, 0.02), Word("two", 1.5, 1.9, 0.03), *found[4:]]
    assert (
        _kept(early, 30.0) == 3
    )  # a window's first words lack context: their doubt is not held against them


def test_an_open_end_places_only_the_words_the_speech_holds():
    regions = [(10, 30), (50, 70)]
    scores = np.full((4, 100), -1.0)
    scores[0, 10:30] = scores[1, 50:70] = 3.0  # the last two words are not in this window
    assert word_path(scores, _speech(100, regions), open_end=True) == regions
    closed = word_path(scores, _speech(100, regions))
    assert len(closed) == 4 and all(a[1] <= b[0] for a, b in itertools.pairwise(closed))


def test_a_word_the_speech_detector_missed_is_placed_where_attention_and_loudness_put_it():
    scores = np.full((3, 100), -1.0)
    scores[0, 10:20] = scores[1, 40:50] = scores[2, 70:80] = 3.0
    weights = _speech(100, [(10, 20), (70, 80)])
    weights[40:50] = 0.5  # loud, but no VAD region
    assert word_path(scores, weights) == [(10, 20), (40, 50), (70, 80)]


def test_loudness_is_measured_against_the_nearest_pause_so_room_noise_is_not_speech():
    rate, rng = 16_000, np.random.default_rng(0)
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate // 2) / rate)
    silence, noise = (
        np.zeros(rate),
        rng.normal(0, 0.01, rate),
    )  # a pause of digital silence, one of room noise
    window = np.concatenate([silence, tone, noise, tone, silence]).astype(np.float32)
    # VAD runs 0.3 s past the first word into the noise, as Silero does
    speech = SpeechRegions(((1.0, 1.8), (2.5, 3.0)), 4.0, 1.0)
    weights = _speech_weights(window, speech, 200)
    assert (weights[50:75] == 1.0).all() and (weights[125:150] == 1.0).all()  # both words: loud and heard
    assert (weights[78:90] == 0.5).all()  # the noise VAD took for speech is not loud next to the noise
    assert (weights[90:125] == 0.0).all() and (weights[:50] == 0.0).all()


@pytest.fixture(scope="module")
def tiny_aligner(tmp_path_factory):
    model, processor = load_base(str(make_tiny_model(tmp_path_factory.mktemp("tiny"))))
    return Aligner(model, processor)


def test_any_length_is_aligned_in_windows_with_ordered_words(tiny_aligner):
    texts = ["zero one two", "three four five", "six seven", "eight nine ten"] * 12
    recording = assemble([(speech_like(t), t) for t in texts], seed=1)
    duration = len(recording.audio) / 16_000
    assert duration > 70  # three windows at least
    words = recording.transcript.split()
    speech = detect_speech(recording.audio)
    aligned = tiny_aligner.align(recording.audio, words, "en", speech)
    assert [w.word for w in aligned] == words
    assert all(0 <= w.start <= w.end <= duration for w in aligned)
    assert all(0 <= w.probability <= 1 for w in aligned)
    assert all(a.end <= b.start for a, b in itertools.pairwise(aligned))
    assert (
        aligned[-1].start > duration / 2
    )  # the later windows were reached, not everything squeezed into one


def test_short_clips_are_aligned_several_to_a_window_each_on_its_own_clock(tiny_aligner, monkeypatch):
    texts = ["zero one two", "three four", "five six seven eight", "nine", "ten eleven"] * 6
    clips = []
    for k, text in enumerate(texts):
        recording = assemble([(speech_like(text), text)], seed=k)
        clips.append(Clip(recording.audio, text.split(), detect_speech(recording.audio)))
    windows = []
    real = tiny_aligner._align_window
    monkeypatch.setattr(tiny_aligner, "_align_window", lambda *a: windows.append(a) or real(*a))
    aligned = tiny_aligner.align_packed(clips, "en")
    assert 1 < len(windows) < len(clips) / 3  # several clips to a window
    assert all(len(w[0]) <= 30 * 16_000 for w in windows)
    for clip, words in zip(clips, aligned, strict=True):
        duration = len(clip.audio) / 16_000
        assert [w.word for w in words] == list(clip.words)
        assert all(0 <= w.start <= w.end <= round(duration, 3) for w in words)  # timings are in whole ms
        assert all(a.end <= b.start for a, b in itertools.pairwise(words))


def test_a_model_trained_on_a_shorter_window_aligns_in_windows_it_can_see(tmp_path):
    model, processor = load_base(str(make_tiny_model(tmp_path)))
    trim_encoder_window(model, processor.feature_extractor, 8.0)
    aligner = Aligner(model, processor)
    recording = assemble([(speech_like(t), t) for t in ["zero one two", "three four five"] * 6], seed=2)
    words = recording.transcript.split()
    aligned = aligner.align(recording.audio, words, "en", detect_speech(recording.audio))
    assert aligner.window_seconds == 8.0 and [w.word for w in aligned] == words
    assert all(a.end <= b.start for a, b in itertools.pairwise(aligned))
    assert aligned[-1].start > len(recording.audio) / 16_000 / 2


def _offsets_on_fsdd(takes: int, seed: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets (s) of tiny.en's alignment of a recording of random FSDD takes, against each take's
    energy bounds; with `noise`, every other pause is white noise of that standard deviation."""
    files = sorted(FSDD.glob("*.wav"))
    clips = []
    for k in np.random.default_rng(seed).choice(len(files), takes, replace=False):
        samples, _ = sf.read(files[k], dtype="float32")
        clips.append((samples, DIGITS[int(re.match(r"(\d)_", files[k].name).group(1))]))
    recording = assemble(clips, seed=seed, noise=noise)
    model, processor = load_base(str(TINY_EN))
    speech = detect_speech(recording.audio)
    aligned = Aligner(model, processor).align(recording.audio, recording.transcript.split(), "en", speech)
    truth = recording.words
    starts = np.array([abs(w.start - s) for w, (_, s, _) in zip(aligned, truth, strict=True)])
    ends = np.array([abs(w.end - e) for w, (_, _, e) in zip(aligned, truth, strict=True)])
    return starts, ends


@pytest.mark.skipif(not (FSDD.exists() and TINY_EN.exists()), reason="needs ../shared (FSDD and tiny.en)")
def test_word_timings_on_real_speech_are_within_the_contract():
    starts, ends = _offsets_on_fsdd(80, seed=0)
    assert starts.mean() < 0.2 and ends.mean() < 0.2  # the contract; measured ~0.06 / ~0.09 s
    assert np.median(starts) < 0.1 and np.median(ends) < 0.1


@pytest.mark.skipif(not (FSDD.exists() and TINY_EN.exists()), reason="needs ../shared (FSDD and tiny.en)")
def test_words_next_to_room_noise_end_where_their_speech_ends():
    starts, ends = _offsets_on_fsdd(40, seed=1, noise=0.01)  # every other pause is white noise
    # measured 0.04 / 0.04 s; against the window's quietest tenth (noise taken for speech) the ends were 0.11 s off
    assert starts.mean() < 0.1 and ends.mean() < 0.1
