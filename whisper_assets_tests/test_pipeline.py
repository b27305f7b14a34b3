"""The per-source assets and splits, materialized on an ephemeral Dagster instance."""

import json

import dagster as dg
import numpy as np
import pytest
import yaml

from whisper_assets.audio.encode import write_audio
from whisper_assets.defs.ingest import RERUN_TAG
from whisper_assets.tables import query, read_rows, table_path
from whisper_assets_tests.helpers import materialize_source, run_job


def materialize_sources(settings, config_path, names, instance):
    results = {name: materialize_source(config_path, name, instance, workers=1) for name in names}
    results["splits"] = run_job(config_path, "publish_splits", instance, workers=1)
    return results


def metadata(result, asset):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture
def bad_inputs_source(make_settings, write_clip):
    settings = make_settings(
        sources=[{"name": "mine", "language": "en"}], splits={"train": 0.5, "validation": 0.25, "test": 0.25}
    )
    root = settings.layout.uploads_root / "mine"
    for i, text in enumerate(
        ["one small step", "for a man on the moon", "one giant leap", "for mankind", "hello there"]
    ):
        write_clip(root / f"good{i}.wav", text, rate=44_100, stereo=True)
        (root / f"good{i}.txt").write_text(text, encoding="utf-8")
    write_clip(root / "dup.mp3", "one small step")  # content duplicate of good0
    (root / "dup.txt").write_text("one small step", encoding="utf-8")
    (root / "corrupt.wav").write_bytes(b"RIFF????WAVEfmt " + b"\x13" * 300)
    (root / "zero.flac").write_bytes(b"")
    write_clip(root / "short.wav", "x", seconds=0.3)
    (root / "short.txt").write_text("x", encoding="utf-8")
    write_clip(root / "long.wav", "long talk", seconds=35)
    (root / "long.txt").write_text("long talk " * 20, encoding="utf-8")
    (root / "notes.docx").write_bytes(b"PK not audio")
    write_clip(root / "Ćevapi i ražnjići – snimak 1.ogg", "cevapi i raznjici, snimak")
    (root / "Ćevapi i ražnjići – snimak 1.txt").write_text("ćevapi i ražnjići", encoding="utf-8")
    write_clip(root / "silent transcript.wav", "quiet")
    (root / "silent transcript.txt").write_text("", encoding="utf-8")
    hiss = np.random.default_rng(0).normal(0, 0.02, 3 * 16_000)
    write_audio(root / "empty room.wav", hiss, 16_000)  # a transcript, but nobody speaks
    (root / "empty room.txt").write_text("hello", encoding="utf-8")
    return settings


