"""The review app's API on a real SQLite file, and its Dagster launcher against a local GraphQL server."""

import io
import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from whisper_assets.demo.data import speech_like
from whisper_assets.review_app.app import SESSION_COOKIE, create_app
from whisper_assets.sources import review_db
from whisper_assets_tests.helpers import run_alongside

LOCAL = "http://127.0.0.1:8080"  # the Host the app answers to by default


def add_row(db, text, reviewed=0, blob=None):
    with review_db.connect(db) as con:
        return con.execute(
            f"INSERT INTO {review_db.TABLE} (transcript, audio_blob, is_reviewed) VALUES (?, ?, ?)",
            (text, blob if blob is not None else review_db.encode_blob(speech_like(text)), reviewed),
        ).lastrowid


@pytest.fixture
def app_db(tmp_path):
    db = review_db.create_database(tmp_path / "review.db")
    ids = [add_row(db, f"entry number {i}", reviewed=i % 2) for i in range(7)]
    ids.append(add_row(db, "<script>alert(1)</script>"))
    ids.append(add_row(db, "broken audio", blob=b"nope"))
    return db, ids


@pytest.fixture
def client(app_db):
    app = create_app(app_db[0], dagster_graphql="http://127.0.0.1:9/graphql")
    with TestClient(app, base_url=LOCAL) as test_client:
        page = test_client.get("/").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        test_client.headers.update({"X-CSRF-Token": token, "X-Reviewer": "ana"})
        yield test_client


def test_listing_filters_sorts_and_bounds(client, app_db):
    _, ids = app_db
    page = client.get("/api/entries", params={"page_size": 3, "page": 2}).json()
    assert page["total"] == 9 and page["pages"] == 3 and [i["id"] for i in page["items"]] == ids[3:6]
    assert client.get("/api/entries", params={"page": 99}).json()["items"] == []
    assert client.get("/api/entries", params={"page_size": 500}).status_code == 422
    assert client.get("/api/entries", params={"page": 0}).status_code == 422
    reviewed = client.get("/api/entries", params={"reviewed": True}).json()
    assert reviewed["total"] == 3 and all(i["is_reviewed"] for i in reviewed["items"])
    assert client.get("/api/entries", params={"q": "number 4"}).json()["total"] == 1
    assert client.get("/api/entries", params={"q": "%"}).json()["total"] == 0  # LIKE wildcards are escaped
    assert client.get("/api/entries", params={"sort": "-id"}).json()["items"][0]["id"] == ids[-1]
    assert client.get("/api/entries", params={"sort": "id; DROP TABLE x"}).status_code == 422


