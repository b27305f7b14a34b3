"""Long recordings into training utterances: cuts at pauses, doubtful segments dropped, the Dagster step."""

import json

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper_assets.audio.encode import write_audio
from whisper_assets.audio.vad import SpeechRegions
from whisper_assets.defs.ingest import RERUN_TAG
from whisper_assets.demo.data import speech_like
from whisper_assets.demo.long_form import assemble
from whisper_assets.segmentation.policy import SegmentationSettings
from whisper_assets.segmentation.segments import doubt, repeated_run, unclaimed_speech
from whisper_assets.segmentation.timing_files import karaoke_lrc
from whisper_assets.tables import read_rows, table_path
from whisper_assets.text.cuts import Span, cut_points, phrases
from whisper_assets.text.timings import Word
from whisper_assets_tests.helpers import materialize_source, run_job
from whisper_assets_tests.training_fixtures import make_tiny_model


@st.composite
def aligned_words(draw):
    count = draw(st.integers(1, 120))
    words, at = [], round(draw(st.floats(0, 3)), 3)
    for k in range(count):
        at += draw(st.floats(0, 2.5))  # pause before the word (none at all is allowed)
        length = draw(st.floats(0.02, 1.5))
        words.append(Word(f"w{k}", round(at, 3), round(at + length, 3), 0.9))
        at = round(at + length, 3)
    return words, at + draw(st.floats(0, 3))


@settings(max_examples=200, deadline=None)
@given(aligned_words(), st.floats(5, 30))
def test_cuts_cover_every_word_in_order_within_the_limit_and_never_inside_a_word(case, max_seconds):
    words, duration = case
    spans = cut_points(words, duration, max_seconds, pad=0.3)
    assert [k for s in spans for k in range(s.first, s.last + 1)] == list(range(len(words)))
    for span, following in zip(spans, [*spans[1:], None], strict=True):
        assert 0 <= span.start <= words[span.first].start and words[span.last].end <= span.end <= duration
        assert span.duration <= max_seconds + 1e-6 or span.first == span.last  # one over-long word alone
        if following:
            assert span.end <= following.start  # no audio in two segments, so no word cut in two
    joined = " ".join(" ".join(w.word for w in words[s.first : s.last + 1]) for s in spans)
    assert joined == " ".join(w.word for w in words)


def test_cuts_prefer_the_widest_pause():
    words = [Word("a", 0, 4, 1), Word("b", 4.1, 8, 1), Word("c", 10, 14, 1), Word("d", 14.1, 18, 1)]
    spans = cut_points(words, 20, max_seconds=15, pad=0.3)
    assert [(s.first, s.last) for s in spans] == [(0, 1), (2, 3)]
    assert spans[0].end == pytest.approx(8.3) and spans[1].start == pytest.approx(9.7)


@pytest.mark.parametrize(
    ("words", "reason"),
    [
        ([Word("a", 0, 0.4, 0.9), Word("b", 0.5, 6.0, 0.9)], "implausible word duration: 'b' lasts 5.5 s"),
        ([Word(w, 1, 1, 0.9) for w in "abc"] + [Word("d", 1, 2, 0.9)], "75% of words last under 20 ms"),
        ([Word("a", 0, 0.4, 0.1), Word("b", 0.5, 0.9, 0.2)], "low alignment probability 0.15 < 0.3"),
        ([Word("a", 0, 0.4, 0.9), Word("b", 0.5, 0.9, 0.8)], None),
    ],
)
def test_doubtful_alignments_are_named(words, reason):
    found = doubt(words, SegmentationSettings())
    assert found == reason if reason is None else reason in found


def test_a_run_of_one_word_is_counted_beyond_the_segment_that_holds_part_of_it():
    words = [Word(w, k, k + 0.5) for k, w in enumerate("one zero zero zero zero zero two no no no".split())]
    assert repeated_run(words, 4, 6) == ("zero", 5)  # two of five "zero"s and a "two"
    assert repeated_run(words, 7, 9) == ("no", 3)
    assert repeated_run(words, 0, 0) == ("one", 1)


