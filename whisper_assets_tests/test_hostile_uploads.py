"""A hostile but realistic upload tree, generated at test time: nothing outside the source is read, bad files
are rejected with the right reason, odd folders are reported, settings errors read as messages."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from whisper_assets.cli import main
from whisper_assets.settings import SettingsError
from whisper_assets.sources.folder import ignored_upload_folders
from whisper_assets.tables import read_rows, table_path
from whisper_assets_tests.helpers import materialize_source, tick

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hostile(make_settings, write_clip, tmp_path):
    settings = make_settings(sources=[{"name": "drop"}])
    root = settings.layout.uploads_root / "drop"
    outside = tmp_path / "elsewhere"
    write_clip(outside / "secret.wav", "a private recording", seconds=2.0)
    (outside / "secret.txt").write_text("private words", encoding="utf-8")
    write_clip(root / "real.wav", "a real recording here", seconds=2.0)
    (root / "real.txt").write_text("a real recording here", encoding="utf-8")
    os.symlink(outside / "secret.wav", root / "escape.wav")  # a link out of the source
    (root / "escape.txt").write_text("looks innocent", encoding="utf-8")
    os.symlink(root / "real.wav", root / "alias.wav")  # a link that stays inside
    (root / "alias.txt").write_text("a real recording here", encoding="utf-8")
    os.symlink(outside, root / "linked-folder")
    os.symlink(tmp_path / "gone.wav", root / "broken.wav")
    whole = (root / "real.wav").read_bytes()
    (root / "cut.wav").write_bytes(whole[:52])  # a header and 8 bytes: a truncated upload
    (root / "cut.txt").write_text("cut short", encoding="utf-8")
    (root / "metadata.csv").write_text(
        "file_name,transcription\n../../elsewhere/secret.wav,dot dot\n/etc/passwd,absolute\n",
        encoding="utf-8",
    )
    (root / "list.jsonl").write_text('{"audio": "../../elsewhere/secret.wav", "transcript": "x"}\n')
    (settings.layout.uploads_root / "My Source!").mkdir()
    return settings


def test_nothing_outside_the_source_is_read_and_bad_files_say_why(hostile):
    settings = hostile
    assert materialize_source(settings.data_root / "whisper_assets.yaml", "drop").success
    rows = {r["rel_path"]: r for r in read_rows(table_path(settings.layout.tables_root, "inventory", "drop"))}
    assert "outside the source folder: not read" in rows["escape.wav"]["rejection_reason"]
    assert not rows["escape.wav"]["is_audio"] and rows["escape.wav"]["sha256"] is None  # never opened
    assert rows["alias.wav"]["readable"] and rows["alias.wav"]["rejection_reason"] is None
    assert rows["linked-folder"]["rejection_reason"].startswith("linked folder: not followed")
    assert rows["broken.wav"]["rejection_reason"] == "broken symbolic link: not read"
    assert rows["cut.wav"]["rejection_reason"].startswith("truncated WAV: its header promises")
    assert not rows["cut.wav"]["readable"]
    assert "points outside the source folder" in rows["metadata.csv#L2"]["rejection_reason"]
    assert "points outside the source folder" in rows["metadata.csv#L3"]["rejection_reason"]
    assert "points outside the source folder" in rows["list.jsonl#L1"]["rejection_reason"]
    assert not any("secret" in r["rel_path"] for r in rows.values())
    processed = read_rows(table_path(settings.layout.tables_root, "processed_audio", "drop"))
    assert {r["rel_path"] for r in processed} <= {"real.wav", "alias.wav"}


def test_odd_folder_names_are_reported_where_people_look(hostile, capfd):
    settings = hostile
    reason = ignored_upload_folders(settings.layout)["My Source!"]
    assert "rename the folder to 'my-source'" in reason
    config = settings.data_root / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        result = tick(config, "new_uploads", instance)
        assert [r.partition_key for r in result.run_requests] == ["drop"]  # the odd folder is not a source
        assert "uploads/My Source!: not read" in capfd.readouterr().err  # the sensor's log, shown on its tick
        materialized = materialize_source(config, "drop", instance)
    [event] = [
        e for e in materialized.get_asset_materialization_events() if e.asset_key.path == ["inventory"]
    ]
    assert event.materialization.metadata["ignored_upload_folders"].value == {"My Source!": reason}


def test_a_settings_error_is_a_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: x, langauge: en}]\n")
    assert main(["query", "select 1", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sources.0.langauge: unknown key" in err and "Traceback" not in err and len(err.splitlines()) == 2
    with pytest.raises(SettingsError):
        main(["--debug", "query", "select 1", "--config", str(bad)])


@pytest.mark.slow
def test_dagster_refuses_to_load_with_invalid_settings(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: x, langauge: en}]\n")
    (tmp_path / "home").mkdir()
    env = {**os.environ, "WHISPER_ASSETS_CONFIG": str(bad), "DAGSTER_HOME": str(tmp_path / "home")}
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "sensor", "preview", "new_uploads", "-m", "whisper_assets.definitions"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "sources.0.langauge: unknown key" in done.stdout + done.stderr