def test_bad_inputs_are_rejected_with_reasons_while_the_rest_succeeds(bad_inputs_source):
    settings = bad_inputs_source
    config = settings.data_root / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        results = materialize_sources(settings, config, ["mine"], instance)
    assert all(r.success for r in results.values())

    inventory = {
        r["rel_path"]: r for r in read_rows(table_path(settings.layout.tables_root, "inventory", "mine"))
    }
    assert inventory["corrupt.wav"]["rejection_reason"].startswith("not a decodable audio file")
    histogram = metadata(results["mine"], "inventory")["duration_histogram"]
    assert histogram.startswith("![duration histogram](data:image/png;base64,")
    assert inventory["zero.flac"]["rejection_reason"] == "empty file (0 bytes)"
    assert inventory["notes.docx"]["rejection_reason"] == "unsupported file type .docx"
    assert inventory["good0.wav"]["channels"] == 2 and inventory["good0.wav"]["sample_rate"] == 44_100
    provenance = json.loads(inventory["good0.wav"]["provenance"])
    assert provenance["license"] == "unknown" and provenance["path"].endswith("mine/good0.wav")

    dedup = {
        r["rel_path"]: r for r in read_rows(table_path(settings.layout.tables_root, "dedup_report", "mine"))
    }
    assert dedup["dup.mp3"]["duplicate_kind"] == "content"
    assert dedup["dup.mp3"]["canonical_id"] == inventory["good0.wav"]["id"]

    transcripts = {
        r["rel_path"]: r
        for r in read_rows(table_path(settings.layout.tables_root, "normalized_transcripts", "mine"))
    }
    assert transcripts["silent transcript.wav"]["rejection_reason"] == "empty transcript"

    processed = {
        r["rel_path"]: r
        for r in read_rows(table_path(settings.layout.tables_root, "processed_audio", "mine"))
    }
    assert processed["short.wav"]["status"] == "too_short"
    assert processed["long.wav"]["status"] == "needs_segmentation"
    assert processed["empty room.wav"]["status"] == "no_speech"
    assert processed["empty room.wav"]["reason"].startswith("no speech detected")
    assert processed["good0.wav"]["speech_seconds"] > 0.5
    assert "dup.mp3" not in processed
    ok = {k for k, r in processed.items() if r["status"] == "ok"}
    assert ok == {f"good{i}.wav" for i in range(5)} | {"Ćevapi i ražnjići – snimak 1.ogg"}
    import soundfile as sf

    info = sf.info(processed["good0.wav"]["audio"])
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")

    manifests = settings.layout.manifests_root / "splits"
    items = [
        json.loads(line)
        for name in ("train", "validation", "test")
        for line in (manifests / f"{name}.jsonl").read_text().splitlines()
    ]
    assert sorted(i["id"] for i in items) == sorted(inventory[k]["id"] for k in ok)
    assert set(items[0]) == {
        *("id", "parent_id", "offset", "audio", "transcript", "duration", "language", "speaker", "source"),
        *("pseudo_label", "timestamps"),
    }
    # No alignment model here (a hub id, offline): short items still train whole, the long one waits, saying why.
    segments = {
        r["rel_path"]: r for r in read_rows(table_path(settings.layout.tables_root, "segments", "mine"))
    }
    assert segments["good0.wav"]["status"] == "ok"
    assert "could not be loaded" in segments["good0.wav"]["reason"]
    assert segments["long.wav"]["status"] == "dropped"
    assert (
        "not segmented: alignment model 'openai/whisper-tiny' could not be loaded"
        in (segments["long.wav"]["reason"])
    )

    split_meta = metadata(results["splits"], "splits")
    assert split_meta["dagster/row_count"] == len(ok)
    assert split_meta["hours_per_split"].startswith("![hours per split and language](data:image/png;base64,")
    # The balance report counts what was published; no speaker labels here, so it says so.
    balance = metadata(results["splits"], "dataset_balance")
    report = json.loads((settings.layout.manifests_root / "dataset_balance.json").read_text())
    assert report["utterances"] == len(ok) and balance["hours_by_split"] == report["hours_by_split"]
    assert "have no speaker label" in balance["recommendations"]
    assert (settings.layout.manifests_root / "dataset_balance.html").read_text().count("<svg") >= 7
    checks = results["splits"].get_asset_check_evaluations()
    assert {c.check_name: c.passed for c in checks} == {"no_leakage": True, "no_empty_transcripts": True}

    _, rows = query(
        settings.layout.catalog_path, "SELECT count(*) FROM inventory WHERE rejection_reason IS NOT NULL"
    )
    assert rows[0][0] == 3
    licenses = (settings.data_root / "DATA_LICENSES.md").read_text()
    assert "## mine" in licenses and "| license (declared) | unknown |" in licenses


def test_rematerializing_unchanged_data_reuses_everything(bad_inputs_source, write_clip):
    settings = bad_inputs_source
    config = settings.data_root / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        materialize_sources(settings, config, ["mine"], instance)
        manifest_before = (settings.layout.manifests_root / "splits" / "train.jsonl").read_text()
        forced = materialize_source(config, "mine", instance, tags={RERUN_TAG: "yes"})  # every step runs
        assert metadata(forced, "inventory")["files_read"] == 0
        assert metadata(forced, "processed_audio")["processed_now"] == 0

        write_clip(settings.layout.uploads_root / "mine" / "new.wav", "a brand new sentence")
        (settings.layout.uploads_root / "mine" / "new.txt").write_text(
            "a brand new sentence", encoding="utf-8"
        )
        third = materialize_sources(settings, config, ["mine"], instance)
    assert metadata(third["mine"], "inventory")["files_read"] == 1
    assert metadata(third["mine"], "processed_audio")["processed_now"] == 1
    old_lines = set(manifest_before.splitlines())
    new_lines = set((settings.layout.manifests_root / "splits" / "train.jsonl").read_text().splitlines())
    assert old_lines <= new_lines  # nothing moved out of train