def test_speech_no_word_of_a_segment_lies_on_means_its_text_is_not_what_is_said():
    speech = SpeechRegions(((1.0, 1.4), (2.0, 2.5), (3.0, 3.3), (5.9, 6.4)), 7.0, 0.9)
    span = Span(0, 1, 0.7, 6.0)  # ends 0.1 s into the next segment's first word
    words = [Word("zero", 1.0, 1.4), Word("zero", 2.0, 2.5), Word("zero", 3.0, 3.3)]
    assert unclaimed_speech(words, span, speech) is None
    reason = unclaimed_speech([words[0], words[2]], span, speech)  # a repeated word lost
    assert reason is not None and reason.startswith("speech without a word at 2.00-2.50 s")


def test_phrases_break_at_long_pauses_and_are_relative_to_the_audio():
    words = [Word("a", 10.0, 10.4), Word("b", 10.5, 11.0), Word("c", 11.6, 12.0), Word("d", 12.1, 13.5)]
    assert phrases(words, 9.8, 13.2) == [[0.2, 1.2, "a b"], [1.8, 3.4, "c d"]]  # clipped to the audio


def test_karaoke_lines_tag_every_word():
    doc = {
        "language": "en",
        "duration": 75.5,
        "segments": [
            {"start": 61.0, "end": 63.0, "words": [{"word": "la", "start": 61.2, "end": 61.5}]},
        ],
    }
    assert karaoke_lrc(doc).splitlines() == [
        "[la:en]",
        "[length:01:15.50]",
        "[01:01.00]<01:01.20>la <01:01.50>",
    ]


PHRASES = ["zero one two", "three four five", "six seven", "eight nine ten"]


@pytest.fixture
def long_source(make_settings, tmp_path):
    base = make_tiny_model(tmp_path / "base")
    settings = make_settings(
        sources=[{"name": "talks", "language": "en", "karaoke": True}],
        training={"base_model": str(base)},
        # A random model's token probabilities are ~1/vocabulary: the probability check is for real models.
        segmentation={"min_probability": 0.0, "max_short_word_share": 1.0, "max_word_seconds": 60},
        splits={"train": 0.34, "validation": 0.33, "test": 0.33},
    )
    folder = settings.layout.uploads_root / "talks"
    recording = assemble([(speech_like(p), p) for p in PHRASES * 14], seed=3)
    write_audio(folder / "lecture.flac", recording.audio, 16_000)
    (folder / "lecture.txt").write_text(recording.transcript, encoding="utf-8")
    for k, phrase in enumerate(PHRASES):
        write_audio(folder / f"short{k}.wav", speech_like(phrase), 16_000)
        (folder / f"short{k}.txt").write_text(phrase, encoding="utf-8")
    return settings, recording


