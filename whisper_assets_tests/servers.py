"""Real servers the team-scale tests start on 127.0.0.1 and stop afterwards: PostgreSQL (Debian's binaries,
initdb into a temporary folder), an S3-compatible server (moto's) and an MLflow tracking server."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from whisper_assets_tests.helpers import free_port, wait_for

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
NEEDS_POSTGRES = pytest.mark.skipif(
    PG_BIN is None, reason="needs PostgreSQL's server binaries (Debian package postgresql)"
)
# Credentials the S3 server accepts (moto takes any); boto3 and MLflow read them from the environment.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str = "whisper"
    host: str = "127.0.0.1"

    def url(self, database: str) -> str:
        """A SQLAlchemy URL naming psycopg2, the driver dagster-postgres installs (2.1 defaults to psycopg 3)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [f"{PG_BIN}/createdb", "-h", self.host, "-p", str(self.port), "-U", self.user, name], check=True
        )
        return self.url(name)


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the `postgres` user the Debian package made."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (trust authentication, no fsync) in its own temporary folder, outside
    pytest's root-only folders so the `postgres` user can reach it; stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="whisper-assets-pg-") as name:
        folder = Path(name)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
        with _cluster(folder) as server:
            yield server


@contextmanager
def _cluster(folder: Path) -> Iterator[Postgres]:
    server = Postgres(free_port())
    data = folder / "data"
    subprocess.run(
        _as_server_user(
            [f"{PG_BIN}/initdb", "-D", str(data), "-A", "trust", "-U", server.user, "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} -c fsync=off"
    pg_ctl = [f"{PG_BIN}/pg_ctl", "-D", str(data)]
    subprocess.run(
        _as_server_user([*pg_ctl, "-o", options, "-l", str(folder / "server.log"), "-w", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield server
    finally:
        subprocess.run(_as_server_user([*pg_ctl, "-m", "immediate", "stop"]), stdout=subprocess.DEVNULL)


@contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3-compatible server on a free port; the environment points boto3 (and MLflow) at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    try:
        yield endpoint
    finally:
        server.stop()


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts_destination: str, log: Path) -> Iterator[str]:
    """deploy/mlflow-server.sh (one worker) on a free port, proxying artifacts to `artifacts_destination`."""
    import urllib.request

    port = free_port()
    env = {
        **os.environ,
        "MLFLOW": str(Path(sys.executable).with_name("mlflow")),
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts_destination,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(DEPLOY / "mlflow-server.sh")], env=env, stdout=out, stderr=subprocess.STDOUT
        )

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                assert process.poll() is None, f"mlflow server exited: {log.read_text()[-2000:]}"
                return False

        try:
            wait_for(healthy, timeout=120)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
