import shutil
from dataclasses import replace

import pytest
import soundfile as sf

from whisper_assets.audio.decode import probe
from whisper_assets.audio.encode import write_audio
from whisper_assets.audio.fingerprint import file_sha256
from whisper_assets.curation.dedup import (
    DedupCandidate,
    PairVerdicts,
    audio_identities,
    find_duplicates,
    identity_cache_path,
    open_landmark_store,
)
from whisper_assets.demo.data import espeak_available, synthesize
from whisper_assets_tests.helpers import FSDD


def candidates(paths_by_source, cache_root):
    rows = []
    for source, paths in paths_by_source.items():
        for path in paths:
            rows.append((source, path, file_sha256(path), probe(path)))
    identities = audio_identities({sha: str(p) for _, p, sha, _ in rows}, cache_root)
    return [
        DedupCandidate(
            f"{s}-{p.name}", s, p.name, sha, info.lossless, info.sample_rate, identities[sha], str(p)
        )
        for s, p, sha, info in rows
    ]


def by_id(rows):
    return {r["id"]: r for r in rows}


def test_reencoded_and_copied_audio_are_duplicates_with_a_deterministic_canonical(tmp_path, write_clip):
    original = write_clip(tmp_path / "a.wav", "the quick brown fox", rate=22_050)
    mp3 = write_clip(tmp_path / "b.mp3", "the quick brown fox", rate=22_050)
    flac = tmp_path / "c.flac"  # a lossless conversion, as sox or ffmpeg would make it
    pcm, rate = sf.read(original, dtype="int16")
    sf.write(flac, pcm, rate)
    copy = tmp_path / "d.wav"
    shutil.copy(original, copy)
    other = write_clip(tmp_path / "e.wav", "something else entirely", rate=22_050)
    rows = by_id(find_duplicates(candidates({"s": [mp3, original, flac, copy, other]}, tmp_path / "cache")))

    assert rows["s-a.wav"]["is_canonical"]  # lossless before lossy, then path order
    assert rows["s-d.wav"]["duplicate_kind"] == "exact"
    assert rows["s-c.flac"]["duplicate_kind"] == "content"  # identical PCM, different bytes
    assert rows["s-c.flac"]["pcm_sha256"] == rows["s-a.wav"]["pcm_sha256"]
    assert rows["s-b.mp3"]["duplicate_kind"] == "content"  # lossy: the waveforms line up
    assert rows["s-b.mp3"]["similarity"] > 0.93
    assert {rows[k]["canonical_id"] for k in ("s-b.mp3", "s-c.flac", "s-d.wav")} == {"s-a.wav"}
    assert rows["s-e.wav"]["is_canonical"] and rows["s-e.wav"]["cluster_size"] == 1


def test_duplicates_are_found_across_sources_and_identity_is_cached(tmp_path, write_clip):
    a = write_clip(tmp_path / "one" / "x.wav", "shared sentence", rate=16_000)
    b = write_clip(tmp_path / "two" / "y.mp3", "shared sentence", rate=44_100, stereo=True)
    rows = by_id(find_duplicates(candidates({"src-a": [a], "src-b": [b]}, tmp_path / "cache")))
    assert rows["src-b-y.mp3"]["canonical_id"] == "src-a-x.wav"
    assert identity_cache_path(tmp_path / "cache", file_sha256(b)).exists()


def test_undecodable_audio_is_reported_not_raised(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 100)
    identities = audio_identities({"abc": str(bad)}, tmp_path / "cache")
    assert identities["abc"].error.startswith("decode failed")
    assert not identity_cache_path(tmp_path / "cache", "abc").exists()  # retried next time


@pytest.mark.skipif(not FSDD.exists(), reason="needs ../shared/data/fsdd-dev (real recordings)")
def test_takes_of_one_word_by_one_speaker_are_different_recordings(tmp_path):
    takes = sorted(FSDD.glob("1_*.wav"))  # every take of "one", by both speakers
    assert len(takes) == 40
    rows = by_id(find_duplicates(candidates({"fsdd": takes}, tmp_path / "cache")))
    assert all(r["is_canonical"] and r["cluster_size"] == 1 for r in rows.values())


