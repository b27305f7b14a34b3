"""Remote recordings against a real HTTP server on 127.0.0.1 serving real webm/opus files."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from whisper_assets.defs.partitions import source_partitions
from whisper_assets.sources.http_recordings import DownloadError, Fetcher, UnsafeUrl, list_recordings, sync
from whisper_assets.tables import read_rows, table_path
from whisper_assets_tests.helpers import materialize_source, tick


class RecordingsServer(BaseHTTPRequestHandler):
    """Serves files from `root` with Range support, an HTML index, and a few misbehaving paths."""

    root: ClassVar[Path]
    truncate: ClassVar[set[str]]  # names served half-written (the first time)
    hidden_404: ClassVar[set[str]]  # names listed but missing

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/recordings/":
            names = sorted(p.name for p in self.root.iterdir()) + sorted(self.hidden_404) + ["../escape.webm"]
            body = "".join(f'<a href="{n}">{n}</a>' for n in names).encode()
            return self._send(200, body, {"Content-Type": "text/html"})
        if self.path.startswith("/redirect/"):
            target = f"http://127.0.0.1:{self.server.server_address[1]}/recordings/a.webm"
            return self._send(302, b"", {"Location": target})
        if self.path == "/recordings/huge.webm":
            return self._send(200, b"x", {"Content-Length": str(10 * 2**30)}, exact=False)
        name = self.path.removeprefix("/recordings/")
        path = self.root / name
        if name in self.hidden_404 or not path.is_file():
            return self._send(404, b"not found", {})
        data = path.read_bytes()
        start = 0
        if (header := self.headers.get("Range")) and header.startswith("bytes="):
            first, _, last = header.removeprefix("bytes=").partition("-")
            start, end = int(first), int(last) if last else len(data) - 1
            part = data[start : end + 1]
            headers = {
                "Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(data)}",
                "ETag": f'"{len(data)}-{hash(data)}"',
            }
            return self._send(
                206, part, headers, truncate=name in self.truncate and start == 0 and last == ""
            )
        return self._send(200, data, {"ETag": f'"{len(data)}-{hash(data)}"'}, truncate=name in self.truncate)

    def _send(
        self, code: int, body: bytes, headers: dict, exact: bool = True, truncate: bool = False
    ) -> None:
        self.send_response(code)
        if exact:
            headers = {"Content-Length": str(len(body)), **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)


@pytest.fixture
def server(tmp_path, write_clip):
    root = tmp_path / "remote"
    root.mkdir()
    for stem, text in (("a", "first remote recording"), ("b", "second remote recording")):
        write_clip(root / f"{stem}.webm", text)
        meta = {"transcript": text, "language": "en", "author": "sam", "license": "CC0-1.0", "events": []}
        (root / f"{stem}.json").write_text(json.dumps(meta))
    handler = type("Handler", (RecordingsServer,), {"root": root, "truncate": set(), "hidden_404": set()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler
    httpd.shutdown()
    httpd.server_close()


def test_sync_mirrors_refreshes_and_prunes(server, tmp_path, write_clip):
    base, root, _ = server
    fetcher = Fetcher(base, allow_private=True, retries=0)
    assert list_recordings(fetcher) == ["a.json", "a.webm", "b.json", "b.webm"]  # ../escape.webm is dropped
    mirror = tmp_path / "mirror"
    first = sync(fetcher, mirror, "en")
    assert sorted(first.downloaded) == ["a.json", "a.webm", "b.json", "b.webm"] and not first.failed
    assert (mirror / "a.webm").read_bytes() == (root / "a.webm").read_bytes()
    manifest = [json.loads(line) for line in (mirror / "manifest.jsonl").read_text().splitlines()]
    assert (
        manifest[0]["transcript"] == "first remote recording" and manifest[0]["provenance"]["author"] == "sam"
    )

    assert sync(fetcher, mirror, "en").unchanged == 4
    write_clip(root / "a.webm", "a changed recording with more words")
    (root / "b.json").unlink()
    (root / "b.webm").unlink()
    third = sync(fetcher, mirror, "en")
    assert third.refreshed == ["a.webm"] and third.pruned == ["b.json", "b.webm"]
    assert not (mirror / "b.webm").exists()


def test_truncated_downloads_resume_and_404s_are_reported(server, tmp_path):
    base, _, handler = server
    handler.truncate.add("a.webm")
    handler.hidden_404.add("gone.webm")
    fetcher = Fetcher(base, allow_private=True, retries=0)
    mirror = tmp_path / "mirror"
    first = sync(fetcher, mirror, "en")
    assert "truncated download" in first.failed["a.webm"] and "HTTP 404" in first.failed["gone.webm"]
    assert not (mirror / "a.webm").exists() and (mirror / ".partial" / "a.webm").exists()
    assert "a.webm" in (mirror / "_rejected.jsonl").read_text()
    handler.truncate.clear()
    second = sync(fetcher, mirror, "en")  # resumes from the partial file with a Range request
    assert "a.webm" in second.downloaded and (mirror / "a.webm").stat().st_size > 0


def test_network_safety(server, tmp_path):
    base, _, _ = server
    with pytest.raises(UnsafeUrl, match="loopback/private address"):
        Fetcher(base).check(base + "/recordings/")
    with pytest.raises(UnsafeUrl, match="loopback/private address"):
        Fetcher("http://169.254.169.254").check("http://169.254.169.254/latest/meta-data/")
    fetcher = Fetcher(base.replace("127.0.0.1", "localhost"), allow_private=True, retries=0)
    with pytest.raises(UnsafeUrl, match="only the configured host"):
        fetcher.check(base + "/recordings/a.webm")
    with pytest.raises(UnsafeUrl, match="only the configured host"):  # a redirect to 127.0.0.1 is refused
        fetcher.open(fetcher.base_url + "/redirect/a.webm")
    with pytest.raises(UnsafeUrl, match=r"not an http\(s\) URL"):
        fetcher.check("file:///etc/passwd")
    with pytest.raises(DownloadError, match="above the 1048576-byte limit"):
        sync_one = Fetcher(base, allow_private=True, retries=0, max_bytes=2**20)
        from whisper_assets.sources.http_recordings import _download

        _download(sync_one, base + "/recordings/huge.webm", tmp_path, "huge.webm")


def test_remote_source_flows_through_the_ingest_assets_and_the_schedule(server, make_settings, tmp_path):
    base, _, _ = server
    settings = make_settings(
        sources=[
            {"name": "remote", "kind": "http_recordings", "base_url": base, "allow_private_addresses": True}
        ]
    )
    config = tmp_path / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        skipped = tick(config, "sync_remote_sources", instance)
        assert "no remote source" in skipped.skip_message
        instance.add_dynamic_partitions(source_partitions.name, ["remote"])
        requests = tick(config, "sync_remote_sources", instance)
        assert [r.partition_key for r in requests] == ["remote"]
        result = materialize_source(config, "remote", instance)
    assert result.success
    inventory = {
        r["id"]: r for r in read_rows(table_path(settings.layout.tables_root, "inventory", "remote"))
    }
    assert set(inventory) == {"remote-a", "remote-b"}
    assert all(r["codec"] == "opus" and r["readable"] for r in inventory.values())
    assert '"url"' in inventory["remote-a"]["provenance"]
    processed = read_rows(table_path(settings.layout.tables_root, "processed_audio", "remote"))
    assert {r["status"] for r in processed} == {"ok"}


def test_an_unreachable_server_keeps_the_mirror(server, tmp_path):
    base, _, _ = server
    mirror = tmp_path / "mirror"
    sync(Fetcher(base, allow_private=True, retries=0), mirror, "en")
    port = int(base.rsplit(":", 1)[1])
    down = sync(
        Fetcher(
            f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}",
            allow_private=True,
            retries=0,
            timeout=2,
        ),
        mirror,
        "en",
    )
    assert "recordings listing" in down.failed and (mirror / "a.webm").exists()
    assert len((mirror / "manifest.jsonl").read_text().splitlines()) == 2
