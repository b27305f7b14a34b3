"""The transcription server through the official `openai` client: formats, errors, the champion it follows,
hot-swap under load, fallback from a broken version, pins and the `champion` command."""

from __future__ import annotations

import io
import json
import random
import string
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from whisper_assets.export.ctranslate import export_available

pytestmark = pytest.mark.skipif(
    not export_available(), reason="the `export` extra (ctranslate2, faster-whisper) is not installed"
)

from whisper_assets.audio.process import to_mono_16k  # noqa: E402
from whisper_assets.cli import main  # noqa: E402
from whisper_assets.demo.data import espeak_available, synthesize  # noqa: E402
from whisper_assets.serving import ServingSettings  # noqa: E402
from whisper_assets.serving.app import create_app  # noqa: E402
from whisper_assets.serving.engine import Segment, Transcription, load_model  # noqa: E402
from whisper_assets.serving.errors import NotServable  # noqa: E402
from whisper_assets.serving.pool import ModelPool  # noqa: E402
from whisper_assets.serving.smoke import BUNDLED_TRANSCRIPT, SmokeClip, implausibility  # noqa: E402
from whisper_assets.text.timings import parse_subtitles  # noqa: E402
from whisper_assets.tracking.tracker import Tracker  # noqa: E402
from whisper_assets_tests.helpers import BASE, free_port  # noqa: E402
from whisper_assets_tests.serving_fixtures import register, running, tiny_models  # noqa: E402

openai = pytest.importorskip("openai")
FAST = {"beam_size": 1, "poll_seconds": 0.2}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """An embedded MLflow registry with v1 (speaks the smoke clip, exported), v2 (untrained: broken, exported)
    and v3 (speaks, but never exported)."""
    root = tmp_path_factory.mktemp("serving")
    speaking, untrained = tiny_models(root / "models")
    tracker = Tracker(
        f"sqlite:///{root / 'mlflow.db'}",
        "serving",
        "whisper-assets",
        artifact_location=(root / "artifacts").as_uri(),
    )
    versions = [
        register(tracker, speaking, root / "exports"),
        register(tracker, untrained, root / "exports"),
        register(tracker, speaking, None),
    ]
    assert versions == ["1", "2", "3"]
    tracker.set_champion("1")
    clip = root / "clip.wav"
    sf.write(clip, SmokeClip.from_settings(ServingSettings()).samples, 16_000)
    return tracker, root, clip


def pool_for(registry, cache: str = "cache", **settings) -> ModelPool:
    tracker, root, _ = registry
    return ModelPool.create(tracker, ServingSettings(**(FAST | settings)), root / cache)


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def wait_for(url: str, check, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health").json()
        if check(health):
            return health
        time.sleep(0.1)
    raise AssertionError(f"health never satisfied the check: {health}")


def serving(url: str, version: str) -> dict:
    return wait_for(url, lambda h: h["model_version"] == version)


def said(text: str, end: float = 4.0) -> Transcription:
    segment = Segment(0, 0, 0.0, end, text, [], 0.0, -0.2, 1.0, 0.01, ())
    return Transcription(text, "en", 5.1, [segment])


@pytest.mark.parametrize(
    ("text", "end", "why"),
    [
        ("", 4.0, "empty transcript"),
        ("\ufffd\x7f\x11", 4.0, "byte debris"),
        ("works " * 30, 4.0, "repetition loop"),
        (
            "Please transcribe this short sentence, so we know the model still works.",
            33.0,
            "timestamps run to 33.0",
        ),
        ("Completely unrelated words about the weather today.", 4.0, "WER"),
        ("".join(random.Random(0).choices(string.ascii_lowercase + " ", k=200)), 4.0, "characters for 5.1 s"),
    ],
)
def test_the_smoke_test_names_what_is_broken(text, end, why):
    assert why in implausibility(said(text, end), 5.1, BUNDLED_TRANSCRIPT, "en", 0.5)


def test_the_smoke_test_passes_a_plausible_transcript():
    close = "Please transcribe this short sentence so we know the model still works"
    assert implausibility(said(close), 5.1, BUNDLED_TRANSCRIPT, "en", 0.5) is None
    assert implausibility(said("Molim vas, prepišite ovu rečenicu."), 5.1, None, "hr", 0.5) is None


def test_a_trimmed_window_export_is_refused_before_loading(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"chunk_length": 10}))
    with pytest.raises(NotServable, match="trimmed 10 s encoder window"):
        load_model(tmp_path, "4", ServingSettings())


