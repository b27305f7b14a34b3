"""The review-database source: export of reviewed rows, corrupt blobs, change detection, concurrent use."""

import sqlite3
import time
import zlib

import dagster as dg
import numpy as np
import pytest

from whisper_assets.asr.run_folder import RunFolder
from whisper_assets.curation.inventory import mark_trained
from whisper_assets.curation.manifests import write_manifest
from whisper_assets.demo.data import speech_like
from whisper_assets.sources import review_db
from whisper_assets.sources.mirror import REJECTIONS
from whisper_assets.tables import read_rows, table_path
from whisper_assets_tests.helpers import materialize_source, run_alongside, run_job, tick


def add_row(db, text, reviewed=1, blob=None):
    with review_db.connect(db) as con:
        cursor = con.execute(
            f"INSERT INTO {review_db.TABLE} (transcript, audio_blob, is_reviewed) VALUES (?, ?, ?)",
            (text, blob if blob is not None else review_db.encode_blob(speech_like(text)), reviewed),
        )
        return cursor.lastrowid


@pytest.fixture
def db(tmp_path):
    return review_db.create_database(tmp_path / "review.db")


def test_schema_is_exactly_the_review_apps(db):
    with sqlite3.connect(db) as con:
        columns = [(r[1], r[2], r[4], r[5]) for r in con.execute(f"PRAGMA table_info({review_db.TABLE})")]
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    assert columns == [
        ("id", "INTEGER", None, 1),
        ("transcript", "TEXT", None, 0),
        ("audio_blob", "BLOB", None, 0),
        ("is_reviewed", "INTEGER", "0", 0),
        ("is_trained", "INTEGER", "0", 0),
        ("timestamp", "DATETIME", "CURRENT_TIMESTAMP", 0),
    ]
    assert mode == "wal"


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"not zlib", "not zlib data"),
        (zlib.compress(b"\x01\x02\x03"), "odd count"),
        (b"", "empty audio blob"),
    ],
)
def test_corrupt_blobs_are_rejected_with_a_reason(blob, reason):
    with pytest.raises(review_db.CorruptBlob, match=reason):
        review_db.decode_blob(blob)


def test_export_mirrors_reviewed_rows_only_and_incrementally(db, tmp_path):
    first = add_row(db, "dobar dan")
    add_row(db, "not yet reviewed", reviewed=0)
    bad = add_row(db, "broken", blob=b"garbage")
    out = tmp_path / "mirror"
    stats = review_db.export_reviewed(db, out, "sr")
    assert (stats.exported, stats.written, stats.rejected) == (1, 1, 1)
    audio = review_db.decode_blob(review_db.encode_blob(speech_like("dobar dan")))
    import soundfile as sf

    written, rate = sf.read(out / f"{first}.wav", dtype="float32")
    assert rate == 16_000 and np.allclose(written, audio, atol=1 / 32768)
    assert f"row {bad}" in (out / REJECTIONS).read_text()

    again = review_db.export_reviewed(db, out, "sr")
    assert again.written == 0  # unchanged rows are not decoded again
    with review_db.connect(db) as con:
        con.execute(f"UPDATE {review_db.TABLE} SET is_reviewed = 0 WHERE id = ?", (first,))
    gone = review_db.export_reviewed(db, out, "sr")
    assert gone.removed == 1 and not (out / f"{first}.wav").exists()


def test_fingerprint_changes_on_add_edit_and_delete_of_reviewed_rows(db):
    empty = review_db.fingerprint(db)
    row = add_row(db, "one")
    added = review_db.fingerprint(db)
    add_row(db, "draft", reviewed=0)
    assert review_db.fingerprint(db) == added  # unreviewed rows do not matter
    with review_db.connect(db) as con:
        con.execute(f"UPDATE {review_db.TABLE} SET transcript = 'one!' WHERE id = ?", (row,))
    edited = review_db.fingerprint(db)
    with review_db.connect(db) as con:
        con.execute(f"DELETE FROM {review_db.TABLE} WHERE id = ?", (row,))
    assert len({empty, added, edited, review_db.fingerprint(db)}) == 3  # deleting returns to the empty value
    assert review_db.fingerprint(db) == empty


