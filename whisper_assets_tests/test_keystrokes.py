"""The keystroke model family: timelines, splits, tokenizer, feature cache, training, resume, drop alarm, CLI and
server."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from whisper_assets.keystrokes.events import KeyEvent, TimelineRejected, parse_timeline, tokens
from whisper_assets.keystrokes.manifests import assign_splits, build_manifest, name_hash
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.keystrokes.vocabulary import SPECIALS, decode, encode, load_tokenizer, save_tokenizer


def _events(*spec):
    return [KeyEvent(t, code, d) for t, code, d in spec]


def test_timeline_shapes_normalize_to_the_same_events():
    want = _events(
        (0.5, "ShiftLeft", "DOWN"), (0.6, "KeyA", "DOWN"), (0.65, "ShiftLeft", "UP"), (0.7, "KeyA", "UP")
    )
    browser = {
        "events": [
            {"type": "start"},
            {"type": "keydown", "code": "ShiftLeft", "timeStamp": 500.0},
            {"type": "keydown", "code": "KeyA", "timeStamp": 600.0},
            {"type": "keydown", "code": "ShiftLeft", "timeStamp": 620.0, "repeat": True},  # auto-repeat
            {"type": "keyup", "code": "ShiftLeft", "timeStamp": 650.0},
            {"type": "keyup", "code": "KeyA", "timeStamp": 700.0},
            {"type": "mousedown", "timeStamp": 710.0},
        ]
    }
    plain_list = [
        {"code": "KeyA", "type": "keyup", "t": 0.7},  # out of order in the file
        {"code": "ShiftLeft", "type": "keydown", "t": 0.5},
        {"code": "KeyA", "type": "keydown", "t": 0.6},
        {"code": "KeyA", "type": "keydown", "t": 0.62},  # a second keydown while held: a repeat
        {"code": "ShiftLeft", "type": "keyup", "t": 0.65},
    ]
    flags = {
        "keystrokes": [
            {"code": "ShiftLeft", "down": True, "time_ms": 1500},
            {"code": "KeyA", "down": True, "time_ms": 1600},
            {"code": "ShiftLeft", "down": False, "time_ms": 1650},
            {"code": "KeyA", "down": False, "time_ms": 1700},
        ],
        "start": 1000,
    }
    for document in (browser, plain_list, flags):
        assert parse_timeline(json.dumps(document), audio_seconds=2.0) == want
    assert tokens(want) == ["ShiftLeft_DOWN", "KeyA_DOWN", "ShiftLeft_UP", "KeyA_UP"]


def test_generated_timelines_press_a_key_again_only_after_its_release():
    """Fast typists roll over onto the next key, never onto the key they are still holding ("ee", "zz")."""
    from whisper_assets.demo.typing import timeline

    text = "Jazz coffee, cheese apple summer."
    for seed in range(40):
        events = parse_timeline(json.dumps(timeline(text, np.random.default_rng(seed))), audio_seconds=60.0)
        directions: dict[str, list[str]] = {}
        for event in events:
            directions.setdefault(event.code, []).append(event.direction)
        for code, seen in directions.items():
            assert seen == ["DOWN", "UP"] * (len(seen) // 2), (seed, code)
        assert len(directions["KeyZ"]) == 2 * 2 and len(directions["KeyE"]) == 2 * 7  # typos never hit z or e


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "the event list is empty"),
        ({"events": [{"foo": 1, "bar": 2}]}, "fields seen: bar, foo"),
        ({"events": [{"code": "KeyA", "type": "keydown", "t": 9.0}]}, "events outside the audio"),
        ({"recording": "x"}, "no event list"),
        ({"events": [{"code": "KeyA", "type": "keydown", "t": 0.1, "repeat": True}]}, "auto-repeat"),
    ],
)
def test_unusable_timelines_are_rejected_with_a_reason(document, reason):
    with pytest.raises(TimelineRejected, match=reason):
        parse_timeline(json.dumps(document), audio_seconds=2.0)
    with pytest.raises(TimelineRejected, match="not JSON"):
        parse_timeline(b"{broken", audio_seconds=2.0)


def test_split_follows_the_hash_rule_and_never_moves_old_recordings():
    first = [f"rec-{i}" for i in range(100)]
    splits = assign_splits(first, {})
    ranked = sorted(first, key=name_hash)
    assert [splits[n] for n in ranked] == ["train"] * 90 + ["test"] * 10
    more = assign_splits([*first, *(f"new-{i}" for i in range(60))], splits)
    assert {n: more[n] for n in first} == splits
    assert Counter(more.values())["test"] >= 10


@pytest.fixture(scope="module")
def typing(tmp_path_factory):
    """Twelve recordings of one word on two keyboards, a tiny random base model, manifest and tokenizer."""
    from whisper_assets.demo.tiny_whisper import build_tiny_whisper
    from whisper_assets.demo.typing import Keyboard, Microphone, write_typing_recording

    root = tmp_path_factory.mktemp("typing")
    rng = np.random.default_rng(5)
    for i in range(12):
        board = Keyboard.named(("mech-blue", "laptop-scissor")[i % 2])
        write_typing_recording(
            root / "recordings" / f"rec-{i:02d}", "cab", board, Microphone.named("usb-condenser"), rng
        )
    (root / "recordings" / "orphan.json").write_text("[]", encoding="utf-8")
    (root / "recordings" / "speech memo.webm").write_bytes((root / "recordings" / "rec-00.webm").read_bytes())
    (root / "recordings" / "speech memo.json").write_text('{"events": [{"t": 0, "type": "start"}]}')
    manifest = build_manifest(root / "recordings", root / "manifests", root)
    tokenizer, _ = save_tokenizer(manifest.rows, root / "tokenizer")
    base = build_tiny_whisper(root / "base", ["cab"] * 10)
    return root, manifest, tokenizer, base


def test_manifest_rows_and_rejections(typing):
    root, manifest, _, _ = typing
    assert len(manifest.rows) == 12 and Counter(r["split"] for r in manifest.rows) == {"train": 11, "test": 1}
    row = manifest.rows[0]
    assert row["audio"] == "recordings/rec-00.webm" and 0.5 < row["duration"] < 5
    raw = (root / "recordings" / "rec-00.json").read_bytes()
    import hashlib

    assert row["json_sha256"] == hashlib.sha256(raw).hexdigest() and row["keyboard"] == "mech-blue"
    assert {r["item"]: r["reason"] for r in manifest.rejections} == {
        "speech memo.webm": "no key events: no entry has a `code`, a keydown/keyup `type` (or `down` flag) and a "
        "time (fields seen: t, type)",
        "orphan.json": "timeline without a .webm recording",
    }
    again = build_manifest(root / "recordings", root / "manifests", root)
    assert again.sha256 == manifest.sha256


def test_tokenizer_round_trip(typing):
    root, manifest, _, _ = typing
    tokenizer = load_tokenizer(root / "tokenizer")
    vocab = json.loads((root / "tokenizer" / "vocab.json").read_text())
    assert list(vocab)[:4] == list(SPECIALS) and vocab == tokenizer.get_vocab()
    assert {"KeyC_DOWN", "KeyC_UP", "KeyA_DOWN", "KeyB_UP"} <= set(vocab)
    for row in manifest.rows:
        sequence = tokens([KeyEvent.from_row(e) for e in row["events"]])
        ids = encode(tokenizer, sequence)
        assert ids[-1] == tokenizer.eos_token_id and decode(tokenizer, ids) == sequence
    assert tokenizer.convert_tokens_to_ids("KeyZ_DOWN") == tokenizer.unk_token_id


def test_feature_cache_recomputes_missing_or_corrupt_entries(typing, caplog):
    from transformers import WhisperFeatureExtractor

    from whisper_assets.keystrokes.features import KeystrokeFeatureCache
    from whisper_assets.training.model import trim_feature_window

    root, manifest, tokenizer, base = typing
    extractor = WhisperFeatureExtractor.from_pretrained(base)
    trim_feature_window(extractor, 4.0)
    cache = KeystrokeFeatureCache(root / "cache-test", extractor, tokenizer, root)
    first, second = manifest.rows[:2]
    original = cache.get(first)
    assert original.features.shape == (80, 400) and original.meta["split"] == first["split"]
    assert original.meta["frames"] == int(original.attention_mask.sum()) < 400
    cache.get(second)
    paths = cache.paths(cache.key(first))
    paths["features"].write_bytes(b"garbage")
    cache.paths(cache.key(second))["labels"].unlink()
    fresh = KeystrokeFeatureCache(root / "cache-test", extractor, tokenizer, root)
    repaired = fresh.get(first)
    fresh.get(second)
    np.testing.assert_allclose(repaired.features, original.features)
    assert (fresh.repaired, fresh.misses, fresh.hits) == (2, 2, 0)
    assert "unreadable" in caplog.text
    assert isinstance(
        KeystrokeFeatureCache(root / "cache-test", extractor, tokenizer, root).get(first).features, np.memmap
    )


def _options(base: Path, **overrides) -> KeystrokeOptions:
    recipe = {
        "base_model": str(base),
        "micro_batch": 4,
        "effective_batch": 4,
        "max_epochs": 12,
        "eval_every": 9,
        "save_every": 9,
        "learning_rate": 3e-3,
        "warmup_share": 0.0,
        "patience": 10,
        "max_relative_drop": 0.99,
    }
    return KeystrokeOptions(**{**recipe, **overrides})


def test_tiny_model_learns_and_decode_keys_and_the_server_print_its_events(typing, tmp_path, capsys):
    import httpx

    from whisper_assets.cli import main
    from whisper_assets.keystrokes.trainer import train_keystrokes
    from whisper_assets.serving import ServingSettings
    from whisper_assets.serving.app import create_app
    from whisper_assets.serving.keys import NewestKeyDecoder
    from whisper_assets.serving.pool import ModelPool
    from whisper_assets.tracking.tracker import Tracker
    from whisper_assets_tests.serving_fixtures import running

    root, manifest, tokenizer, base = typing
    run_dir = tmp_path / "runs" / "src" / "run"
    result = train_keystrokes(
        _options(base), manifest.rows, tokenizer, root, run_dir, tmp_path / "cache", tmp_path / "log.jsonl"
    )
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").open() if '"train"' in line]
    assert result.steps == 36 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert result.model_dir and (result.model_dir / "tokenizer" / "tokenizer.json").exists()
    samples = json.loads((run_dir / "eval_samples" / "step-00000036.json").read_text())
    assert samples[0]["true"] and "decoded" in samples[0]

    usual = Counter(
        tuple(tokens([KeyEvent.from_row(e) for e in r["events"]])) for r in manifest.rows
    ).most_common(1)
    audio = str(root / "recordings" / "rec-03.webm")
    assert main(["decode-keys", audio, "--run", str(run_dir), "--checkpoint", "latest"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == list(usual[0][0])
    assert "checkpoint-000000" in out.err

    # the transcription server decodes with the same (best) weights as `decode-keys`
    assert main(["decode-keys", audio, "--run", str(run_dir)]) == 0
    best = capsys.readouterr().out.split()
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "serving", "whisper-assets")
    pool = ModelPool.create(tracker, ServingSettings(), tmp_path / "serving")
    app = create_app(pool, follow=False, keys=NewestKeyDecoder(tmp_path / "runs"))
    with running(app) as url, open(audio, "rb") as upload:
        answer = httpx.post(f"{url}/v1/audio/keystrokes", files={"file": ("rec-03.webm", upload)})
    assert answer.status_code == 200
    assert answer.json()["events"] == best and answer.json()["model"].startswith("run/checkpoint-")
    with running(create_app(pool, follow=False, keys=NewestKeyDecoder(tmp_path / "none"))) as url:
        missing = httpx.post(f"{url}/v1/audio/keystrokes", files={"file": ("a.webm", b"x")})
    assert missing.status_code == 404 and "materialize keystroke_model" in missing.json()["error"]["message"]


_CRASHING_TRAIN = """
import os, signal, sys
from pathlib import Path
from whisper_assets.training import checkpoints
from whisper_assets.keystrokes.manifests import read_manifest
from whisper_assets.keystrokes.options import KeystrokeOptions
from whisper_assets.keystrokes.trainer import train_keystrokes
from whisper_assets.keystrokes.vocabulary import load_tokenizer