def test_every_response_format(registry):
    _, _, clip = registry
    with running(create_app(pool_for(registry))) as url:
        serving(url, "1")
        api = client(url)
        with clip.open("rb") as audio:
            plain = api.audio.transcriptions.create(model="whisper-1", file=audio)
        assert plain.text.split()[:2] == BUNDLED_TRANSCRIPT.split()[:2]
        assert plain.usage.seconds == 6  # 5.1 s, rounded up as OpenAI bills

        def create(**kwargs):
            with clip.open("rb") as audio:
                return api.audio.transcriptions.create(model="champion", file=audio, **kwargs)

        assert create(response_format="text").strip() == plain.text
        srt = parse_subtitles(create(response_format="srt"), ".srt")
        vtt = parse_subtitles(create(response_format="vtt"), ".vtt")
        assert [c.text for c in srt] == [c.text for c in vtt] and " ".join(c.text for c in srt) == plain.text
        assert 0 <= srt[0].start < srt[-1].end <= 5.2

        verbose = create(response_format="verbose_json", timestamp_granularities=["word", "segment"])
        assert verbose.language == "english" and verbose.duration == pytest.approx(5.095, abs=0.01)
        assert verbose.text == plain.text and verbose.segments[0].avg_logprob < 0
        words = [w.word for w in verbose.words]
        assert " ".join(words) == plain.text
        assert all(0 <= w.start <= w.end <= 5.2 for w in verbose.words)
        assert [w.start for w in verbose.words] == sorted(w.start for w in verbose.words)
        only_segments = create(response_format="verbose_json")
        assert only_segments.segments and not getattr(only_segments, "words", None)

        # CTranslate2 counts a Whisper with a small vocabulary (the tiny test model's) as English-only.
        with clip.open("rb") as audio, pytest.raises(openai.BadRequestError) as raised:
            api.audio.translations.create(model="whisper-1", file=audio)
        assert raised.value.body["message"] == "model v1 is English-only: it cannot translate"


def test_errors_in_openais_shape(registry, tmp_path):
    _, _, clip = registry
    with running(create_app(pool_for(registry, max_upload_mb=0.25))) as url:
        serving(url, "1")
        api = client(url)

        def fails(error, file_bytes: bytes | None = None, name: str = "clip.wav", **kwargs) -> dict:
            audio = (name, file_bytes if file_bytes is not None else clip.read_bytes())
            with pytest.raises(error) as raised:
                api.audio.transcriptions.create(**({"model": "whisper-1", "file": audio} | kwargs))
            return raised.value.body

        assert "not audio" in fails(openai.BadRequestError, b"plain text, no sound", "notes.txt")["message"]
        assert fails(openai.BadRequestError, b"", "empty.wav")["message"] == "the file is empty"
        noise = np.random.default_rng(0).normal(0, 0.1, 16_000 * 40).astype(np.float32)
        for seconds in (10, 40):  # 0.6 MB: refused once read; 2.4 MB: refused by its Content-Length
            sf.write(tmp_path / "big.wav", noise[: 16_000 * seconds], 16_000, subtype="FLOAT")
            big = fails(openai.APIStatusError, (tmp_path / "big.wav").read_bytes())
            assert big["code"] == "file_too_large" and "at most 0.25 MB" in big["message"]
        unknown = fails(openai.NotFoundError, model="gpt-4o-transcribe")
        assert unknown["code"] == "model_not_found" and unknown["param"] == "model"
        assert fails(openai.NotFoundError, model="99")["code"] == "model_not_found"
        assert fails(openai.BadRequestError, response_format="xml")["param"] == "response_format"
        assert fails(openai.BadRequestError, temperature=1.5)["param"] == "temperature"
        assert fails(openai.BadRequestError, language="klingon")["param"] == "language"
        granular = fails(openai.BadRequestError, timestamp_granularities=["word"])
        assert granular["param"] == "timestamp_granularities"
        missing = httpx.post(f"{url}/v1/audio/transcriptions", data={"model": "whisper-1"})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
        # After every error the server still transcribes.
        with clip.open("rb") as audio:
            assert api.audio.transcriptions.create(model="whisper-1", file=audio).text


