"""Review hardest first: the score, the ranking of a review database with a real model, the asset, and the
review app's order."""

import dagster as dg
import numpy as np
import pytest
import soxr
import yaml
from fastapi.testclient import TestClient

from whisper_assets.demo.data import espeak_available, synthesize
from whisper_assets.evaluation.review_policy import PrioritySettings, Signals, priority
from whisper_assets.review_app.app import create_app
from whisper_assets.sources import review_db
from whisper_assets_tests.helpers import TINY_EN, run_job, tick
from whisper_assets_tests.training_fixtures import make_tiny_model

DIGITS = "zero one two three four five six seven eight nine".split()


def test_the_score_rises_with_each_signal_and_names_its_reasons():
    settings = PrioritySettings()
    clean, _ = priority(Signals(0.0, -0.3, -1.0, 14.0), settings)
    disagree, reasons = priority(Signals(1.0, -0.3, -1.0, 14.0), settings)
    improbable, _ = priority(Signals(0.0, -4.0, -1.0, 14.0), settings)
    one_word, word_reasons = priority(Signals(0.0, -0.5, -12.0, 14.0), settings)
    too_fast, fast_reasons = priority(Signals(0.0, -0.3, -1.0, 60.0), settings)
    assert clean < 0.05 and reasons == ["model disagrees"] and fast_reasons == ["speaking rate implausible"]
    assert word_reasons == ["a word improbable for the audio"] and one_word > clean
    assert disagree == pytest.approx(clean + settings.disagreement_weight, abs=0.01)
    assert improbable > clean and too_fast > clean
    assert priority(Signals(1.0, -9.0, -20.0, 0.5), settings)[0] == 1.0


def insert(db, transcript, samples, reviewed=0):
    with review_db.connect(db) as con:
        return con.execute(
            f"INSERT INTO {review_db.TABLE} (transcript, audio_blob, is_reviewed) VALUES (?, ?, ?)",
            (transcript, review_db.encode_blob(samples), reviewed),
        ).lastrowid


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "We will meet at the station after lunch on Monday.",
    "He opened the window and listened to the rain.",
    "My brother plays the guitar in a small band.",
    "Turn left at the next corner and keep going straight.",
    "I would like a cup of coffee with a little milk.",
]
WRONG = {  # entry index -> an injected transcript error
    1: "We will meet at the station after dinner on Monday.",  # a word substituted
    4: "My brother plays the guitar in a small band.",  # another clip's transcript
    8: "He opened the window",  # cut off
}


def spoken(text: str, voice: str) -> np.ndarray:
    samples, rate = synthesize(text, voice)
    return soxr.resample(samples, rate, 16_000).astype(np.float32)


