"""Speakers of an unlabeled source in the splits, and the TTS dataset workflow: preprocessed clips at the TTS
rate -> speaker ids -> a DatasetDict loadable with load_from_disk; each step leaves earlier outputs untouched."""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest
import soundfile as sf
import yaml

from whisper_assets.audio.encode import write_audio
from whisper_assets.curation.manifests import read_manifest
from whisper_assets.demo.data import EN_SENTENCES, espeak_available, synthesize
from whisper_assets.tts.preprocess import TtsClip, preprocess, tts_clips
from whisper_assets.tts.profile import TtsProfile
from whisper_assets.tts.versions import current_version
from whisper_assets_tests.helpers import materialize_source, run_job

pytest.importorskip("resemblyzer", reason="the speakers extra is not installed")
VOICES = ("en-029+f3", "en-gb-scotland+m7", "en-us+m1")


@pytest.fixture
def unlabeled_source(tmp_path, make_settings):
    """An upload folder of three voices with no speaker labels, clustered, with a TTS profile."""
    if not espeak_available():
        pytest.skip("espeak-ng makes the distinct voices")
    folder = tmp_path / "uploads" / "voices"
    for voice in VOICES:
        for i, text in enumerate(EN_SENTENCES[:6]):
            write_audio(folder / f"{voice}_{i}.wav", *synthesize(text, voice))
            (folder / f"{voice}_{i}.txt").write_text(text, encoding="utf-8")
    source = {"name": "voices", "speakers": {"cluster": True}, "tts": {"sample_rate": 24_000}}
    make_settings(sources=[source], splits={"train": 0.34, "validation": 0.33, "test": 0.33})
    return tmp_path / "whisper_assets.yaml"


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_unlabeled_source_gets_speakers_speaker_disjoint_splits_and_a_tts_dataset(unlabeled_source, tmp_path):
    from datasets import load_from_disk

    with dg.instance_for_test() as instance:
        materialize_source(unlabeled_source, "voices", instance)
        run_job(unlabeled_source, "publish_splits", instance)
        splits_of = defaultdict(set)
        for split in ("train", "validation", "test"):
            for row in read_manifest(tmp_path / "manifests" / "splits" / f"{split}.jsonl"):
                splits_of[row["speaker"]].add(split)
        assert len(splits_of) == len(VOICES)  # one clustered speaker per voice
        assert all(len(splits) == 1 for splits in splits_of.values())  # speaker-disjoint
        assert all(speaker.startswith("speaker_") for speaker in splits_of)

        run_job(unlabeled_source, "build_tts_dataset", instance, partition_key="voices")
        root = tmp_path / "tts" / "voices"
        dataset_folder = current_version(root / "dataset", "tts_dataset")
        dataset = load_from_disk(str(dataset_folder))
        assert set(dataset) == {"train", "validation"}
        assert {"audio", "text", "speaker_id"} <= set(dataset["train"].column_names)
        assert len(set(dataset["train"]["speaker_id"])) == len(VOICES)
        assert set(dataset["validation"]["speaker_id"]) == set(dataset["train"]["speaker_id"])
        row = dataset["train"][0]
        assert sf.info(io.BytesIO(row["audio"]["bytes"])).samplerate == 24_000
        assert row["text"] in EN_SENTENCES
        card = (dataset_folder / "README.md").read_text()
        assert "Hours per speaker" in card and "speaker_0" in card

        # A new profile makes new version folders; the earlier ones stay byte for byte.
        earlier = {
            step: current_version(root / step, step) for step in ("preprocessed", "speakers", "dataset")
        }
        before = {step: snapshot(folder) for step, folder in earlier.items()}
        config = yaml.safe_load(unlabeled_source.read_text())
        config["sources"][0]["tts"]["loudness_lufs"] = -23.0
        unlabeled_source.write_text(yaml.safe_dump(config))
        run_job(unlabeled_source, "build_tts_dataset", instance, partition_key="voices")
        for step, folder in earlier.items():
            assert current_version(root / step, step) != folder
            assert snapshot(folder) == before[step]


def test_tts_assets_need_a_profile(tmp_path, make_settings, write_clip):
    write_clip(tmp_path / "uploads" / "plain" / "a.wav", "hello there")
    (tmp_path / "uploads" / "plain" / "a.txt").write_text("hello there")
    make_settings(sources=[{"name": "plain"}])
    config = tmp_path / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        materialize_source(config, "plain", instance)
        with pytest.raises(dg.Failure, match="no `tts:` profile"):
            run_job(config, "build_tts_dataset", instance, partition_key="plain")


def test_segments_of_trimmed_recordings_are_rejected_with_a_reason():
    inventory = [
        {"id": "r", "abs_path": "/x/r.wav", "sha256": "0" * 64, "rel_path": "r.wav", "speaker": None},
    ]
    segments = [
        {"id": "r-s000", "parent_id": "r", "offset": 1.0, "duration": 2.0, "transcript": "a"},
        {"id": "r-s001", "parent_id": "r", "offset": 3.0, "duration": 2.0, "transcript": "b"},
    ]
    clips, rejected = tts_clips(segments, inventory, trimmed=True)
    assert clips == [] and [r["id"] for r in rejected] == ["r-s000", "r-s001"]
    assert "trim_silence" in rejected[0]["reason"]
    clips, rejected = tts_clips(segments, inventory, trimmed=False)
    assert [(c.offset, c.duration) for c in clips] == [(1.0, 2.0), (3.0, 2.0)] and rejected == []


def test_preprocess_cuts_bounds_and_rejects_without_losing_anything(tmp_path, write_clip):
    recording = write_clip(tmp_path / "in" / "long.flac", "one two three four five six", seconds=6.0)
    broken = tmp_path / "in" / "broken.wav"
    broken.write_bytes(b"RIFF not really")

    def clip(name: str, path: Path, offset: float, duration: float | None) -> TtsClip:
        return TtsClip(name, str(path), name, path.name, offset, duration, "text", None)

    clips = [
        clip("a", recording, 0.0, 2.0),
        clip("b", recording, 2.0, 0.3),  # too short
        clip("c", broken, 0.0, None),
    ]
    profile = TtsProfile(sample_rate=16_000, trim=False, min_seconds=1.0)
    result = preprocess(clips, profile, tmp_path / "tts")
    assert [r["id"] for r in result.rows] == ["a"] and result.rows[0]["duration"] == pytest.approx(
        2.0, abs=0.01
    )
    reasons = {r["id"]: r["reason"] for r in result.rejected}
    assert "outside 1 to 15 s" in reasons["b"] and "cannot decode" in reasons["c"]
    assert (result.folder / "wavs" / "a.wav").exists() and result.cut_now == 2
    again = preprocess(clips, profile, tmp_path / "tts")
    assert again.folder == result.folder and again.reused and again.cut_now == 0