def test_models_lists_versions_and_aliases(registry):
    with running(create_app(pool_for(registry))) as url:
        serving(url, "1")
        models = {m.id: m for m in client(url).models.list()}
        assert {"1", "2", "3", "champion", "whisper-1"} <= set(models)
        assert models["champion"].version == "1" and models["1"].role == "champion" and models["1"].served
        assert models["1"].exported and not models["3"].exported
        assert client(url).models.retrieve("2").id == "2"
        with pytest.raises(openai.NotFoundError):
            client(url).models.retrieve("nope")
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["device"] == "cpu" and health["compute_type"] == "int8"


def test_hot_swap_under_load_fails_no_request(registry):
    """While requests stream in, the champion moves to v3 (no export: the server converts it); every request
    succeeds, the early ones on v1 and the late ones on v3."""
    tracker, _, clip = registry
    tracker.set_champion("1")
    try:
        with running(create_app(pool_for(registry, cache="swap-cache"))) as url:
            serving(url, "1")
            api = client(url)
            swapped = threading.Event()

            def request(_: int) -> str:
                with clip.open("rb") as audio:
                    raw = api.audio.transcriptions.with_raw_response.create(model="whisper-1", file=audio)
                assert raw.parse().text
                return raw.headers["x-model-version"]

            def traffic() -> list[str]:
                versions = []
                with ThreadPoolExecutor(4) as workers:
                    while not swapped.is_set() or versions.count("3") < 4:
                        versions += list(workers.map(request, range(4)))
                return versions

            with ThreadPoolExecutor(1) as background:
                load = background.submit(traffic)
                time.sleep(0.5)
                tracker.set_champion("3")
                health = serving(url, "3")
                swapped.set()
                versions = load.result(timeout=120)
            roles = {m.id: m.role for m in api.models.list() if m.id.isdigit()}
        assert versions[0] == "1" and versions[-1] == "3" and set(versions) == {"1", "3"}
        assert health["status"] == "ok" and health["rejected"] == {}
        assert roles == {"1": "previous champion", "2": "candidate", "3": "champion"}
    finally:
        tracker.set_champion("1")


def test_a_broken_version_is_not_swapped_in(registry, caplog):
    tracker, _, clip = registry
    tracker.set_champion("1")
    try:
        with running(create_app(pool_for(registry))) as url:
            serving(url, "1")
            tracker.set_champion("2")
            health = wait_for(url, lambda h: "2" in h["rejected"])
            assert health["model_version"] == "1" and health["status"] == "degraded"
            assert "smoke test" in health["rejected"]["2"] and "v2 was not swapped in" in health["message"]
            with clip.open("rb") as audio:
                raw = client(url).audio.transcriptions.with_raw_response.create(model="champion", file=audio)
            assert raw.headers["x-model-version"] == "1"
            # Pinning the broken version per request says why it is not served.
            with clip.open("rb") as audio, pytest.raises(openai.InternalServerError) as raised:
                client(url).audio.transcriptions.create(model="2", file=audio)
            assert "smoke test" in raised.value.body["message"]
    finally:
        tracker.set_champion("1")


