"""Speaker ids: embeddings clustered into speakers, stable names, overrides, diarization and its error rate."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from whisper_assets.audio.encode import write_audio
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.demo.data import EN_SENTENCES, espeak_available, synthesize
from whisper_assets.speakers.analysis import ORIGIN_CLUSTER, ORIGIN_OVERRIDE, Utterance, analyze_speakers
from whisper_assets.speakers.clustering import cluster_embeddings, name_clusters, nmi, purity
from whisper_assets.speakers.diarization import Turn, diarization_error_rate, diarize, speech_windows
from whisper_assets.speakers.embeddings import SpeakerEncoder
from whisper_assets.speakers.policy import SpeakerPolicy
from whisper_assets_tests.helpers import FSDD

pytest.importorskip("resemblyzer", reason="the speakers extra is not installed")
NEEDS_ESPEAK = pytest.mark.skipif(not espeak_available(), reason="espeak-ng makes the distinct voices")
# Three espeak-ng voices Resemblyzer tells apart (its variants of one accent sound alike to it; bench/speakers.py).
VOICES = ("en-029+f3", "en-gb-scotland+m7", "en-us+m1")


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def voice_clips(tmp_path_factory) -> list[tuple[str, str]]:
    """(path, voice) for four sentences in each voice, as 22.05 kHz FLAC files."""
    folder = tmp_path_factory.mktemp("voices")
    clips = []
    for voice in VOICES:
        for i, text in enumerate(EN_SENTENCES[:4]):
            path = folder / f"{voice}_{i}.flac"
            write_audio(path, *synthesize(text, voice))
            clips.append((str(path), voice))
    return clips


def utterances(clips: list[tuple[str, str]]) -> list[Utterance]:
    return [Utterance(f"u{i}", path, f"key{i}", f"rec{i}.flac") for i, (path, _) in enumerate(clips)]


@NEEDS_ESPEAK
def test_clustering_separates_generated_voices_and_reruns_from_the_cache(voice_clips, encoder, tmp_path):
    items = utterances(voice_clips)
    analysis = analyze_speakers(items, tmp_path, SpeakerPolicy(), encoder)
    truth = [voice for _, voice in voice_clips]
    predicted = [analysis.clusters[u.name] for u in items]
    assert len(set(predicted)) == len(VOICES)
    assert purity(truth, predicted) == 1.0 and nmi(truth, predicted) == pytest.approx(1.0)
    assert set(analysis.origins.values()) == {ORIGIN_CLUSTER}
    assert np.load(tmp_path / "embeddings.npy").shape == (len(items), 256)
    assert sorted(p.name for p in (tmp_path / "cluster_samples").iterdir()) == [
        f"speaker_{n}_sample.flac" for n in range(len(VOICES))
    ]

    again = analyze_speakers(items, tmp_path, SpeakerPolicy(), encoder)
    assert analysis.embedded_now == len(items) and again.embedded_now == 0
    assert again.speakers == analysis.speakers


@NEEDS_ESPEAK
def test_overrides_win_over_clusters_and_labels(voice_clips, encoder, tmp_path):
    items = utterances(voice_clips)
    items[1] = Utterance(items[1].name, items[1].audio, items[1].key, items[1].file, label="labelled")
    overrides = {items[0].file: "alice", items[1].name: "bob", "missing.wav": "carol"}
    analysis = analyze_speakers(items, tmp_path, SpeakerPolicy(), encoder, overrides)
    assert analysis.speakers[items[0].name] == "alice" and analysis.speakers[items[1].name] == "bob"
    assert analysis.origins[items[0].name] == analysis.origins[items[1].name] == ORIGIN_OVERRIDE
    assert analysis.speakers[items[2].name].startswith("speaker_")
    assert analysis.unmatched_overrides == ["missing.wav"]


def test_cluster_names_survive_new_recordings():
    before = name_clusters(["a1", "a2", "b1"], [0, 0, 1])
    assert before == {"a1": "speaker_0", "a2": "speaker_0", "b1": "speaker_1"}
    # A new voice arrives and outnumbers both: the known ones keep their names, the new one gets the next.
    after = name_clusters(["c1", "c2", "c3", "a1", "a2", "b1"], [5, 5, 5, 2, 2, 9], before)
    assert after["a1"] == after["a2"] == "speaker_0" and after["b1"] == "speaker_1"
    assert after["c1"] == after["c3"] == "speaker_2"


def test_speaker_bounds_override_the_threshold():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(12, 16))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert len(set(cluster_embeddings(embeddings, SpeakerPolicy()))) > 2  # random voices: all far apart
    assert len(set(cluster_embeddings(embeddings, SpeakerPolicy(max_speakers=2)))) == 2
    same = np.tile(embeddings[:1], (6, 1)) + rng.normal(scale=1e-3, size=(6, 16))
    assert len(set(cluster_embeddings(same, SpeakerPolicy()))) == 1
    assert len(set(cluster_embeddings(same, SpeakerPolicy(min_speakers=3)))) == 3
    with pytest.raises(ValueError, match="min_speakers"):
        SpeakerPolicy(min_speakers=3, max_speakers=2)


def test_diarization_error_rate_counts_missed_false_alarm_and_confusion():
    reference = [Turn(0, 2, "a"), Turn(2, 4, "b")]
    assert diarization_error_rate(reference, [Turn(0, 2, "x"), Turn(2, 4, "y")]) == 0.0  # names are mapped
    assert diarization_error_rate(reference, [Turn(0, 4, "x")]) == pytest.approx(0.5)  # confusion
    assert diarization_error_rate(reference, [Turn(0, 2, "x")]) == pytest.approx(0.5)  # missed
    assert diarization_error_rate(reference, [*reference, Turn(4, 5, "b")]) == pytest.approx(
        0.25
    )  # false alarm
    with pytest.raises(ValueError, match="no speech"):
        diarization_error_rate([], reference)


def test_speech_windows_cover_each_region():
    windows = speech_windows([(0.0, 3.2), (4.0, 4.3)])
    assert windows == [(0.0, 1.5), (1.5, 3.2), (4.0, 4.3)]  # the 0.2 s tail joins the window before


@NEEDS_ESPEAK
def test_diarize_finds_the_turns_of_assembled_voices(voice_clips, encoder):
    import soundfile as sf

    pause = np.zeros(8_000, np.float32)
    audio, reference, now = [], [], 0.0
    for i in range(6):
        path, voice = voice_clips[(i % 3) * 4 + i // 3]
        clip = to_mono_16k(*sf.read(path, dtype="float32"))
        audio += [pause, clip]
        reference.append(Turn(now + 0.5, now + 0.5 + len(clip) / 16_000, voice))
        now = reference[-1].end
    turns = diarize(np.concatenate(audio), encoder, SpeakerPolicy(max_speakers=3))
    assert diarization_error_rate(reference, turns) < 0.25


@pytest.mark.slow
@pytest.mark.skipif(not (FSDD / "metadata.csv").exists(), reason="needs ../shared/data/fsdd-dev")
def test_fsdd_speakers_cluster_with_purity_above_target(encoder, tmp_path):
    with (FSDD / "metadata.csv").open() as handle:
        rows = list(csv.DictReader(handle))[::4]
    items = [
        Utterance(r["file_name"], str(FSDD / r["file_name"]), r["file_name"], r["file_name"]) for r in rows
    ]
    analysis = analyze_speakers(items, tmp_path, SpeakerPolicy(), encoder)
    predicted = [analysis.clusters[u.name] for u in items]
    assert purity([r["speaker_id"] for r in rows], predicted) >= 0.95