def test_a_run_with_nothing_changed_skips_every_step_after_inventory(bad_inputs_source):
    settings = bad_inputs_source
    config = settings.data_root / "whisper_assets.yaml"

    def skipped(result) -> set[str]:
        return {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}

    with dg.instance_for_test() as instance:
        first = materialize_source(config, "mine", instance)
        tables = {
            t: read_rows(table_path(settings.layout.tables_root, t, "mine")) for t in ("segments", "speakers")
        }
        again = materialize_source(config, "mine", instance)
        assert again.success and again.get_asset_materialization_events() == []
        assert skipped(again) == {
            "dedup_report",
            "normalized_transcripts",
            "processed_audio",
            "segments",
            "speakers",
        }
        [check] = again.get_asset_check_evaluations()  # the same verdict, from the run it matched
        [before] = first.get_asset_check_evaluations()
        assert check.check_name == "unreadable_share" and check.metadata == before.metadata
        assert check.metadata["unreadable"].value == 2  # corrupt.wav and zero.flac
        assert all(
            read_rows(table_path(settings.layout.tables_root, t, "mine")) == rows
            for t, rows in tables.items()
        )

        # what the digest does not see: a lost table, or a run that did not complete the steps
        table_path(settings.layout.tables_root, "speakers", "mine").unlink()
        assert skipped(materialize_source(config, "mine", instance)) == set()
        run_job(
            config,
            "ingest_source",
            instance,
            partition_key="mine",
            assets=["inventory"],
            tags={RERUN_TAG: "1"},
        )
        assert (
            skipped(materialize_source(config, "mine", instance)) == set()
        )  # the last one ran inventory only
        assert len(skipped(materialize_source(config, "mine", instance))) == 5

        # what it sees: a rewritten transcript, the settings, and the speaker overrides a person wrote
        (settings.layout.uploads_root / "mine" / "good1.txt").write_text("for a man", encoding="utf-8")
        assert skipped(materialize_source(config, "mine", instance)) == set()
        settings.layout.speaker_overrides("mine").parent.mkdir(parents=True, exist_ok=True)
        settings.layout.speaker_overrides("mine").write_text("file,speaker\n", encoding="utf-8")
        assert skipped(materialize_source(config, "mine", instance)) == set()
        changed = yaml.safe_load(config.read_text()) | {"unreadable_warn_share": 0.5}
        config.write_text(yaml.safe_dump(changed), encoding="utf-8")
        assert skipped(materialize_source(config, "mine", instance)) == set()
    assert first.success


def test_unreadable_share_check_warns(make_settings, write_clip):
    settings = make_settings(sources=[{"name": "junk"}])
    root = settings.layout.uploads_root / "junk"
    write_clip(root / "ok.wav", "fine")
    for i in range(3):
        (root / f"bad{i}.wav").write_bytes(b"garbage" * 50)
    result = materialize_source(settings.data_root / "whisper_assets.yaml", "junk")
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "unreadable_share" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["share"].value == 0.75


def test_cross_source_duplicates_keep_one_copy(make_settings, write_clip):
    settings = make_settings(sources=[{"name": "first"}, {"name": "second"}])
    for source, suffix in (("first", ".wav"), ("second", ".mp3")):
        write_clip(settings.layout.uploads_root / source / f"clip{suffix}", "the same words spoken")
        (settings.layout.uploads_root / source / "clip.txt").write_text(
            "the same words spoken", encoding="utf-8"
        )
    with dg.instance_for_test() as instance:
        materialize_sources(
            settings, settings.data_root / "whisper_assets.yaml", ["first", "second"], instance
        )
    [second] = read_rows(table_path(settings.layout.tables_root, "dedup_report", "second"))
    assert second["canonical_id"].startswith("first-") and second["duplicate_kind"] == "content"
    assert read_rows(table_path(settings.layout.tables_root, "processed_audio", "second")) == []