def test_a_long_recording_becomes_segments_with_timings_and_a_karaoke_file(long_source):
    settings, recording = long_source
    config = settings.data_root / "whisper_assets.yaml"
    tables = settings.layout.tables_root
    with dg.instance_for_test() as instance:
        first = materialize_source(config, "talks", instance, workers=1)
        assert first.success
        rows = read_rows(table_path(tables, "segments", "talks"))
        assert run_job(config, "publish_splits", instance, workers=1).success
        outputs = sorted(settings.layout.outputs_root.rglob("*.*"))
        written = [path.stat().st_mtime_ns for path in outputs]
        again = materialize_source(
            config, "talks", instance, workers=1, tags={RERUN_TAG: "1"}
        )  # every step again

    lecture = [r for r in rows if r["rel_path"] == "lecture.flac"]
    assert len(recording.audio) / 16_000 > 90 and len(lecture) >= 4
    assert all(r["status"] == "ok" and r["duration"] <= 30 for r in lecture)
    assert " ".join(r["transcript"] for r in lecture) == recording.transcript
    parent = lecture[0]["parent_id"]
    assert [r["id"] for r in lecture] == [f"{parent}-s{k:03d}" for k in range(len(lecture))]
    assert sorted(r["offset"] for r in lecture) == [r["offset"] for r in lecture]

    doc = json.loads((settings.layout.outputs_root / parent / "transcription_base.json").read_text())
    words = [w for segment in doc["segments"] for w in segment["words"]]
    assert [w["word"] for w in words] == recording.transcript.split()
    assert all(0 <= w["start"] <= w["end"] <= doc["duration"] for w in words)
    lrc = (settings.layout.outputs_root / parent / "karaoke.lrc").read_text()
    assert lrc.count("<") == len(words) + len(doc["segments"])
    text = (settings.layout.outputs_root / parent / "transcription_base.txt").read_text()
    assert text.split() == recording.transcript.split()

    shorts = [r for r in rows if r["rel_path"].startswith("short")]
    assert all(r["id"] == r["parent_id"] and r["status"] == "ok" and not r["reason"] for r in shorts)
    assert all(r["timed_by"] == "alignment" and not r["reused"] for r in shorts)  # aligned (packed) this run
    [event] = [e for e in first.get_asset_materialization_events() if e.asset_key.path == ["segments"]]
    aligned = event.materialization.metadata["audio_seconds_aligned"].value
    assert (
        aligned >= len(recording.audio) / 16_000
        and event.materialization.metadata["aligned_per_second"].value > 0
    )

    manifests = settings.layout.manifests_root / "splits"
    split_of = {
        json.loads(line)["id"]: name
        for name in ("train", "validation", "test")
        for line in (manifests / f"{name}.jsonl").read_text().splitlines()
    }
    assert {split_of[r["id"]] for r in lecture} == {split_of[lecture[0]["id"]]}  # one recording, one split
    assert set(split_of) == {r["id"] for r in rows}
    published = {
        item["id"]: item
        for name in ("train", "validation", "test")
        for item in map(json.loads, (manifests / f"{name}.jsonl").read_text().splitlines())
    }
    for row in lecture:  # phrases for timestamped training: the segment's words, within its audio
        phrases = published[row["id"]]["timestamps"]
        assert " ".join(text for _, _, text in phrases) == row["transcript"]
        assert all(0 <= start <= end <= row["duration"] for start, end, _ in phrases)

    [event] = [e for e in again.get_asset_materialization_events() if e.asset_key.path == ["segments"]]
    assert event.materialization.metadata["aligned_now"].value == 0  # a re-run aligns nothing again
    assert sorted(settings.layout.outputs_root.rglob("*.*")) == outputs  # ... and rewrites no timing file
    assert [path.stat().st_mtime_ns for path in outputs] == written


def test_a_ten_minute_item_is_processed_and_segmented_in_bounded_memory(tmp_path):
    import tracemalloc

    from whisper_assets.audio.policy import AudioPolicy
    from whisper_assets.curation.processing import ProcessJob, process_items
    from whisper_assets.segmentation.segments import (
        LazyAligner,
        SegmentJob,
        SegmentPaths,
        segment_items,
    )
    from whisper_assets.sources.folder import FolderSource

    recording = assemble([(speech_like(p), p) for p in PHRASES * 110], seed=5)
    seconds = len(recording.audio) / 16_000
    assert seconds > 600
    source = tmp_path / "ten minutes.flac"
    write_audio(source, recording.audio, 16_000)
    decoded_bytes = len(recording.audio) * 4
    del recording
    model = str(make_tiny_model(tmp_path / "base"))
    tracemalloc.start()
    [row] = process_items(
        [ProcessJob("x", "s", "t.flac", str(source), str(tmp_path / "x.wav"), AudioPolicy())]
    )
    processing_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    job = SegmentJob(
        "x",
        "s",
        "t.flac",
        row["audio"],
        row["duration"],
        " ".join(PHRASES * 110),
        "en",
        SpeechRegions(tuple(map(tuple, json.loads(row["speech_regions"]))), row["duration"], 1.0),
    )
    rows = segment_items(
        [job],
        FolderSource(name="s", language="en"),
        LazyAligner(model),
        SegmentationSettings(min_probability=0, max_short_word_share=1, max_word_seconds=60),
        SegmentPaths(tmp_path / "cache", tmp_path / "outputs", tmp_path / "processed"),
    )
    segmenting_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert row["status"] == "needs_segmentation" and len(rows) >= 20, rows[0]["reason"]
    # A few copies of the decoded audio at most (float32 decode, 16-bit write, VAD's padded copy).
    assert processing_peak < 4 * decoded_bytes
    assert segmenting_peak < 2 * decoded_bytes  # one copy of the item plus one window at a time


