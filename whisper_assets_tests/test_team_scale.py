"""Team scale on real engines started here: Dagster on PostgreSQL (deploy/dagster-postgres.yaml), an MLflow
tracking server on PostgreSQL with its artifacts on an S3-compatible server, and the data root's published
outputs copied to that object store."""

import shutil
from pathlib import Path

import boto3
import dagster as dg
import pytest
import yaml

from whisper_assets.object_store import ObjectStore
from whisper_assets.settings import load_settings
from whisper_assets.tracking import CHAMPION
from whisper_assets.tracking.tracker import Tracker
from whisper_assets_tests.helpers import materialize_source, run_job, tick
from whisper_assets_tests.servers import DEPLOY, PG_BIN, mlflow_server, postgres_server, s3_server
from whisper_assets_tests.training_fixtures import make_training_project


def test_the_team_instance_is_the_laptop_instance_on_postgres():
    laptop = yaml.safe_load((DEPLOY.parent / "dagster.yaml").read_text())
    team = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())
    assert set(team.pop("storage")) == {"postgres"}
    assert team == laptop


def test_the_object_store_copies_only_what_changed_and_fetches_it_back(tmp_path, monkeypatch):
    root = tmp_path / "root"
    model = root / "models" / "whisper" / "run-1" / "model"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    (model / "config.json").write_text('{"d_model": 64}')
    with s3_server(monkeypatch):
        boto3.client("s3").create_bucket(Bucket="team")
        store = ObjectStore("s3://team/whisper", root)
        assert store.url(model) == "s3://team/whisper/models/whisper/run-1/model"
        first = store.put(model)
        assert (first.copied, first.unchanged) == (2, 0)
        (model / "config.json").write_text('{"d_model": 128}')
        second = store.put(model)
        assert (second.copied, second.unchanged) == (1, 1)

        elsewhere = ObjectStore("s3://team/whisper", tmp_path / "other-machine")
        fetched = elsewhere.get(elsewhere.root / "models" / "whisper" / "run-1" / "model")
        assert fetched.copied == 2
        copy = elsewhere.root / "models" / "whisper" / "run-1" / "model"
        assert (copy / "config.json").read_text() == '{"d_model": 128}'
        assert (copy / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
        assert elsewhere.get(copy).copied == 0  # identical files are not fetched again

        (copy / "weights.bin").write_bytes(b"changed here")
        assert (
            elsewhere.get(copy / "weights.bin").copied == 1
        )  # a local change is replaced by the stored copy
        with pytest.raises(FileNotFoundError, match="nothing stored under s3://team/whisper/models/nope"):
            elsewhere.get(elsewhere.root / "models" / "nope")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        ObjectStore("gs://team", root)


@pytest.fixture(scope="module")
def postgres():
    if PG_BIN is None:
        pytest.skip("needs PostgreSQL's server binaries (Debian package postgresql)")
    with postgres_server() as server:
        yield server


def team_instance(postgres, home: Path, monkeypatch, database: str) -> dg.DagsterInstance:
    """A Dagster instance from deploy/dagster-postgres.yaml, its credentials from the environment."""
    postgres.create_database(database)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY / "dagster-postgres.yaml", home / "dagster.yaml")
    for name, value in {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": database,
    }.items():
        monkeypatch.setenv(name, value)
    return dg.DagsterInstance.from_config(str(home))