def test_move_duplicates_option_moves_files_aside(make_settings, write_clip):
    settings = make_settings(sources=[{"name": "src"}], move_duplicates=True)
    root = settings.layout.uploads_root / "src"
    write_clip(root / "a.wav", "words words")
    write_clip(root / "b.wav", "words words")  # identical bytes
    (root / "b.txt").write_text("words words", encoding="utf-8")
    with dg.instance_for_test() as instance:
        materialize_sources(settings, settings.data_root / "whisper_assets.yaml", ["src"], instance)
    assert (root / "a.wav").exists() and not (root / "b.wav").exists()
    assert (settings.layout.duplicates_root / "src" / "b.wav").exists()
    assert (settings.layout.duplicates_root / "src" / "b.txt").exists()


def published_ids(settings) -> list[str]:
    folder = settings.layout.manifests_root / "splits"
    return sorted(
        json.loads(line)["id"]
        for name in ("train", "validation", "test")
        for line in (folder / f"{name}.jsonl").open()
    )


@pytest.mark.parametrize("order", [["early", "late"], ["late", "early"]])
def test_duplicate_clusters_do_not_depend_on_arrival_order(tmp_path, write_clip, order):
    """The same recording in two sources: one copy in the manifests, the same one whichever came first."""
    from whisper_assets.settings import load_settings

    config = tmp_path / "whisper_assets.yaml"
    config.write_text("data_root: .\nsources: [{name: early}, {name: late}]\n")
    settings = load_settings(config)
    for name, suffix, text in (("early", ".mp3", "shared words"), ("late", ".flac", "shared words")):
        write_clip(settings.layout.uploads_root / name / f"clip{suffix}", text, seconds=2.0)
        (settings.layout.uploads_root / name / "clip.txt").write_text(text, encoding="utf-8")
    write_clip(settings.layout.uploads_root / "early" / "own.wav", "only in the early source", seconds=2.0)
    (settings.layout.uploads_root / "early" / "own.txt").write_text("only early", encoding="utf-8")
    with dg.instance_for_test() as instance:
        for name in order:  # each source published as it arrives, as the sensor would
            result = materialize_sources(settings, config, [name], instance)
            assert all(c.passed for c in result["splits"].get_asset_check_evaluations())
    late_copy = read_rows(table_path(settings.layout.tables_root, "inventory", "late"))[0]["id"]
    assert late_copy in published_ids(settings)  # the lossless copy wins, whenever it arrived
    assert len(published_ids(settings)) == 2


def test_content_leaks_are_found_from_the_audio_not_the_ids(make_settings, write_clip):
    from whisper_assets.curation.inventory import build_inventory
    from whisper_assets.curation.publish import content_leaks

    settings = make_settings()
    folder = settings.layout.uploads_root / "s"
    write_clip(folder / "a.wav", "the same recording", seconds=2.0)
    write_clip(folder / "b.mp3", "the same recording", seconds=2.0)
    write_clip(folder / "c.wav", "another recording", seconds=2.0)
    rows = {r["rel_path"]: r for r in build_inventory("s", folder, "en", []).rows}
    # Rows as a buggy step might hand them over: distinct ids and cluster ids, same audio in two splits.
    by_split = {
        "train": [
            {"parent_id": rows["a.wav"]["id"], "content_hash": "x"},
            {"parent_id": rows["c.wav"]["id"], "content_hash": "y"},
        ],
        "test": [{"parent_id": rows["b.mp3"]["id"], "content_hash": "z"}],
    }
    leaked = content_leaks(by_split, list(rows.values()), settings.layout.cache_root)
    assert list(leaked.values()) == [["test", "train"]]
    by_split["train"].pop(0)
    assert content_leaks(by_split, list(rows.values()), settings.layout.cache_root) == {}
    # Two segments of one recording in two splits leak that recording.
    by_split["validation"] = [{"parent_id": rows["c.wav"]["id"], "content_hash": "y"}]
    leaked = content_leaks(by_split, list(rows.values()), settings.layout.cache_root)
    assert leaked == {f"segments of one recording: {rows['c.wav']['id']}": ["train", "validation"]}


