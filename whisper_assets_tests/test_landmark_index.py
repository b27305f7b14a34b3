import itertools

import numpy as np
import pytest

from whisper_assets.audio.decode import decode
from whisper_assets.audio.fingerprint import COMPARE_RATE, Landmarks, comparable_waveform, landmarks
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.curation import landmark_index
from whisper_assets.curation.landmark_index import BUCKET_CAP, candidate_pairs, duration_band
from whisper_assets_tests.helpers import FSDD


def indexed(waveforms):
    return [(landmarks(w), len(w) / COMPARE_RATE) for w in waveforms]


def babble(seed: int, seconds: float) -> np.ndarray:
    """Noise shaped by a random, syllable-rate envelope: distinct for every seed."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * COMPARE_RATE)
    envelope = np.repeat(rng.uniform(0.05, 1.0, samples // 800 + 1), 800)[:samples]
    return (rng.standard_normal(samples) * envelope).astype(np.float32)


def test_landmarks_round_trip_and_survive_a_shift_and_a_gain_change():
    clip = babble(0, 2.0)
    own = landmarks(clip)
    assert len(own.hashes) > 50
    back = Landmarks.from_hex(own.to_hex())
    assert np.array_equal(back.hashes, own.hashes) and np.array_equal(back.frames, own.frames)
    moved = landmarks(np.concatenate([np.zeros(200, np.float32), 0.3 * clip]))
    assert len(np.intersect1d(own.hashes, moved.hashes)) > 0.5 * len(own.hashes)


def test_the_index_proposes_copies_and_not_distinct_clips():
    clips = [babble(seed, 1.5 + seed % 7 * 0.3) for seed in range(60)]
    copies = [np.concatenate([np.zeros(100, np.float32), 0.5 * clips[k]]) for k in (3, 17, 42)]
    pairs = candidate_pairs(indexed(clips + copies))
    assert set(pairs) == {(3, 60), (17, 61), (42, 62)}


def test_looking_items_up_in_small_chunks_finds_the_same_pairs(monkeypatch):
    clips = [babble(seed, 1.5 + seed % 7 * 0.3) for seed in range(30)]
    copies = [np.concatenate([np.zeros(100, np.float32), 0.5 * clips[k]]) for k in (0, 14, 29)]
    items = indexed(copies + clips)  # each copy comes before its original, in another chunk
    whole = candidate_pairs(items)
    monkeypatch.setattr(landmark_index, "_CHUNK_POSTINGS", 500)  # a chunk of one to three items
    assert candidate_pairs(items) == whole == [(0, 3), (1, 17), (2, 32)]


def test_only_pairs_of_neighbouring_lengths_meet():
    clip = babble(1, 4.0)
    assert candidate_pairs(indexed([clip, clip[: int(3.0 * COMPARE_RATE)]])) == []  # 3 s is no copy of 4 s
    assert (
        duration_band(4.0) - duration_band(4.0 * 0.95) <= 1 and duration_band(0.3) - duration_band(0.2) <= 1
    )


def test_two_utterances_sharing_one_piece_of_audio_are_not_proposed():
    shared, first, second = babble(7, 1.0), babble(8, 2.0), babble(9, 2.0)
    assert candidate_pairs(indexed([np.concatenate([shared, first]), np.concatenate([shared, second])])) == []


def test_an_overfull_bucket_is_skipped():
    frames = np.arange(0, 125, 12, dtype=np.uint32)  # spread over one second
    same = Landmarks(np.arange(len(frames), dtype=np.uint32), frames)
    crowd = [(same, 1.0)] * (BUCKET_CAP + 1)
    assert candidate_pairs(crowd) == []
    assert len(candidate_pairs(crowd[:3])) == 3


@pytest.mark.skipif(not FSDD.exists(), reason="needs ../shared/data/fsdd-dev (real recordings)")
def test_on_real_takes_the_index_proposes_about_one_pair_per_recording():
    waveforms = [comparable_waveform(to_mono_16k(*decode(p))) for p in sorted(FSDD.glob("*.wav"))]
    pairs = candidate_pairs(indexed(waveforms))
    # 400 distinct takes (each digit said 20 times by each of two speakers): all of them against all would be
    # 79,800 pairs; the index proposes a few.
    assert len(pairs) < 0.25 * len(waveforms)


def test_merged_indexes_equal_one_index_of_all_their_items():
    items = indexed([babble(seed, 1.5 + seed % 5 * 0.2) for seed in range(40)])
    crowd = [(Landmarks(np.array([7], np.uint32), np.array([0], np.uint32)), 2.0)] * (BUCKET_CAP + 5)
    items = items[:20] + crowd + items[20:]  # one key over the cap only once the parts are merged
    whole = landmark_index.LandmarkIndex.build(items)
    cuts = [0, 7, 20 + len(crowd) // 2, 20 + len(crowd) + 5, len(items)]
    parts = [landmark_index.LandmarkIndex.build(items[a:b]) for a, b in itertools.pairwise(cuts)]
    merged = landmark_index.LandmarkIndex.merge(parts)
    for field in ("keys", "item", "frame", "stopped", "stopped_sizes", "counts", "frames"):
        assert np.array_equal(getattr(merged, field), getattr(whole, field)), field
    assert len(whole.stopped) and not any(len(p.stopped) for p in parts)


def test_a_scope_fed_by_many_small_runs_keeps_a_few_segments_and_every_pair(tmp_path):
    from whisper_assets.curation.landmark_store import MERGE_AT, LandmarkStore

    clips = [babble(seed, 2.0) for seed in range(MERGE_AT + 4)]
    copy = np.concatenate([np.zeros(80, np.float32), 0.7 * clips[0]])
    files = [(f"sha{k:02d}", f"pcm{k:02d}", landmarks(c), 2.0) for k, c in enumerate([*clips, copy])]
    LandmarkStore(tmp_path, "other").add(files[1:2])  # another scope's segment, met by every later one
    for file in files[2:]:
        LandmarkStore(tmp_path, "drops").add([file])  # one run per file
    LandmarkStore(tmp_path, "early").add(files[:1])  # the original, after its copy
    store = LandmarkStore(tmp_path, "splits")
    own = [s for s in store.segments if s.scope == "drops"]
    assert 1 <= len(own) <= MERGE_AT and sum(len(s.shas) for s in own) == len(files) - 2
    assert store.pairs({f[0] for f in files}) == [("sha00", f"sha{len(clips):02d}")]
    assert len(list(tmp_path.glob("*/meta.json"))) == len(store.segments)  # the merged ones are gone