def test_a_model_that_cannot_be_loaded_fails_fast_and_is_remembered(tmp_path, monkeypatch):
    import time

    from whisper_assets.asr import model
    from whisper_assets.segmentation import segments

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    first = segments.LazyAligner("no-such-owner/no-such-whisper", tmp_path / "failures")
    started = time.monotonic()
    assert first.get() is None
    assert time.monotonic() - started < 15  # no minute of hub retries
    assert "cannot be reached" in first.error or "not found" in first.error.lower()

    def must_not_load(model_id):
        raise AssertionError("a remembered failure is not tried again")

    monkeypatch.setattr(model, "load_base", must_not_load)  # segments imports it when it loads a model
    again = segments.LazyAligner("no-such-owner/no-such-whisper", tmp_path / "failures")
    assert again.get() is None and "min ago" in again.error
    monkeypatch.setattr(segments, "RETRY_FAILED_LOAD_SECONDS", -1)
    with pytest.raises(AssertionError, match="not tried again"):
        segments.LazyAligner("no-such-owner/no-such-whisper", tmp_path / "failures").get()


def test_model_steps_use_every_core():
    import torch

    from whisper_assets.parallel import default_workers, use_all_cores

    torch.set_num_threads(1)  # as a forked step process or a library may leave it
    assert use_all_cores() == default_workers() == torch.get_num_threads()


@pytest.mark.parametrize(
    ("text", "heard", "language", "cer"),
    [
        ("eight three six zero", "8, 3, 6, 0.", "en", 0.0),  # numbers spelled or written agree
        ("eight three six zero", "8 3 6", "en", 0.25),
        ("dobro jutro", "Добро јутро!", "sr", 0.0),  # scripts fold
        ("four seven zero eight", "", "en", 1.0),
    ],
)
def test_the_transcription_check_compares_what_was_said_not_how_it_is_written(text, heard, language, cer):
    from whisper_assets.asr.metrics import agreement_cer

    assert agreement_cer(text, heard, language) == pytest.approx(cer)


def test_a_cut_whose_pause_holds_speech_of_its_own_drops_both_neighbours(tmp_path):
    """Words aligned one take too early at a cut: the take after the pause belongs to no word, and the segment
    before ends with a word whose audio is in the next one. Neither is kept."""
    import numpy as np

    from whisper_assets.segmentation.segments import (
        LazyAligner,
        SegmentJob,
        SegmentPaths,
        _alignment_path,
        _segment,
    )

    audio = tmp_path / "item.wav"
    write_audio(audio, np.zeros(40 * 16_000, dtype=np.float32), 16_000)
    takes = [(1.0 + 2 * k, 1.5 + 2 * k) for k in range(19)]  # one word every 2 s
    speech = SpeechRegions(tuple(takes), 40.0, 0.9)
    words = [Word(f"w{k}", s, e, 0.9) for k, (s, e) in enumerate(takes)]
    lost = 9  # the alignment skipped take 9: the pause of the cut after w8 holds it
    placed = [*words[:lost], *(Word(w.word, *takes[k + 1], 0.9) for k, w in enumerate(words[lost:-1], lost))]
    job = SegmentJob("x", "s", "item.wav", str(audio), 40.0, " ".join(w.word for w in placed), "en", speech)
    aligner = LazyAligner("never-loaded")
    path = _alignment_path(job, aligner, tmp_path / "cache")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([w.to_json() for w in placed]))
    rows = _segment(
        job,
        aligner,
        SegmentationSettings(),
        20.0,
        False,
        SegmentPaths(tmp_path / "cache", tmp_path / "outputs", tmp_path / "processed"),
    )
    around = [r for r in rows if r["offset"] < takes[lost][0] < r["offset"] + r["duration"] + 2.5]
    assert len(rows) >= 2 and around
    assert all(r["status"] == "dropped" and "edge word" in r["reason"] for r in around)