@pytest.mark.slow
def test_dagster_on_postgres_ingests_ticks_and_publishes_to_object_storage(
    postgres, tmp_path, monkeypatch, make_settings, write_clip
):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    settings = make_settings(sources=[{"name": "team"}], object_store={"uri": "s3://team/data"})
    config = settings.data_root / "whisper_assets.yaml"
    uploads = settings.layout.uploads_root / "team"
    for name, text in {
        "a": "hello there",
        "b": "good morning",
        "c": "see you soon",
        "d": "thank you",
    }.items():
        write_clip(uploads / f"{name}.wav", text)
        (uploads / f"{name}.txt").write_text(text)
    with (
        s3_server(monkeypatch),
        team_instance(postgres, tmp_path / "home", monkeypatch, "ingest") as instance,
    ):
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert materialize_source(config, "team", instance).success

        write_clip(uploads / "e.wav", "again")
        result = tick(config, "new_uploads", instance)
        assert [r.partition_key for r in result.run_requests] == ["team"]

        # The published split manifests are copied to the bucket and come back identical elsewhere.
        boto3.client("s3").create_bucket(Bucket="team")
        published = run_job(config, "publish_splits", instance, assets=["splits"])
        [event] = published.get_asset_materialization_events()
        assert "s3://team/data/manifests/splits" in event.materialization.metadata["object_store"].value
        elsewhere = ObjectStore("s3://team/data", tmp_path / "elsewhere")
        elsewhere.get(elsewhere.root / "manifests" / "splits")
        local = sorted(
            p.relative_to(settings.data_root)
            for p in (settings.layout.manifests_root / "splits").rglob("*.jsonl")
        )
        assert local and local == sorted(
            p.relative_to(elsewhere.root) for p in elsewhere.root.rglob("*.jsonl")
        )
        for path in local:
            assert (elsewhere.root / path).read_bytes() == (settings.data_root / path).read_bytes()

    # A second process (here: a second instance object) sees the same runs and partitions in PostgreSQL.
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as again:
        event = again.get_latest_materialization_event(dg.AssetKey("inventory"))
        assert event is not None and event.asset_materialization.partition == "team"
        assert again.get_dynamic_partitions("dataset_sources") == ["team"]
        assert len(again.get_runs()) == 2


@pytest.mark.slow
def test_the_champion_flow_on_postgres_with_a_tracking_server_and_object_storage(
    postgres, tmp_path, monkeypatch
):
    project = make_training_project(tmp_path / "project")
    settings_file = yaml.safe_load(project.read_text())
    tracking_db = postgres.create_database("mlflow")
    with s3_server(monkeypatch):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="team")
        with mlflow_server(tracking_db, "s3://team/mlflow", tmp_path / "mlflow.log") as tracking_uri:
            settings_file["mlflow"] = {"tracking_uri": tracking_uri}
            settings_file["object_store"] = {"uri": "s3://team/data"}
            project.write_text(yaml.safe_dump(settings_file))
            settings = load_settings(project)
            with team_instance(postgres, tmp_path / "home", monkeypatch, "champion") as instance:
                result = run_job(
                    project, "train_and_evaluate", instance, assets=["whisper_model", "eval_metrics"]
                )
                assert result.success and result.get_asset_check_evaluations()[0].passed
                [trained] = [
                    e.materialization.metadata
                    for e in result.get_asset_materialization_events()
                    if e.asset_key.path == ["whisper_model"]
                ]

            tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
            assert (
                str(tracker.client.get_model_version_by_alias(tracker.registered_model, CHAMPION).version)
                == "1"
            )
            # MLflow's artifacts went through the server into the bucket, and come back from there.
            stored = {o["Key"] for o in s3.list_objects_v2(Bucket="team", Prefix="mlflow/")["Contents"]}
            assert any(key.endswith("model.safetensors") for key in stored)
            fetched = tracker.download_champion(tmp_path / "champion")
            assert (fetched / "model.safetensors").exists()

        # The run's model folder is in the object store, and another machine gets the same bytes back.
        run = trained["run"].value
        model_dir = settings.layout.models_root / "whisper" / run / "model"
        assert f"s3://team/data/models/whisper/{run}/model" in trained["object_store"].value
        elsewhere = ObjectStore("s3://team/data", tmp_path / "elsewhere")
        elsewhere.get(elsewhere.root / "models" / "whisper" / run / "model")
        copy = elsewhere.root / "models" / "whisper" / run / "model" / "model.safetensors"
        assert copy.read_bytes() == (model_dir / "model.safetensors").read_bytes()