def test_failed_blocking_checks_publish_nothing_and_training_refuses(bad_inputs_source, monkeypatch):
    from whisper_assets.curation import publish
    from whisper_assets.curation.manifests import (
        ManifestsNotPublished,
        current_split_manifests,
        staging_folder,
    )

    settings = bad_inputs_source
    config = settings.data_root / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        materialize_sources(settings, config, ["mine"], instance)
        published = current_split_manifests(settings.layout.manifests_root)
        before = {k: ref.sha256 for k, ref in published.items()}

        def leaky(items, _settings, _placement):  # a splitter with a bug: every item in train and in test
            return {"train": list(items), "validation": [], "test": list(items)}

        monkeypatch.setattr(publish, "split_items", leaky)
        failed = run_job(config, "publish_splits", instance, raise_on_error=False)
    checks = {c.check_name: c.passed for c in failed.get_asset_check_evaluations()}
    assert checks["no_leakage"] is False
    after = current_split_manifests(settings.layout.manifests_root)
    assert {k: ref.sha256 for k, ref in after.items()} == before  # training still sees the last good ones
    staged = staging_folder(settings.layout.manifests_root) / "test.jsonl"
    assert staged.exists()
    staged.replace(settings.layout.manifests_root / "splits" / "test.jsonl")  # copied into place by hand
    with pytest.raises(ManifestsNotPublished, match="not the manifest `splits` published"):
        current_split_manifests(settings.layout.manifests_root)


def test_pinned_regression_replay_and_non_speech_sources_are_published_where_they_belong(
    make_settings, write_clip
):
    from whisper_assets.curation.manifests import current_role_manifests, read_manifest

    settings = make_settings(
        sources=[
            {"name": "domain"},
            {"name": "bench", "split": "test"},
            {"name": "general", "role": "regression"},
            {"name": "warm", "role": "replay"},
            {"name": "voices", "speech_recognition": False},  # e.g. a TTS-only source
        ]
    )
    words = {
        "domain": ["one two three", "my own voice", "seven and eight"],
        "bench": ["four five six", "a trusted set", "nine ten eleven"],
        "general": ["the weather is fine", "call me tomorrow", "a long way home"],
        "warm": ["good morning to you", "the kettle is boiling"],
        "voices": ["read by an actor", "for a voice model", "never for recognition"],
    }
    for source, texts in words.items():
        for k, text in enumerate(texts):
            write_clip(settings.layout.uploads_root / source / f"{source}{k}.wav", text)
            (settings.layout.uploads_root / source / f"{source}{k}.txt").write_text(text)
    with dg.instance_for_test() as instance:
        results = materialize_sources(
            settings, settings.data_root / "whisper_assets.yaml", list(words), instance
        )
    assert all(c.passed for c in results["splits"].get_asset_check_evaluations())
    folder = settings.layout.manifests_root / "splits"
    by_split = {name: read_manifest(folder / f"{name}.jsonl") for name in ("train", "validation", "test")}
    sources = {name: {row["source"] for row in rows} for name, rows in by_split.items()}
    assert len([r for r in by_split["test"] if r["source"] == "bench"]) == 3
    assert "bench" not in sources["train"] | sources["validation"]
    assert not {"general", "warm", "voices"} & (sources["train"] | sources["validation"] | sources["test"])
    [(name, ref)] = current_role_manifests(settings.layout.manifests_root, "regression").items()
    assert name == "regression/general" and len(read_manifest(ref.path)) == 3
    [(name, ref)] = current_role_manifests(settings.layout.manifests_root, "replay").items()
    assert name == "replay/warm" and len(read_manifest(ref.path)) == 2