def test_review_db_source_flows_through_the_ingest_assets(db, make_settings, tmp_path):
    ids = [add_row(db, text) for text in ("prvi snimak govora", "drugi snimak govora")]
    add_row(db, "broken", blob=zlib.compress(b"\x00" * 3))
    settings = make_settings(
        sources=[{"name": "reviews", "kind": "review_db", "path": "review.db", "language": "sr"}]
    )
    with dg.instance_for_test() as instance:
        result = materialize_source(tmp_path / "whisper_assets.yaml", "reviews", instance)
        # an unchanged database mirrors to unchanged files: the next run stops after the inventory
        again = materialize_source(tmp_path / "whisper_assets.yaml", "reviews", instance)
        assert again.success and again.get_asset_materialization_events() == []
        with review_db.connect(db) as con:
            con.execute(f"UPDATE {review_db.TABLE} SET transcript = 'treći' WHERE id = ?", (ids[1],))
        edited = materialize_source(tmp_path / "whisper_assets.yaml", "reviews", instance)
        assert "inventory" in {e.asset_key.path[-1] for e in edited.get_asset_materialization_events()}
    assert result.success
    inventory = {
        r["id"]: r for r in read_rows(table_path(settings.layout.tables_root, "inventory", "reviews"))
    }
    assert {f"reviews-{i}" for i in ids} <= set(inventory)
    assert '"row_id"' in inventory[f"reviews-{ids[0]}"]["provenance"]
    [rejected] = [r for r in inventory.values() if r["rejection_reason"]]
    assert "odd count" in rejected["rejection_reason"]
    processed = read_rows(table_path(settings.layout.tables_root, "processed_audio", "reviews"))
    assert sorted(r["id"] for r in processed if r["status"] == "ok") == sorted(f"reviews-{i}" for i in ids)

    marked = mark_trained(settings.discover_sources(), [{"id": f"reviews-{ids[0]}", "source": "reviews"}])
    assert marked == {"reviews": 1}
    with review_db.connect(db, readonly=True) as con:
        trained = dict(con.execute(f"SELECT id, is_trained FROM {review_db.TABLE}").fetchall())
    assert trained[ids[0]] == 1 and trained[ids[1]] == 0


def test_the_platform_reads_while_the_app_writes(db, tmp_path):
    add_row(db, "seed row")
    written = []

    def app():  # the review app: inserts and edits in short write transactions
        with review_db.connect(db) as con:
            for i in range(60):
                con.execute("BEGIN IMMEDIATE")
                cursor = con.execute(
                    f"INSERT INTO {review_db.TABLE} (transcript, audio_blob, is_reviewed) VALUES (?, ?, 1)",
                    (f"row {i}", review_db.encode_blob(speech_like(f"row {i}")[:8000])),
                )
                con.execute(f"UPDATE {review_db.TABLE} SET transcript = transcript || '.' WHERE id = 1")
                con.execute("COMMIT")
                written.append(cursor.lastrowid)
                time.sleep(0.002)

    def platform():
        review_db.fingerprint(db)
        review_db.export_reviewed(db, tmp_path / "mirror", "en")
        review_db.mark_trained(db, written[:5])

    errors, exports = run_alongside(app, platform)
    assert errors == [] and exports > 1
    final = review_db.export_reviewed(db, tmp_path / "mirror", "en")
    assert final.exported == 61 and final.rejected == 0


def test_the_sensor_runs_a_review_db_source_when_reviewed_rows_change(db, make_settings, tmp_path):
    add_row(db, "first")
    make_settings(sources=[{"name": "reviews", "kind": "review_db", "path": str(db)}])
    config = tmp_path / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        first = tick(config, "new_uploads", instance)
        assert [r.partition_key for r in first.run_requests] == ["reviews"]
        quiet = tick(config, "new_uploads", instance, first.cursor)
        assert quiet.run_requests == []
        add_row(db, "draft", reviewed=0)
        still = tick(config, "new_uploads", instance, quiet.cursor)
        assert still.run_requests == []
        add_row(db, "second")
        changed = tick(config, "new_uploads", instance, still.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["reviews"]


def test_the_write_back_asset_marks_the_latest_runs_training_rows(db, make_settings, tmp_path):
    trained, held_out = add_row(db, "u treningu"), add_row(db, "u testu")
    settings = make_settings(sources=[{"name": "reviews", "kind": "review_db", "path": str(db)}])
    run = RunFolder.of(settings.layout.models_root, "run-abc")
    write_manifest(
        run.manifest("train"), [manifest_row(f"reviews-{trained}"), manifest_row("other-1", "other")]
    )
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("whisper_model", metadata={"run": run.name})
        )
        result = run_job(
            tmp_path / "whisper_assets.yaml", "train_and_evaluate", instance, assets=["trained_items_marked"]
        )
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["marked_trained"].value == {"reviews": 1}
    with review_db.connect(db, readonly=True) as con:
        flags = dict(con.execute(f"SELECT id, is_trained FROM {review_db.TABLE}").fetchall())
    assert flags == {trained: 1, held_out: 0}


def manifest_row(item_id: str, source: str = "reviews") -> dict:
    return {
        "id": item_id,
        "parent_id": item_id,
        "offset": 0.0,
        "audio": "x.wav",
        "transcript": "x",
        "duration": 1.0,
        "language": "hr",
        "speaker": None,
        "source": source,
    }
