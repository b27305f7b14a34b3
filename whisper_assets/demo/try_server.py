"""The demo's last step: start `whisper-assets serve` as a user would, and transcribe one clip through it with
the official openai client (the `dev` extra installs it)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def held_out_clip(catalog: Path, source: str) -> tuple[Path, str] | None:
    """The upload and transcript of the source's first test item (a voice training never heard), if any."""
    from whisper_assets.tables import query

    _, rows = query(
        catalog,
        "SELECT i.abs_path, s.transcript FROM splits s JOIN inventory i ON i.id = s.parent_id "
        f"WHERE s.split = 'test' AND s.source = '{source}' ORDER BY s.id LIMIT 1",
    )
    return (Path(rows[0][0]), rows[0][1]) if rows else None


class ServerTryFailed(RuntimeError):
    """The server did not start, or did not serve the champion."""


def transcribe_through_server(config: Path, clip: Path, language: str, timeout: float = 120.0) -> str:
    """The champion's transcript of `clip`, from a server started on a free loopback port and stopped after."""
    from openai import OpenAI

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "whisper_assets.cli",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
    ]
    with tempfile.TemporaryFile("w+") as log, subprocess.Popen(command, stdout=log, stderr=log) as server:
        try:
            _wait_until_serving(f"http://127.0.0.1:{port}/health", server, timeout)
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0)
            with clip.open("rb") as audio:
                return client.audio.transcriptions.create(
                    model="whisper-1", file=audio, language=language
                ).text
        except ServerTryFailed as failure:
            log.seek(0)
            raise ServerTryFailed(f"{failure}\n{log.read()[-2000:]}") from None
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_until_serving(health_url: str, server: subprocess.Popen, timeout: float) -> None:
    """Poll /health until a version is loaded; fail at once when the server exits or refuses its target."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerTryFailed(f"the server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(health_url, timeout=5):
                return  # 200: a version is loaded
        except urllib.error.HTTPError as error:  # 503 until the champion is loaded
            report = json.loads(error.read() or b"{}")
            if report.get("target_version") in report.get("rejected", {}):
                raise ServerTryFailed(f"the server refused the champion: {report['message']}") from None
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise ServerTryFailed(f"no model was served within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
