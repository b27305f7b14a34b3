import subprocess
import sys
from typing import Literal

import dagster as dg
from pydantic import BaseModel

from whisper_assets.definitions import build_definitions, defs
from whisper_assets.defs.partitions import source_partitions
from whisper_assets.defs.resources import with_overrides
from whisper_assets_tests.helpers import tick


def evaluate(instance, settings, cursor=None):
    return tick(settings.data_root / "whisper_assets.yaml", "new_uploads", instance, cursor)


def apply_partition_requests(instance, result):
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_new_folder_adds_a_partition_and_requests_one_run_per_change(make_settings, write_clip):
    settings = make_settings(sources=[{"name": "configured"}])
    (settings.layout.uploads_root / "configured").mkdir(parents=True)
    write_clip(settings.layout.uploads_root / "dropped" / "a.wav", "hello")
    with dg.instance_for_test() as instance:
        first = evaluate(instance, settings)
        assert [r.partition_keys for r in first.dynamic_partitions_requests] == [["configured", "dropped"]]
        assert sorted(r.partition_key for r in first.run_requests) == ["configured", "dropped"]
        assert len({r.run_key for r in first.run_requests}) == 2
        assert len(first.cursor) < 300  # small: a fingerprint per source, no file lists
        apply_partition_requests(instance, first)

        unchanged = evaluate(instance, settings, first.cursor)
        assert unchanged.run_requests == [] and unchanged.dynamic_partitions_requests == []

        write_clip(settings.layout.uploads_root / "dropped" / "b.wav", "another")
        changed = evaluate(instance, settings, unchanged.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["dropped"]
        assert changed.run_requests[0].run_key != first.run_requests[1].run_key
        assert set(instance.get_dynamic_partitions(source_partitions.name)) == {"configured", "dropped"}


def test_a_huge_drop_is_scanned_across_ticks(make_settings, monkeypatch):
    settings = make_settings()
    folder = settings.layout.uploads_root / "big"
    folder.mkdir(parents=True)
    for i in range(30):
        (folder / f"{i}.txt").write_text("x")
    monkeypatch.setattr("whisper_assets.sources.watch._PAGE", 10)
    monkeypatch.setattr("whisper_assets.defs.sensors.SCAN_BUDGET_SECONDS", 0.0)
    with dg.instance_for_test() as instance:
        cursor, ticks, requests = None, 0, []
        while not requests:
            result = evaluate(instance, settings, cursor)
            cursor, requests, ticks = result.cursor, result.run_requests, ticks + 1
            apply_partition_requests(instance, result)
        assert ticks == 3 and [r.partition_key for r in requests] == ["big"]
        assert evaluate(instance, settings, cursor).run_requests == []


def test_definitions_load_with_the_expected_graph():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    deps = {
        key.to_user_string(): sorted(k.to_user_string() for k in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert deps == {
        "inventory": [],
        "dedup_report": ["inventory"],
        "normalized_transcripts": ["dedup_report"],
        "processed_audio": ["dedup_report", "normalized_transcripts"],
        "segments": ["processed_audio"],
        "speakers": ["segments"],
        "tts_preprocessed": ["segments"],
        "tts_speakers": ["tts_preprocessed"],
        "tts_dataset": ["tts_speakers"],
        "splits": ["segments", "speakers"],
        "whisper_model": ["splits"],
        "trained_items_marked": ["whisper_model"],
        "whisper_sweep": ["splits"],
        "general_speech_set": [],  # made offline: the forgetting check without a regression source
        "eval_metrics": ["general_speech_set", "splits", "whisper_model"],
        "exported_model": ["eval_metrics"],
        "eval_dashboard": ["eval_metrics"],
        "catalog": ["eval_metrics", "splits"],
        "data_licenses": ["inventory"],
        "dataset_balance": ["splits"],
        "review_priorities": [],  # reads the review database and the champion, per review-database source
        "keystroke_manifests": ["inventory"],
        "keystroke_vocabulary": ["keystroke_manifests"],
        "keystroke_features": ["keystroke_vocabulary"],
        "keystroke_model": ["keystroke_features"],
        "keystroke_evaluation": ["keystroke_model"],
    }
    trained = defs.resolve_job_def("train_and_evaluate").asset_layer.executable_asset_keys
    assert dg.AssetKey("whisper_sweep") not in trained and dg.AssetKey("eval_dashboard") in trained
    for key in (
        "inventory",
        "dedup_report",
        "normalized_transcripts",
        "processed_audio",
        "segments",
        "speakers",
        "tts_dataset",
        "review_priorities",
        "keystroke_manifests",
        "keystroke_model",
    ):
        assert graph.get(dg.AssetKey(key)).partitions_def == source_partitions
    assert graph.get(dg.AssetKey("catalog")).pools == {"duckdb"}
    for name in ("whisper_model", "keystroke_model"):
        model = graph.get(dg.AssetKey(name))
        assert model.pools == {"gpu"} and model.tags["compute"] == "gpu"
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert sensors["new_uploads"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["curation_automation"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["review_queue"].default_status == dg.DefaultSensorStatus.STOPPED  # it runs a model
    assert sensors["keystroke_data_after_sync"].default_status == dg.DefaultSensorStatus.RUNNING
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("inventory", "unreadable_share"),
        ("splits", "no_leakage"),
        ("splits", "no_empty_transcripts"),
        ("eval_metrics", "champion_gate"),
    }
    schedule = defs.get_repository_def().get_schedule_def("retrain_on_new_data")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    ingest = defs.resolve_job_def("ingest_source")
    assert ingest.executor_def.name == "in_process"  # one process per run: small drops start fast
    assert dg.AssetKey("speakers") in ingest.asset_layer.executable_asset_keys


def test_schedule_crons_come_from_the_settings_file(make_settings):
    settings = make_settings(schedules={"sync_cron": "5 * * * *", "retrain_cron": "0 4 * * 6"})
    repository = build_definitions(str(settings.data_root / "whisper_assets.yaml")).get_repository_def()
    assert repository.get_schedule_def("sync_remote_sources").cron_schedule == "5 * * * *"
    assert repository.get_schedule_def("retrain_on_new_data").cron_schedule == "0 4 * * 6"


class _Knobs(BaseModel):
    max_steps: int = 60
    learning_rate: float = 1e-5
    method: Literal["full", "lora"] = "full"


class _KnobsConfig(dg.Config, _Knobs):
    pass


def test_a_run_config_value_equal_to_the_class_default_still_overrides_the_settings_file():
    # Dagster counts a Literal field as set even when the run config leaves it out: the settings file's
    # `method: lora` was silently trained as `full` until with_overrides read the run config itself.
    settings_file = _Knobs(max_steps=450, learning_rate=3e-3, method="lora")
    seen = {}

    @dg.asset
    def probe(context: dg.AssetExecutionContext, config: _KnobsConfig) -> None:
        seen["options"] = with_overrides(settings_file, config, context)

    dg.materialize([probe], run_config={"ops": {"probe": {"config": {"max_steps": 60}}}})
    assert seen["options"] == _Knobs(max_steps=60, learning_rate=3e-3, method="lora")  # fields_set omits 60
    dg.materialize([probe])
    assert seen["options"] == settings_file
    dg.materialize([probe], run_config={"ops": {"probe": {"config": {"method": "full"}}}})
    assert seen["options"] == _Knobs(max_steps=450, learning_rate=3e-3, method="full")


def test_loading_the_definitions_leaves_torch_and_transformers_for_the_steps_that_need_them():
    """Every launched run and every code-server start loads the definitions; torch and transformers took ~11 s
    of that. They load when a step needs a model."""
    code = (
        "import sys, whisper_assets.definitions; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
