"""Timings a source already has (SRT, WebVTT, LRC, manifest segments) are read, normalized and used instead of
alignment."""

import json

import dagster as dg
import pytest

from whisper_assets.audio.encode import write_audio
from whisper_assets.demo.data import speech_like
from whisper_assets.demo.long_form import assemble
from whisper_assets.sources.folder import scan_folder
from whisper_assets.tables import read_rows, table_path
from whisper_assets.text.timings import (
    Cue,
    TimingsError,
    Word,
    cues_from_json,
    format_clock,
    format_srt,
    format_vtt,
    normalize_cues,
    parse_clock,
    parse_subtitles,
    settle,
)
from whisper_assets_tests.helpers import materialize_source

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Hello</i> there,

2
00:00:04,000 --> 00:00:06,250
general Kenobi!
second line
"""

VTT = """WEBVTT
Kind: captions

NOTE a comment

intro
00:00.500 --> 00:02.000 align:start
plain line

00:00:02.000 --> 00:00:04.000
<00:00:02.000><c> one</c><00:00:02.600><c> two</c><00:00:03.100><c> three</c>
"""

LRC = """[ar:Someone]
[offset:+500]
[00:10.00]<00:10.00>la <00:10.50>la <00:11.20>land <00:12.00>
[00:14.50][01:00.00]chorus line
"""


def test_clock_formats():
    assert parse_clock("01:02:03,450") == 3723.45
    assert parse_clock("02:03.5") == 123.5
    assert parse_clock("00:10.25") == 10.25
    with pytest.raises(TimingsError, match="not a time"):
        parse_clock("1.5s")


def test_written_subtitles_read_back_as_the_same_cues():
    cues = [
        Cue(0.0, 1.5, "Hello there."),
        Cue(3661.25, 3662.0, "Zdravo, kako ste?"),
        Cue(3700.0, None, "end"),
    ]
    assert format_clock(3661.25, ",") == "01:01:01,250" and format_clock(59.9996) == "00:01:00.000"
    srt = format_srt(cues)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n")
    expected = [*cues[:2], Cue(3700.0, 3700.0, "end")]
    assert parse_subtitles(srt, ".srt") == expected
    assert format_vtt(cues).startswith("WEBVTT\n") and parse_subtitles(format_vtt(cues), ".vtt") == expected


def test_srt_lines_keep_their_times_and_lose_their_tags():
    cues = parse_subtitles(SRT, ".srt")
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 3.5, "Hello there,"),
        (4.0, 6.25, "general Kenobi! second line"),
    ]


def test_vtt_inline_timestamps_time_each_word():
    plain, timed = parse_subtitles(VTT, ".vtt")
    assert (plain.start, plain.end, plain.text, plain.words) == (0.5, 2.0, "plain line", ())
    assert [(w.word, w.start, w.end) for w in timed.words] == [
        ("one", 2.0, 2.6),
        ("two", 2.6, 3.1),
        ("three", 3.1, 4.0),
    ]
    assert timed.text == "one two three"


def test_enhanced_lrc_words_offsets_and_repeated_lines():
    line, chorus, repeat = parse_subtitles(LRC, ".lrc")
    assert [(w.word, w.start, w.end) for w in line.words] == [
        ("la", 9.5, 10.0),
        ("la", 10.0, 10.7),
        ("land", 10.7, 11.5),
    ]
    assert line.end == 11.5  # the closing tag
    assert (chorus.start, chorus.end, chorus.text) == (14.0, None, "chorus line")
    assert (repeat.start, repeat.text) == (59.5, "chorus line")
    settled = settle([chorus, repeat], duration=62.0)
    assert [(c.start, c.end) for c in settled] == [(14.0, 59.5), (59.5, 62.0)]  # open lines end at the next


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("1\n00:00:01,000 --> 00:00:00,500\nbackwards\n", ".srt", "line 2: ends before it starts"),
        ("00:00.500 --> 00:02.000\nno header\n", ".vtt", "starts with 'WEBVTT'"),
        ("[ar:Someone]\njust words\n", ".lrc", "no timed lines"),
    ],
)
def test_unreadable_subtitles_say_why(text, suffix, message):
    with pytest.raises(TimingsError, match=message):
        parse_subtitles(text, suffix)


def test_settled_cues_never_overlap_or_pass_the_end():
    cues = [Cue(0.0, 5.0, "a", (Word("a", 0.5, 9.0),)), Cue(4.0, 12.0, "b")]
    first, second = settle(cues, duration=10.0)
    assert (first.end, first.words[0].end) == (4.0, 4.0)
    assert second.end == 10.0


def test_normalizing_drops_annotation_lines_and_words():
    cues = [Cue(0, 1, "[Music]"), Cue(1, 2, "Hi", (Word("Hi,", 1, 1.5), Word("(laughs)", 1.5, 2)))]
    strip = {"[Music]": "", "(laughs)": "", "Hi,": "hi"}
    [cue] = normalize_cues(cues, lambda t: strip.get(t, t))
    assert (cue.text, [w.word for w in cue.words]) == ("hi", ["hi"])


def test_a_folder_reads_subtitles_as_timed_transcripts(tmp_path):
    for name in ("a", "b", "c", "d"):
        write_audio(tmp_path / f"{name}.wav", speech_like("one two"), 16_000)
    (tmp_path / "a.srt").write_text(SRT, encoding="utf-8")
    (tmp_path / "a.txt").write_text("ignored: the subtitles carry more", encoding="utf-8")
    (tmp_path / "b.lrc").write_text("[ar:x]\n", encoding="utf-8")
    segments = [{"start": 0.1, "end": 0.9, "text": "one two"}]
    (tmp_path / "items.jsonl").write_text(
        json.dumps({"audio": "c.wav", "segments": segments})
        + "\n"
        + json.dumps({"audio": "d.wav", "segments": [{"start": "x"}]})
        + "\n",
        encoding="utf-8",
    )
    entries = {e.rel_path: e for e in scan_folder(tmp_path, "en")}
    assert entries["a.wav"].transcript == "Hello there, general Kenobi! second line"
    assert [c.start for c in cues_from_json(entries["a.wav"].timings)] == [1.0, 4.0]
    assert entries["b.wav"].problem == "subtitles b.lrc: no timed lines"
    assert (entries["c.wav"].transcript, entries["c.wav"].problem) == ("one two", None)
    assert "segment 0: needs numeric start and end" in entries["d.wav"].problem
    assert not any(rel.endswith((".srt", ".txt", ".lrc")) for rel in entries)  # all claimed by their audio


def srt_clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"00:{int(minutes):02d}:{rest:06.3f}".replace(".", ",")


PHRASES = ["Zero one two.", "Three, four five!", "Six seven?", "Eight nine ten."]


def test_a_subtitled_long_recording_is_cut_at_its_own_lines_without_an_alignment_model(make_settings):
    settings = make_settings(
        sources=[
            {
                "name": "talks",
                "language": "en",
                "karaoke": True,
                "transcripts": {"remove_punctuation": True, "lowercase": True},
            }
        ],
        training={"base_model": "/nowhere/no-model"},  # loading it would fail: nothing may align
    )
    folder = settings.layout.uploads_root / "talks"
    recording = assemble([(speech_like(p), p) for p in PHRASES * 10], seed=5)
    write_audio(folder / "lecture.flac", recording.audio, 16_000)
    srt = "\n".join(
        f"{k + 1}\n{srt_clock(start)} --> {srt_clock(end)}\n{text}\n"
        for k, (text, start, end) in enumerate(recording.words)
    )
    (folder / "lecture.srt").write_text(srt, encoding="utf-8")
    write_audio(folder / "song.wav", speech_like("la la land"), 16_000)
    (folder / "song.lrc").write_text("[00:00.10]<00:00.10>La <00:00.40>la <00:00.70>land! <00:01.00>\n")

    config = settings.data_root / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        result = materialize_source(config, "talks", instance, workers=1)
    assert result.success
    rows = read_rows(table_path(settings.layout.tables_root, "segments", "talks"))
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["segments"]]
    assert "alignment_error" not in event.materialization.metadata

    lecture = [r for r in rows if r["rel_path"] == "lecture.flac"]
    assert len(lecture) >= 3 and all(r["status"] == "ok" and r["timed_by"] == "source" for r in lecture)
    transcripts = read_rows(table_path(settings.layout.tables_root, "normalized_transcripts", "talks"))
    [normalized] = [r["transcript"] for r in transcripts if r["rel_path"] == "lecture.flac"]
    assert " ".join(r["transcript"] for r in lecture) == normalized
    assert normalized == " ".join(p.lower().replace(",", "").rstrip(".!?") for p in PHRASES * 10)
    for row in lecture:  # every cut falls in a pause between two lines, never inside one
        end = row["offset"] + row["duration"]
        assert not any(s < cut < e for _, s, e in recording.words for cut in (row["offset"], end))
        assert row["duration"] <= 30

    doc = json.loads(
        (settings.layout.outputs_root / lecture[0]["parent_id"] / "transcription_base.json").read_text()
    )
    assert doc["timed_by"] == "the source" and "lines" in doc["segments"][0]
    [song] = [r for r in rows if r["rel_path"] == "song.wav"]
    song_doc = json.loads((settings.layout.outputs_root / song["id"] / "transcription_base.json").read_text())
    assert [(w["word"], w["start"], w["end"]) for w in song_doc["segments"][0]["words"]] == [
        ("la", 0.1, 0.4),
        ("la", 0.4, 0.7),
        ("land", 0.7, 1.0),
    ]
    karaoke = (settings.layout.outputs_root / song["id"] / "karaoke.lrc").read_text()
    assert "<00:00.10>la <00:00.40>la <00:00.70>land <00:01.00>" in karaoke
