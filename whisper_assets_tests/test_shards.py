"""A big source split into shards: each shard a partition of its own, run in parallel, merged by `splits`."""

import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import dagster as dg
import pytest
import yaml

from whisper_assets.audio.encode import write_audio
from whisper_assets.curation.inventory import build_inventory
from whisper_assets.demo.data import speech_like
from whisper_assets.partition_keys import SourcePartition, shard_of
from whisper_assets.settings import SettingsError, load_settings
from whisper_assets.tables import partition_keys_of, read_rows, table_path
from whisper_assets_tests.helpers import materialize_source, run_job, tick

TEXTS = [
    "one small step",
    "for a man on the moon",
    "one giant leap",
    "for mankind",
    "hello there",
    "good morning to you",
    "the quick brown fox",
    "jumps over the lazy dog",
    "dobro jutro",
    "kako ste danas",
    "pet sest sedam",
    "eight nine ten",
]


def _ingest(config: str, key: str) -> bool:
    """One shard's ingest run, as the run launcher would start it: its own process and instance."""
    return materialize_source(Path(config), key, workers=1).success


def _write_settings(root: Path, shards: int) -> Path:
    config = root / "whisper_assets.yaml"
    source = {"name": "big", "language": "en", **({"shards": shards} if shards > 1 else {})}
    config.write_text(yaml.safe_dump({"data_root": ".", "sources": [source]}))
    return config


def _manifests(root: Path) -> dict[str, bytes]:
    folder = load_settings(root / "whisper_assets.yaml").layout.manifests_root / "splits"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _forget_outputs(root: Path) -> None:
    """Everything but the uploads and the settings file: the next run starts from the raw files."""
    for child in root.iterdir():
        if child.name not in ("uploads", "whisper_assets.yaml"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


@pytest.fixture
def big_source(tmp_path: Path) -> Path:
    """Twelve utterances, two re-encoded copies that land in the other shard than their original, and a
    corrupt file."""
    folder = tmp_path / "uploads" / "big"
    folder.mkdir(parents=True)
    for i, text in enumerate(TEXTS):
        write_audio(folder / f"clip{i:02d}.wav", speech_like(text), 16_000)
        (folder / f"clip{i:02d}.txt").write_text(text)
    copies = 0
    for i, text in enumerate(TEXTS):
        name = f"copy of clip{i:02d}.mp3"
        if copies < 2 and shard_of(name, 2) != shard_of(f"clip{i:02d}.wav", 2):
            write_audio(folder / name, speech_like(text), 16_000)
            (folder / name).with_suffix(".txt").write_text(text)
            copies += 1
    assert copies == 2
    (folder / "broken.wav").write_bytes(b"RIFF????WAVEfmt " + b"\x13" * 300)
    return tmp_path


def test_two_shards_in_parallel_publish_the_same_manifests_as_one(big_source: Path):
    config = _write_settings(big_source, shards=1)
    assert materialize_source(config, "big", workers=1).success
    with dg.instance_for_test() as instance:
        run_job(config, "publish_splits", instance, workers=1)
    whole = _manifests(big_source)
    assert sum(body.count(b"\n") for body in whole.values()) >= 10  # every distinct clip, one copy of each

    _forget_outputs(big_source)
    config = _write_settings(big_source, shards=2)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        assert all(pool.map(_ingest, [str(config)] * 2, ["big~0", "big~1"]))
    with dg.instance_for_test() as instance:
        run_job(config, "publish_splits", instance, workers=1)

    tables = load_settings(config).layout.tables_root
    assert partition_keys_of(tables, "segments") == ["big~0", "big~1"]
    shard_paths = [
        {r["rel_path"] for r in read_rows(table_path(tables, "inventory", k))} for k in ("big~0", "big~1")
    ]
    assert not shard_paths[0] & shard_paths[1] and len(shard_paths[0] | shard_paths[1]) == len(TEXTS) + 3
    assert all(r["source"] == "big" for r in read_rows(table_path(tables, "inventory", "big~1")))
    assert _manifests(big_source) == whole


def test_a_file_keeps_its_shard_when_others_arrive(tmp_path: Path):
    for i in range(40):
        write_audio(tmp_path / f"a{i}.wav", speech_like(f"take {i}"), 16_000)
    part = SourcePartition("big", 1, 3)

    def held() -> set[str]:
        return {r["rel_path"] for r in build_inventory("big", tmp_path, "en", [], 1, holds=part.holds).rows}

    before = held()
    for i in range(40):
        write_audio(tmp_path / f"b{i}.wav", speech_like(f"more {i}"), 16_000)
    after = held()
    assert 5 < len(before) < 25  # about a third of 40
    assert {p for p in after if p.startswith("a")} == before
    assert len(after) > len(before)


def test_sensor_adds_one_partition_per_shard_and_drops_the_old_layout(big_source: Path):
    config = _write_settings(big_source, shards=1)
    with dg.instance_for_test() as instance:
        first = tick(config, "new_uploads", instance)
        assert [r.partition_key for r in first.run_requests] == ["big"]
        instance.add_dynamic_partitions("dataset_sources", ["big"])

        config = _write_settings(big_source, shards=3)
        second = tick(config, "new_uploads", instance)
        [add, delete] = second.dynamic_partitions_requests
        assert list(add.partition_keys) == ["big~0", "big~1", "big~2"]
        assert list(delete.partition_keys) == ["big"]
        assert [r.partition_key for r in second.run_requests] == ["big~0", "big~1", "big~2"]


def test_shard_settings_are_checked(tmp_path: Path):
    config = _write_settings(tmp_path, shards=2)
    settings = load_settings(config)
    source, part = settings.partition("big~1")
    assert (source.name, part.shard, part.shards) == ("big", 1, 2)
    with pytest.raises(SettingsError, match=r"big~0, big~1"):
        settings.partition("big~2")
    with pytest.raises(SettingsError, match="big~0"):
        settings.partition("big")
    mirrored = {"name": "remote", "kind": "http_recordings", "base_url": "http://127.0.0.1:1/", "shards": 2}
    config.write_text(yaml.safe_dump({"data_root": ".", "sources": [mirrored]}))
    with pytest.raises(SettingsError, match="mirrored in one step"):
        load_settings(config)