def test_a_version_that_failed_to_load_is_tried_again_after_its_back_off(registry, monkeypatch):
    """A transient failure (here the disk, at the load) does not keep v1 out until a restart."""
    import whisper_assets.serving.pool as pool_module

    real_load, calls = pool_module.load_model, []

    def load_failing_once(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pool_module, "load_model", load_failing_once)
    pool = pool_for(registry, retry_rejected_seconds=0.5)
    pool.refresh()
    health = pool.health()
    assert health["model_version"] is None and "No space left" in health["rejected"]["1"]
    assert "tried again after" in health["message"] and health["retry_rejected_at"]["1"]
    pool.refresh()
    assert calls == ["1"]  # not hammered before its back-off
    time.sleep(0.6)
    pool.refresh()
    health = pool.health()
    assert calls == ["1", "1"] and health["model_version"] == "1" and health["rejected"] == {}


def test_overload_is_refused_with_retry_after_and_every_request_is_answered(registry):
    _, _, clip = registry
    long_clip = np.tile(sf.read(clip, dtype="float32")[0], 12)  # a minute: two windows per request
    payload = io.BytesIO()
    sf.write(payload, long_clip, 16_000, format="WAV")
    with running(create_app(pool_for(registry, workers=1, max_waiting=1))) as url:
        serving(url, "1")
        start = threading.Barrier(8)

        def request(_: int) -> int:
            start.wait()
            response = httpx.post(
                f"{url}/v1/audio/transcriptions",
                data={"model": "whisper-1"},
                files={"file": ("long.wav", payload.getvalue())},
                timeout=120,
            )
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["error"]["code"] == "rate_limit_exceeded"
            return response.status_code

        with ThreadPoolExecutor(8) as senders:
            statuses = list(senders.map(request, range(8)))
        health = httpx.get(f"{url}/health").json()
    assert set(statuses) == {200, 429} and statuses.count(200) >= 2
    assert health["status"] == "ok" and health["queue"]["refused"] == statuses.count(429)
    assert health["queue"]["running"] == health["queue"]["waiting"] == 0


def test_a_request_past_its_timeout_gets_504_and_the_server_goes_on(registry):
    _, _, clip = registry
    with running(create_app(pool_for(registry, request_timeout_seconds=0.001))) as url:
        serving(url, "1")
        with clip.open("rb") as audio, pytest.raises(openai.InternalServerError) as raised:
            client(url).audio.transcriptions.create(model="whisper-1", file=audio)
        assert raised.value.status_code == 504 and raised.value.body["code"] == "timeout"
        assert "request_timeout_seconds" in raised.value.body["message"]
        health = wait_for(url, lambda h: h["queue"]["running"] == h["queue"]["waiting"] == 0)
    assert health["queue"]["timed_out"] == 1 and health["status"] == "ok"


def test_pins_per_request_and_per_server(registry):
    _, _, clip = registry
    with running(create_app(pool_for(registry, pinned_version="3", cache="swap-cache"))) as url:
        health = serving(url, "3")
        assert health["following"] == "pinned" and health["status"] == "ok"
        with clip.open("rb") as audio:
            raw = client(url).audio.transcriptions.with_raw_response.create(model="v1", file=audio)
        assert raw.headers["x-model-version"] == "1"
        assert httpx.get(f"{url}/health").json()["pinned_by_requests"] == ["1"]


def test_a_new_champion_already_loaded_for_requests_is_not_loaded_again(registry):
    tracker, _, _ = registry
    tracker.set_champion("1")
    pool = pool_for(registry, cache="swap-cache")
    try:
        pool.refresh()
        pinned = pool.model_for("3")
        tracker.set_champion("3")
        pool.refresh()
        assert pool.model_for("champion") is pinned
    finally:
        tracker.set_champion("1")


def test_no_champion_says_what_to_materialize(tmp_path):
    tracker = Tracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "empty", "whisper-assets", artifact_location=tmp_path.as_uri()
    )
    pool = ModelPool.create(tracker, ServingSettings(**FAST), tmp_path / "cache")
    with running(create_app(pool)) as url:
        health = wait_for(url, lambda h: h["registry_checked_at"] is not None)
        response = httpx.get(f"{url}/health")
        assert response.status_code == 503 and health["status"] == "unavailable"
        assert "train_and_evaluate" in health["message"]
        with pytest.raises(openai.APIStatusError) as raised:
            client(url).audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"))
        assert raised.value.status_code == 503 and "no champion" in raised.value.body["message"]