@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng")
def test_one_voice_saying_a_sentence_in_two_languages_is_two_recordings(tmp_path):
    paths = []
    for language, voice in (("en", "en-us"), ("hr", "hr")):
        samples, rate = synthesize("dobar dan, kako ste danas", voice)
        paths.append(tmp_path / f"{language}.wav")
        write_audio(paths[-1], samples, rate)
    rows = find_duplicates(candidates({"tts": paths}, tmp_path / "cache"))
    assert [r["cluster_size"] for r in rows] == [1, 1]


def test_a_re_encode_with_another_transcript_is_merged_and_noted(tmp_path, write_clip):
    original = write_clip(tmp_path / "a.wav", "one recording")
    mp3 = write_clip(tmp_path / "b.mp3", "one recording")
    found = candidates({"s": [original, mp3]}, tmp_path / "cache")
    found = [replace(found[0], transcript="one recording"), replace(found[1], transcript="won recording")]
    rows = by_id(find_duplicates(found))
    assert rows["s-b.mp3"]["canonical_id"] == "s-a.wav"
    assert "different transcript" in rows["s-b.mp3"]["note"] and rows["s-a.wav"]["note"] is None


def test_a_re_run_compares_only_pairs_with_a_new_file_and_indexes_only_it(tmp_path, write_clip, monkeypatch):
    from whisper_assets.curation import dedup, landmark_store

    texts = ["alpha bravo", "quiet river stones", "seven lamps", "uzbek yogurt"]
    paths = [write_clip(tmp_path / f"{i}.wav", text, seconds=2.0) for i, text in enumerate(texts)]
    loads, indexed = [], []
    real_load, real_build = dedup._Waveforms._load, landmark_store.LandmarkIndex.build
    monkeypatch.setattr(
        dedup._Waveforms, "_load", staticmethod(lambda path: loads.append(path) or real_load(path))
    )
    monkeypatch.setattr(
        landmark_store.LandmarkIndex, "build", lambda items: indexed.append(len(items)) or real_build(items)
    )

    def cluster(files, scope="s"):
        found = candidates({"s": files}, tmp_path / "cache")
        return by_id(
            find_duplicates(found, PairVerdicts(tmp_path, scope), open_landmark_store(tmp_path, scope))
        )

    first = cluster(paths)
    assert all(r["cluster_size"] == 1 for r in first.values()) and indexed == [4]
    loads.clear()
    assert (
        cluster(paths) == first and loads == [] and indexed == [4]
    )  # nothing new: nothing decoded or indexed
    copy = tmp_path / "copy.mp3"
    write_audio(copy, sf.read(paths[0])[0], 16_000)
    again = cluster([*paths, copy])
    assert again["s-copy.mp3"]["canonical_id"] == "s-0.wav"
    assert indexed == [4, 1]  # the new file alone, looked up against the stored segment
    assert {str(copy), str(paths[0])} <= set(loads) and len(loads) < 5  # its original, not every file
    loads.clear()
    assert cluster([*paths, copy], "t") == again and loads == []  # another scope (splits) reuses all of it
    assert cluster([paths[0], copy], "u")["s-copy.mp3"]["canonical_id"] == "s-0.wav" and indexed == [4, 1]


def test_segments_added_at_the_same_time_are_looked_up_against_each_other(tmp_path, write_clip):
    """Two shards index their files at once, neither seeing the other's segment: a copy in one of an
    original in the other is still proposed, once the store catches up."""
    original = write_clip(tmp_path / "a.wav", "quiet river stones", seconds=2.0)
    copy = tmp_path / "b.mp3"
    write_audio(copy, sf.read(original)[0], 16_000)
    found = candidates({"s": [original, copy]}, tmp_path / "cache")
    files = [
        (c.sha256, c.identity.pcm_sha256, c.identity.landmarks, c.identity.voiced_seconds) for c in found
    ]
    stores = [open_landmark_store(tmp_path, f"shard-{k}") for k in (0, 1)]  # both opened before either adds
    for store, file in zip(stores, files, strict=True):
        store.add([file])
    assert all(len(s.segments) == 1 for s in stores)  # neither saw the other
    everyone = open_landmark_store(tmp_path, "all")
    assert everyone.pairs({f[0] for f in files}) == [tuple(sorted(f[0] for f in files))]
    assert len(list((tmp_path / "landmarks-v3" / "links").glob("*.json"))) == 1  # kept: not looked up again
