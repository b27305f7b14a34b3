import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper_assets.curation.manifests import role_set
from whisper_assets.curation.splits import (
    SPLITS,
    Placement,
    SplitSettings,
    assign_split,
    group_key,
    leaks,
    split_items,
)

SPLIT_SETTINGS = SplitSettings()

items_strategy = st.lists(
    st.tuples(
        st.text("abcdef0123456789", min_size=8, max_size=8), st.sampled_from([None, "ana", "bob", "cy"])
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda t: t[0],
)


def make_items(pairs, source="s"):
    return [
        {
            "id": f"{source}-{h}",
            "speaker": spk,
            "source": source,
            "content_hash": h,
            "group": group_key(source, spk, h),
        }
        for h, spk in pairs
    ]


@settings(max_examples=60)
@given(items_strategy, items_strategy)
def test_adding_items_never_moves_existing_ones(first, more):
    before = split_items(make_items(first), SPLIT_SETTINGS)
    after = split_items(make_items(first) + make_items(more, source="t"), SPLIT_SETTINGS)
    placed_before = {r["id"]: name for name, rows in before.items() for r in rows}
    placed_after = {r["id"]: name for name, rows in after.items() for r in rows}
    assert all(placed_after[i] == name for i, name in placed_before.items())


@settings(max_examples=60)
@given(items_strategy)
def test_speakers_and_contents_never_cross_splits(pairs):
    assert leaks(split_items(make_items(pairs), SPLIT_SETTINGS)) == {}


def test_leak_detection_reports_a_speaker_in_two_splits():
    rows = {
        "train": [{"group": "speaker:s:ana", "content_hash": "1"}],
        "validation": [{"group": "speaker:s:ana", "content_hash": "2"}],
        "test": [],
    }
    assert leaks(rows) == {"speaker:s:ana": ["train", "validation"]}


def test_ratios_are_respected_and_salt_changes_assignment():
    keys = [f"content:{i}" for i in range(5000)]
    counts = {name: 0 for name in SPLITS}
    for key in keys:
        counts[assign_split(key, SPLIT_SETTINGS)] += 1
    assert 3850 < counts["train"] < 4150 and 400 < counts["validation"] < 600 and 400 < counts["test"] < 600
    salted = SplitSettings(salt="another")
    assert sum(assign_split(k, SPLIT_SETTINGS) != assign_split(k, salted) for k in keys) > 500


def test_content_grouping_spreads_a_few_speakers_over_every_split():
    items = [
        {
            "id": f"s-{i}",
            "speaker": ("a", "b")[i % 2],
            "source": "s",
            "content_hash": f"{i:04d}",
            "group": group_key("s", ("a", "b")[i % 2], f"{i:04d}", by_speaker=False),
        }
        for i in range(200)
    ]
    placed = split_items(items, SPLIT_SETTINGS)
    assert all(placed[name] for name in SPLITS)
    assert leaks(placed) == {}
    assert group_key("s", "a", "0001") == "speaker:s:a"


def test_a_pinned_source_lands_whole_in_its_split_and_moves_nobody_else():
    domain = make_items([(f"{i:08d}", f"spk{i % 7}") for i in range(80)])
    benchmark = make_items([(f"b{i:07d}", f"spk{i % 3}") for i in range(20)], source="bench")
    benchmark[0]["pseudo_label"] = True  # a model's transcript is never a test reference
    extra = make_items([(f"x{i:07d}", None) for i in range(20)], source="extra")
    placement = {"bench": Placement(pinned="test"), "extra": Placement(pinned="train")}
    placed = split_items(domain + benchmark + extra, SPLIT_SETTINGS, placement)
    where = {r["id"]: name for name, rows in placed.items() for r in rows}
    assert {where[r["id"]] for r in benchmark[1:]} == {"test"} and benchmark[0]["id"] not in where
    assert {where[r["id"]] for r in extra} == {"train"}
    unpinned = split_items(domain, SPLIT_SETTINGS)
    assert all(where[r["id"]] == name for name, rows in unpinned.items() for r in rows)
    assert leaks(placed) == {}


@pytest.mark.parametrize("role", ["regression", "replay"])
def test_a_regression_or_replay_source_gets_its_own_manifest_outside_the_splits(role):
    domain = make_items([(f"{i:08d}", "ana") for i in range(10)])
    general = make_items([(f"g{i:07d}", f"spk{i}") for i in range(12)], source="general")
    general[0]["pseudo_label"] = (
        True  # a model's transcript: trained on in replay, never a regression reference
    )
    placed = split_items(domain + general, SPLIT_SETTINGS, {"general": Placement(role=role)})
    kept = general if role == "replay" else general[1:]
    assert [r["id"] for r in placed[role_set(role, "general")]] == sorted(r["id"] for r in kept)
    assert not any(r["source"] == "general" for name in SPLITS for r in placed[name])


def test_a_recording_in_a_regression_set_and_in_training_is_a_leak():
    placed = split_items(
        make_items([("samesame", "ana")]) + make_items([("samesame", "bob")], source="general"),
        SPLIT_SETTINGS,
        {"general": Placement(role="regression"), "s": Placement(pinned="train")},
    )
    assert leaks(placed) == {"content:samesame": sorted(["train", role_set("regression", "general")])}