@pytest.mark.skipif(
    not (TINY_EN.exists() and espeak_available()), reason="needs ../shared's tiny.en and espeak-ng"
)
def test_injected_transcript_errors_rank_first_with_a_real_model(tmp_path):
    from whisper_assets.evaluation.review_priority import rank_pending

    db = review_db.create_database(tmp_path / "review.db")
    wrong = set()
    for k in range(12):
        text = SENTENCES[k % 6]
        entry = insert(db, WRONG.get(k, text), spoken(text, ("en-us", "en-gb")[k // 6]))
        if k in WRONG:
            wrong.add(entry)
    corrupt = insert(db, "broken", np.zeros(8000))
    with review_db.connect(db) as con:
        con.execute(f"UPDATE {review_db.TABLE} SET audio_blob = ? WHERE id = ?", (b"not zlib", corrupt))
    insert(db, "already reviewed", spoken("nothing to do", "en-us"), reviewed=1)

    settings = PrioritySettings()
    first = rank_pending(db, str(TINY_EN), "tiny.en", "en", settings)
    assert (first.scored, first.reused, first.unplayable) == (13, 0, 1)
    with review_db.connect(db, readonly=True) as con:
        ranked = con.execute(
            f"SELECT entry_id, score, reasons, hypothesis FROM {review_db.PRIORITY_TABLE} ORDER BY score DESC"
        ).fetchall()
    order = [row[0] for row in ranked]
    assert order[0] == corrupt and "audio unplayable" in ranked[0][2]
    assert set(order[1:4]) == wrong, [
        (r[0], r[1], r[3]) for r in ranked
    ]  # every injected error before every correct transcript

    # Only what changed is scored again: a corrected transcript; a reviewed entry's score is dropped.
    fixed = min(wrong)
    with review_db.connect(db) as con:
        con.execute(f"UPDATE {review_db.TABLE} SET transcript = ? WHERE id = ?", (SENTENCES[1], fixed))
        con.execute(f"UPDATE {review_db.TABLE} SET is_reviewed = 1 WHERE id = ?", (order[-1],))
    again = rank_pending(db, str(TINY_EN), "tiny.en", "en", settings)
    assert (again.scored, again.reused) == (1, 11)
    with review_db.connect(db, readonly=True) as con:
        scores = dict(con.execute(f"SELECT entry_id, score FROM {review_db.PRIORITY_TABLE}").fetchall())
    assert order[-1] not in scores and scores[fixed] < min(scores[w] for w in wrong - {fixed})


@pytest.fixture
def scored_db(tmp_path):
    """A review database with priorities as the asset stores them (no model needed)."""
    db = review_db.create_database(tmp_path / "review.db")
    ids = [insert(db, text, np.full(16_000, 0.1, dtype=np.float32)) for text in ("a", "b", "c", "d")]
    keys = {e.id: e.key for e in review_db.pending_entries(db)}
    rows = [
        {
            "entry_id": i,
            "entry_key": keys[i],
            "model": "m",
            "hypothesis": f"heard {i}",
            "score": s,
            "reasons": "[]",
            "disagreement": 1.0,
            "logprob": -1.0,
            "word_logprob": -2.0,
            "chars_per_second": 10.0,
        }
        for i, s in zip(ids[:3], (0.2, 0.9, 0.5), strict=True)
    ]
    review_db.write_priorities(db, rows, keep=ids)
    return db, ids


def test_the_review_app_orders_hardest_first_and_shows_what_the_model_heard(scored_db):
    db, (a, b, c, d) = scored_db
    client = TestClient(create_app(db), base_url="http://127.0.0.1")
    listed = client.get("/api/entries", params={"sort": "hardest"}).json()["items"]
    assert [e["id"] for e in listed] == [b, c, a, d]  # never-scored entries last
    entry = client.get(f"/api/entries/{b}", params={"order": "hardest"}).json()
    assert entry["priority"] == {"model": "m", "hypothesis": f"heard {b}", "score": 0.9, "reasons": []}
    assert entry["next"] == entry["next_unreviewed"] == c  # the queue, not the next id
    assert (
        client.get(f"/api/entries/{b}").json()["next"] == c
        and client.get(f"/api/entries/{a}").json()["next"] == b
    )

    # An edited transcript invalidates the score shown for it.
    edited = client.put(
        f"/api/entries/{c}",
        json={"version": client.get(f"/api/entries/{c}").json()["version"], "transcript": "c fixed"},
        headers={"x-csrf-token": _csrf(client)},
    )
    assert edited.status_code == 200 and client.get(f"/api/entries/{c}").json()["priority"] is None


def _csrf(client) -> str:
    page = client.get("/").text
    return page.split('name="csrf-token" content="')[1].split('"')[0]


def test_the_asset_ranks_a_review_database_and_skips_other_sources(tmp_path):
    db = review_db.create_database(tmp_path / "review.db")
    for digit in range(3):
        insert(db, DIGITS[digit], np.sin(np.arange(16_000) * (0.05 + digit / 50)).astype(np.float32) * 0.3)
    (tmp_path / "uploads" / "plain").mkdir(parents=True)
    config = tmp_path / "whisper_assets.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_root": ".",
                "training": {"base_model": str(make_tiny_model(tmp_path / "base"))},
                "sources": [{"name": "reviews", "kind": "review_db", "path": "review.db"}, {"name": "plain"}],
            }
        )
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset_sources", ["reviews", "plain"])
        ranked = run_job(config, "rank_reviews", instance, partition_key="reviews")
        skipped = run_job(config, "rank_reviews", instance, partition_key="plain")
    [event] = ranked.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["scored"] == 3 and meta["model"] == str(tmp_path / "base")
    [event] = skipped.get_asset_materialization_events()
    assert event.materialization.metadata["ranked"].value.startswith("not a review database")
    with review_db.connect(db, readonly=True) as con:
        stored = con.execute(f"SELECT count(*), min(score) FROM {review_db.PRIORITY_TABLE}").fetchone()
    assert stored[0] == 3 and 0 <= stored[1] <= 1


def test_the_review_queue_sensor_asks_again_only_when_pending_entries_change(tmp_path):
    db = review_db.create_database(tmp_path / "review.db")
    first = insert(db, "one", np.zeros(16_000, dtype=np.float32))
    (tmp_path / "uploads" / "plain").mkdir(parents=True)
    config = tmp_path / "whisper_assets.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data_root": ".", "sources": [{"name": "reviews", "kind": "review_db", "path": "review.db"}]}
        )
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset_sources", ["reviews", "plain"])
        [request] = tick(config, "review_queue", instance)
        assert request.partition_key == "reviews" and request.run_key.startswith("reviews:none:")
        assert [r.run_key for r in tick(config, "review_queue", instance)] == [request.run_key]
        insert(db, "two", np.zeros(16_000, dtype=np.float32))
        [added] = tick(config, "review_queue", instance)
        with review_db.connect(db) as con:
            con.execute(f"UPDATE {review_db.TABLE} SET is_reviewed = 1 WHERE id = ?", (first,))
        [reviewed] = tick(config, "review_queue", instance)
    assert len({request.run_key, added.run_key, reviewed.run_key}) == 3