def test_entry_details_audio_range_and_peaks(client, app_db):
    _, ids = app_db
    entry = client.get(f"/api/entries/{ids[1]}").json()
    assert entry["duration"] > 0 and entry["levels"]["peak_dbfs"] < 0 and entry["previous"] == ids[0]
    audio = client.get(f"/api/entries/{ids[1]}/audio")
    samples, rate = sf.read(io.BytesIO(audio.content))
    assert audio.headers["accept-ranges"] == "bytes" and rate == 16_000
    assert len(samples) / rate == pytest.approx(entry["duration"], abs=0.01)
    part = client.get(f"/api/entries/{ids[1]}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == audio.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(audio.content)}"
    assert client.get(f"/api/entries/{ids[1]}/audio", headers={"Range": "bytes=99999999-"}).status_code == 416
    assert len(client.get(f"/api/entries/{ids[1]}/peaks", params={"buckets": 50}).json()["peaks"]) == 50
    broken = client.get(f"/api/entries/{ids[-1]}").json()
    assert broken["levels"] is None and "not zlib" in broken["audio_error"]
    assert client.get(f"/api/entries/{ids[-1]}/audio").status_code == 422


@pytest.mark.parametrize("bad", ["999999", "-1", "abc", "1.5", "..%2F..%2Fetc%2Fpasswd"])
def test_bad_ids_are_refused(client, bad):
    assert client.get(f"/api/entries/{bad}").status_code in (404, 422)
    assert client.get(f"/api/entries/{bad}/audio").status_code in (404, 422)


def test_edits_need_the_current_version_and_are_recorded(client, app_db):
    db, ids = app_db
    entry = client.get(f"/api/entries/{ids[0]}").json()
    saved = client.put(
        f"/api/entries/{ids[0]}", json={"version": entry["version"], "transcript": "fixed text"}
    )
    assert saved.status_code == 200 and saved.json()["transcript"] == "fixed text"
    stale = client.put(
        f"/api/entries/{ids[0]}", json={"version": entry["version"], "transcript": "lost edit"}
    )
    assert stale.status_code == 409 and stale.json()["current"]["transcript"] == "fixed text"
    assert client.post(f"/api/entries/{ids[0]}/review").json()["is_reviewed"] is True
    history = client.get(f"/api/entries/{ids[0]}/history").json()
    assert [(h["action"], h["who"]) for h in history] == [("edit", "ana"), ("edit", "ana")]
    assert (
        history[0]["before"]["transcript"] == "entry number 0"
        and history[0]["after"]["transcript"] == "fixed text"
    )
    with review_db.connect(db, readonly=True) as con:
        assert con.execute(
            f"SELECT transcript FROM {review_db.TABLE} WHERE id = ?", (ids[0],)
        ).fetchone() == ("fixed text",)


def test_delete_goes_to_the_trash_and_restores(client, app_db):
    _, ids = app_db
    assert client.delete(f"/api/entries/{ids[2]}").status_code == 200
    assert client.get(f"/api/entries/{ids[2]}").status_code == 404
    assert [t["id"] for t in client.get("/api/trash").json()] == [ids[2]]
    restored = client.post(f"/api/trash/{ids[2]}/restore").json()
    assert restored["id"] == ids[2] and restored["transcript"] == "entry number 2"
    assert client.post(f"/api/trash/{ids[2]}/restore").status_code == 404
    assert client.get("/api/stats").json()["total"] == 9


def test_state_changes_need_the_csrf_token(client, app_db):
    _, ids = app_db
    entry = client.get(f"/api/entries/{ids[0]}").json()
    del client.headers["X-CSRF-Token"]
    assert (
        client.put(
            f"/api/entries/{ids[0]}", json={"version": entry["version"], "transcript": "x"}
        ).status_code
        == 403
    )
    assert client.delete(f"/api/entries/{ids[0]}").status_code == 403
    assert client.get("/api/stats").status_code == 200  # reads need no token


def test_script_in_a_transcript_is_data_and_the_page_renders_text_only(client, app_db):
    _, ids = app_db
    assert client.get(f"/api/entries/{ids[-2]}").json()["transcript"] == "<script>alert(1)</script>"
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script and "textContent" in script
    assert client.get("/openapi.json").json()["info"]["title"] == "whisper-assets review"


def test_an_access_token_guards_everything_when_set(app_db):
    with TestClient(create_app(app_db[0], access_token="s3cret"), base_url=LOCAL) as guarded:
        assert guarded.get("/api/stats").status_code == 401
        assert guarded.get("/static/app.js").status_code == 401
        assert guarded.get("/", params={"token": "wrong"}).status_code == 401
        assert guarded.get("/api/stats", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = guarded.get("/", params={"token": "s3cret", "entry": "3"}, follow_redirects=False)
        assert (
            first.status_code == 303 and first.headers["location"] == "/?entry=3"
        )  # the token leaves the URL
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "s3cret" not in cookie
        guarded.cookies.set(SESSION_COOKIE, first.cookies[SESSION_COOKIE])
        assert guarded.get("/static/app.js").status_code == 200  # the page's own files load with the session
        assert guarded.get("/api/stats").status_code == 200


class FakeDagster(BaseHTTPRequestHandler):
    """A GraphQL endpoint answering launchRun, runOrError and logsForRun like Dagster's, on 127.0.0.1."""

    launches: ClassVar[list]

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "launchRun" in body["query"]:
            self.launches.append(body["variables"]["params"])
            data = {
                "launchRun": {
                    "__typename": "LaunchRunSuccess",
                    "run": {"runId": f"run-{len(self.launches)}", "status": "QUEUED"},
                }
            }
        elif "runOrError" in body["query"]:
            data = {
                "runOrError": {
                    "__typename": "Run",
                    "runId": body["variables"]["runId"],
                    "status": "STARTED",
                    "startTime": 1.0,
                    "endTime": None,
                }
            }
        elif "assetOrError" in body["query"]:
            entries = [
                {"label": "train_items", "intValue": 80},
                {"label": "validation_items", "intValue": 12},
                {"label": "test_items", "intValue": 8},
                {"label": "train_hours"},
            ]
            data = {
                "assetOrError": {
                    "__typename": "Asset",
                    "assetMaterializations": [{"metadataEntries": entries}],
                }
            }
        else:
            data = {
                "logsForRun": {"__typename": "EventConnection", "events": [{"message": "step 1 loss 2.0"}]}
            }
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_training_starts_once_through_dagster_graphql(app_db):
    handler = type("Handler", (FakeDagster,), {"launches": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = create_app(app_db[0], dagster_graphql=f"http://127.0.0.1:{server.server_address[1]}/graphql")
        with TestClient(app, base_url=LOCAL) as api:
            token = re.search(r'name="csrf-token" content="([^"]+)"', api.get("/").text).group(1)
            api.headers["X-CSRF-Token"] = token
            request = {
                "base_model": "openai/whisper-small",
                "learning_rate": 1e-5,
                "batch_size": 2,
                "max_epochs": 2,
            }
            first = api.post("/api/train", json=request).json()
            second = api.post("/api/train", json=request).json()  # the double click
            assert first["run_id"] == "run-1" and first["already_running"] is False
            assert second["run_id"] == "run-1" and second["already_running"] is True
            assert len(handler.launches) == 1
            config = handler.launches[0]["runConfigData"]["ops"]["whisper_model"]["config"]
            assert config == {
                "base_model": "openai/whisper-small",
                "learning_rate": 1e-5,
                "batch_size": 2,
                "max_steps": 3,
            }
            assert handler.launches[0]["selector"]["jobName"] == "train_and_evaluate"
            assert api.get("/api/train/status").json()["status"] == "STARTED"
            assert api.get("/api/train/logs").json()[0]["message"] == "step 1 loss 2.0"
            data = api.get("/api/train/data").json()
            assert data["splits"] == {"train": 80, "validation": 12, "test": 8}
    finally:
        server.shutdown()
        server.server_close()


def test_dagster_down_is_a_clear_error(client):
    response = client.post("/api/train", json={})
    assert response.status_code == 502 and "not reachable" in response.json()["detail"]
    assert client.get("/api/train/data").json() == {"reviewed_not_trained": 3, "splits": None}


def test_ingest_reads_while_the_app_writes(app_db, tmp_path):
    from whisper_assets.review_app.store import ReviewStore

    db, ids = app_db
    store = ReviewStore(db)

    def reviewer():
        for round_ in range(40):
            for entry_id in ids[:6]:
                entry = store.get(entry_id)
                store.update(entry_id, entry["version"], "ana", f"round {round_}", is_reviewed=True)

    def ingest():
        review_db.export_reviewed(db, tmp_path / "mirror", "en")
        review_db.fingerprint(db)

    errors, exports = run_alongside(reviewer, ingest)
    assert errors == [] and exports >= 1
    reviewed = review_db.export_reviewed(db, tmp_path / "mirror", "en").exported
    assert reviewed == 6  # all six edited and reviewed
    assert {store.get(i)["transcript"] for i in ids[:6]} == {"round 39"}


def test_only_the_bound_host_names_are_served_and_writes_need_our_origin(client, app_db):
    _, ids = app_db
    assert client.get("/", headers={"Host": "attacker.example:18100"}).status_code == 421  # DNS rebinding
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST."):
        assert client.get("/api/stats", headers={"Host": host}).status_code == 200
    entry = client.get(f"/api/entries/{ids[0]}").json()
    edit = {"version": entry["version"], "transcript": "from another site"}
    foreign = client.put(
        f"/api/entries/{ids[0]}", json=edit, headers={"Origin": "http://attacker.example:18100"}
    )
    assert foreign.status_code == 403
    assert client.put(f"/api/entries/{ids[0]}", json=edit, headers={"Origin": "null"}).status_code == 403
    assert client.put(f"/api/entries/{ids[0]}", json=edit, headers={"Origin": LOCAL}).status_code == 200


def test_configured_names_and_wildcard_binding(app_db):
    named = create_app(app_db[0], bound_host="0.0.0.0", allowed_hosts=["review.lan"], access_token="t")
    with TestClient(named, base_url="http://review.lan") as api:
        assert api.get("/api/stats", headers={"Authorization": "Bearer t"}).status_code == 200
        assert (
            api.get("/api/stats", headers={"Host": "evil.example", "Authorization": "Bearer t"}).status_code
            == 421
        )


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        ("/api/entries/{id}", 404),
        ("/api/entries/{id}/audio", 404),
        ("/api/entries/{id}/peaks", 404),
        ("/api/entries/{id}/history", 200),  # history outlives entries: an unknown id has none
    ],
)
def test_ids_beyond_sqlite_integers_are_refused_by_the_schema(client, path, unknown):
    for big in (2**63, 99999999999999999999):
        assert client.get(path.format(id=big)).status_code == 422
    assert client.get(path.format(id=2**63 - 1)).status_code == unknown


def test_huge_ids_and_pages_never_reach_sqlite(client):
    assert client.delete(f"/api/entries/{2**63}").status_code == 422
    assert client.post(f"/api/trash/{2**63}/restore").status_code == 422
    assert client.get("/api/entries", params={"page": "999999999999999999999"}).status_code == 422


def test_restoring_over_a_reused_id_is_a_conflict(client, app_db):
    db, ids = app_db
    assert client.delete(f"/api/entries/{ids[3]}").status_code == 200
    with review_db.connect(db) as con:  # a new recording takes the freed id
        con.execute(f"INSERT INTO {review_db.TABLE} (id, transcript) VALUES (?, 'newcomer')", (ids[3],))
    conflict = client.post(f"/api/trash/{ids[3]}/restore")
    assert conflict.status_code == 409 and "has its id now" in conflict.json()["detail"]
    assert client.get(f"/api/entries/{ids[3]}").json()["transcript"] == "newcomer"


def test_a_decompression_bomb_is_refused_without_inflating_it(client, app_db, monkeypatch):
    db, _ = app_db
    bomb = zlib.compress(bytes(100 * 2**20), 9)  # ~100 KB that inflates to 100 MB
    assert len(bomb) < 150_000
    bomb_id = add_row(db, "bomb", blob=bomb)
    with pytest.raises(review_db.CorruptBlob, match="more than 600 s"):
        review_db.decode_blob(bomb)
    assert client.get(f"/api/entries/{bomb_id}/audio").status_code == 422
    assert "more than 600 s" in client.get(f"/api/entries/{bomb_id}").json()["audio_error"]
    assert review_db.decode_blob(bomb, max_seconds=3600).size == 50 * 2**20  # allowed when configured longer


def test_seeking_does_not_decode_the_blob_again(client, app_db, monkeypatch):
    _, ids = app_db
    calls = []
    real = review_db.decode_blob
    monkeypatch.setattr(review_db, "decode_blob", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        assert client.get(f"/api/entries/{ids[4]}/audio", headers={"Range": "bytes=0-99"}).status_code == 206
    assert client.get(f"/api/entries/{ids[4]}/peaks").status_code == 200
    assert len(calls) == 1


def test_no_op_edits_are_not_recorded_and_unplayable_entries_cannot_be_approved(client, app_db):
    _, ids = app_db
    entry = client.get(f"/api/entries/{ids[0]}").json()
    same = client.put(
        f"/api/entries/{ids[0]}", json={"version": entry["version"], "transcript": entry["transcript"]}
    )
    assert same.status_code == 200 and client.get(f"/api/entries/{ids[0]}/history").json() == []
    broken = client.get(f"/api/entries/{ids[-1]}").json()
    refused = client.post(f"/api/entries/{ids[-1]}/review")
    assert refused.status_code == 422 and "unplayable" in refused.json()["detail"]
    approve = {"version": broken["version"], "is_reviewed": True}
    assert client.put(f"/api/entries/{ids[-1]}", json=approve).status_code == 422
    assert client.get(f"/api/entries/{ids[-1]}").json()["is_reviewed"] is False


@pytest.mark.parametrize(
    ("host", "message"),
    [("", "--host is empty"), ("review.example", "pass --token"), ("10.0.0.5", "pass --token")],
)
def test_review_command_explains_bad_hosts_without_a_traceback(tmp_path, capsys, host, message):
    from whisper_assets.cli import main

    assert main(["review", "--db", str(tmp_path / "r.db"), "--host", host]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