original = checkpoints.Checkpoints.save
def save_then_die(self, step, *args):
    folder = original(self, step, *args)
    if step == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return folder
checkpoints.Checkpoints.save = save_then_die
root, out = Path(sys.argv[1]), Path(sys.argv[2])
options = KeystrokeOptions.model_validate_json(sys.argv[3])
rows = read_manifest(root / "manifests").rows
train_keystrokes(options, rows, load_tokenizer(root / "tokenizer"), root, out / "run", out / "cache", out / "log.jsonl")
"""


def test_resume_after_a_kill_needs_no_base_model(typing, tmp_path):
    import shutil

    from whisper_assets.keystrokes.trainer import train_keystrokes
    from whisper_assets.training.checkpoints import Checkpoints

    root, manifest, tokenizer, base = typing
    private_base = shutil.copytree(base, tmp_path / "base")
    options = _options(private_base, max_epochs=3, save_every=3, eval_every=100)
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_CRASHING_TRAIN),
            str(root),
            str(tmp_path),
            options.model_dump_json(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert Checkpoints(tmp_path / "run" / "checkpoints").latest().name == "checkpoint-00000006"
    shutil.rmtree(private_base)  # a resume restores from the run folder alone: nothing to download
    result = train_keystrokes(
        options, manifest.rows, tokenizer, root, tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl"
    )
    assert (result.resumed_from_step, result.steps, result.failed) == (6, 9, None)
    state = json.loads(
        (Checkpoints(tmp_path / "run" / "checkpoints").latest() / "trainer_state.json").read_text()
    )
    assert (state["step"], state["epoch"]) == (9, 2)


def test_judge_fails_on_a_relative_drop_and_stops_without_gain():
    from whisper_assets.keystrokes.trainer import judge

    options = KeystrokeOptions(patience=2, min_gain=0.01, max_relative_drop=0.05, drop_alarm_from=0.5)
    state = {"step": 0, "best_accuracy": None, "best_step": None, "last_test_accuracy": None}
    state |= {"evals_since_gain": 0, "done": False, "failed": None, "early_stopped": False}
    verdicts = []
    # a 20% fall below the arming level (0.20 -> 0.16) is the decoder still learning to stop, not an alarm
    for step, accuracy in [(1, 0.20), (2, 0.16), (3, 0.50), (4, 0.60), (5, 0.605), (6, 0.606)]:
        state["step"] = step
        verdicts.append(judge(state, accuracy, options))
    assert verdicts == ["improved", "flat", "improved", "improved", "improved", "improved"]
    assert state["early_stopped"] and not state["failed"]
    state |= {"done": False, "step": 7}
    assert (
        judge(state, 0.57, options) == "failed"
        and state["best_step"] == 6
        and "0.6060 to 0.5700" in state["failed"]
    )


def test_drop_alarm_fails_the_mlflow_run_and_keeps_the_best_checkpoint(typing, tmp_path, monkeypatch):
    from whisper_assets.keystrokes import trainer
    from whisper_assets.keystrokes.manifests import read_manifest
    from whisper_assets.keystrokes.runs import keystroke_run
    from whisper_assets.tracking import MlflowSettings
    from whisper_assets.tracking.tracker import Tracker
    from whisper_assets.training.checkpoints import Checkpoints

    root, _, _, base = typing
    real = trainer.score_rows
    forced = iter([0.40, 0.40, 0.50, 0.50, 0.30, 0.30])  # train and test per evaluation: the third regresses

    def regressing(*args, **kwargs):
        scores = real(*args, **kwargs)
        return trainer.Scores({**scores.metrics, "token_accuracy": next(forced)}, scores.hypotheses)

    monkeypatch.setattr(trainer, "score_rows", regressing)
    tracker = Tracker.from_settings(MlflowSettings(experiment="keys-test"), tmp_path / "mlflow")
    run = keystroke_run(
        _options(base, eval_every=3, max_epochs=5, max_relative_drop=0.05, drop_alarm_from=0.5),
        read_manifest(root / "manifests"),
        root / "tokenizer",
        root,
        tmp_path / "runs",
        tmp_path / "cache",
        tmp_path / "log.jsonl",
        tracker,
        {"source": "test"},
    )
    result = run.result
    assert result.failed and "fell from 0.5000 to 0.3000 at step 9" in result.failed
    assert (result.steps, result.best_step, result.model_dir) == (9, 6, None)
    kept = [p.name for p in Checkpoints(run.folder / "checkpoints").complete()]
    assert kept == ["checkpoint-00000003", "checkpoint-00000006"]  # nothing saved after the regression
    mlflow_run = tracker.client.get_run(run.mlflow_run_id)
    assert mlflow_run.info.status == "FAILED" and "fell from" in mlflow_run.data.tags["failure"]
    assert (
        mlflow_run.data.params["manifest_sha256"] == run.manifest_sha256
        and "git_commit" in mlflow_run.data.tags
    )
    history = tracker.metric_history(run.mlflow_run_id, ["test_token_accuracy"])["test_token_accuracy"]
    assert [v for _, v in history] == [0.40, 0.50, 0.30]
    artifacts = [a.path for a in tracker.client.list_artifacts(run.mlflow_run_id, "eval_samples")]
    assert len(artifacts) == 3


def test_keystroke_assets_follow_a_synced_endpoint(typing, tmp_path):
    """A real HTTP endpoint is mirrored by `inventory`; the sensor then asks for the keystroke data job, and the
    training job trains, tracks and evaluates the source's model."""
    import shutil

    import dagster as dg
    import yaml

    from whisper_assets.cli import serve_folder
    from whisper_assets.defs.partitions import source_partitions
    from whisper_assets_tests.helpers import run_job, tick

    root, manifest, _, base = typing
    window = float(np.ceil(max(r["duration"] for r in manifest.rows)))
    served = tmp_path / "server" / "recordings"
    shutil.copytree(root / "recordings", served)
    with serve_folder(tmp_path / "server") as url, dg.instance_for_test() as instance:
        config = tmp_path / "whisper_assets.yaml"
        recipe = _options(base, max_epochs=2, eval_every=3).model_dump(mode="json")
        source = {"kind": "http_recordings", "base_url": url, "allow_private_addresses": True}
        settings = {
            "data_root": ".",
            "keystrokes": recipe,
            "sources": [{"name": "keys", **source, "keystrokes": True}, {"name": "memos", **source}],
        }
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        instance.add_dynamic_partitions(source_partitions.name, ["keys", "memos"])
        assert tick(config, "keystroke_data_after_sync", instance).run_requests == []
        run_job(config, "ingest_source", instance, partition_key="keys", assets=["inventory"])
        ticked = tick(config, "keystroke_data_after_sync", instance)
        assert [r.partition_key for r in ticked.run_requests] == ["keys"]
        assert tick(config, "keystroke_data_after_sync", instance, ticked.cursor).run_requests == []

        data = run_job(config, "keystroke_data", instance, partition_key="keys")
        manifests = data.asset_materializations_for_node("keystroke_manifests")[0].metadata
        assert (manifests["dagster/row_count"].value, manifests["rejected"].value) == (12, 2)
        features = data.asset_materializations_for_node("keystroke_features")[0].metadata
        assert (features["computed"].value, features["window_seconds"].value) == (12, window)
        assert [r.partition_key for r in tick(config, "retrain_keystrokes", instance)] == ["keys"]

        trained = run_job(config, "keystroke_training", instance, partition_key="keys")
        model = trained.asset_materializations_for_node("keystroke_model")[0].metadata
        assert model["steps"].value == 6 and model["feature_cache"].value["misses"] == 0
        evaluation = trained.asset_materializations_for_node("keystroke_evaluation")[0].metadata
        assert evaluation["recordings"].value == 1 and 0 <= evaluation["token_accuracy"].value <= 1
        assert isinstance(tick(config, "retrain_keystrokes", instance), dg.SkipReason)

        refused = run_job(config, "keystroke_data", instance, partition_key="memos", raise_on_error=False)
        assert not refused.success
        failure = refused.get_step_failure_events()[0].event_specific_data.error.message
        assert "does not feed the keystroke model" in failure