def test_a_token_guards_every_route_but_health_and_the_favicon(registry):
    _, _, clip = registry
    with running(create_app(pool_for(registry), access_token="s3cret")) as url:
        serving(url, "1")
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").models.list()
        with clip.open("rb") as audio:
            assert client(url, "s3cret").audio.transcriptions.create(model="whisper-1", file=audio).text
        foreign = httpx.get(f"{url}/health", headers={"host": "evil.example"})
        assert foreign.status_code == 421
        assert httpx.get(f"{url}/health").status_code == 200  # no key: what a browser opens
        assert httpx.get(f"{url}/favicon.ico").status_code == 204
        assert httpx.get(f"{url}/v1/models").status_code == 401


def settings_file(folder: Path, tracker: Tracker, **extra) -> Path:
    """A settings file on the fixture's registry (YAML is a superset of JSON)."""
    config = folder / "whisper_assets.yaml"
    mlflow = {"tracking_uri": tracker.tracking_uri, "experiment": "serving"}
    config.write_text(json.dumps({"data_root": str(folder), "mlflow": mlflow, **extra}))
    return config


def test_champion_command_rolls_back(registry, tmp_path, capsys):
    tracker, _, _ = registry
    config = settings_file(tmp_path, tracker)
    try:
        assert main(["champion", "--config", str(config), "--set", "3"]) == 0
        assert tracker.champion() == "3" and "v1 -> v3" in capsys.readouterr().out
        assert main(["champion", "--config", str(config), "--set", "9"]) == 2
        assert "no version '9'" in capsys.readouterr().err
        assert main(["champion", "--config", str(config)]) == 0
        listing = capsys.readouterr().out
        assert "champion" in listing and all(v in listing for v in ("1", "2", "3"))
    finally:
        tracker.set_champion("1")


@pytest.mark.slow
def test_the_serve_command_serves_the_champion(registry, tmp_path):
    tracker, _, clip = registry
    config = settings_file(tmp_path, tracker, serving=FAST)
    port = free_port()
    command = [str(Path(sys.executable).with_name("whisper-assets")), "serve", "--config", str(config)]
    server = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{url}/health").json()["model_version"] == "1":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        with clip.open("rb") as audio:
            text = client(url).audio.transcriptions.create(
                model="whisper-1", file=audio, response_format="text"
            )
        assert text.split()[0] == BUNDLED_TRANSCRIPT.split()[0]
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0].decode()
    assert "now serving v1" in output


@pytest.mark.slow
@pytest.mark.skipif(not BASE.exists(), reason="needs ../shared/models/whisper-base")
@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng for Croatian speech")
def test_a_real_multilingual_champion_is_converted_smoke_tested_and_translates(tmp_path):
    """whisper-base registered with no export: the server converts it, it passes the bundled smoke test, and it
    transcribes Croatian and translates it into English."""
    tracker = Tracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "base",
        "whisper-assets",
        artifact_location=(tmp_path / "a").as_uri(),
    )
    tracker.set_champion(register(tracker, BASE, None))
    croatian = tmp_path / "hr.wav"
    sf.write(
        croatian, to_mono_16k(*synthesize("Dobar dan, kako ste danas? Sutra idemo na more.", "hr")), 16_000
    )
    pool = ModelPool.create(tracker, ServingSettings(**FAST), tmp_path / "cache")
    with running(create_app(pool)) as url:
        assert serving(url, "1")["status"] == "ok"
        api = client(url)
        with croatian.open("rb") as audio:
            heard = api.audio.transcriptions.create(
                model="whisper-1", file=audio, language="hr", response_format="verbose_json"
            )
        with croatian.open("rb") as audio:
            translated = api.audio.translations.create(
                model="whisper-1", file=audio, response_format="verbose_json"
            )
    assert heard.language == "croatian" and heard.text
    assert translated.task == "translate" and translated.text.isascii() and translated.text != heard.text


def test_serve_refuses_a_public_address_without_a_token(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
