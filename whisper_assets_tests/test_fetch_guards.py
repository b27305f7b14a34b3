"""Sources that fetch reach only public addresses unless allowed: checked at settings load (no DNS), before
yt-dlp runs, on every request and redirect it makes, and pinned to the checked address for recordings."""

import functools
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from whisper_assets.settings import SettingsError
from whisper_assets.sources import guard
from whisper_assets.sources.guard import UnsafeUrl, address_policy, check_url, literal_address
from whisper_assets.sources.http_recordings import Fetcher
from whisper_assets.sources.media_sites import sync_urls

PRIVATE_URLS = [
    "http://127.0.0.1/x",
    "http://127.1/x",  # short forms, decimal, hex and octal all name loopback
    "http://2130706433/x",
    "http://0x7f000001/x",
    "http://0177.0.0.1/x",
    "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped
    "http://0.0.0.0/x",
    "http://10.1.2.3/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://localhost/x",
    "http://api.localhost/x",
]


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 with a tiny page (or a redirect to `redirect_to`) and records every path asked for."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        if self.path.startswith("/redirect") and self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.end_headers()
            return
        body = b"<html><title>internal</title></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def recorder():
    servers = []

    def start(
        address: str = "127.0.0.1", port: int = 0, redirect_to: str | None = None
    ) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((address, port), Recorder)
        server.seen, server.redirect_to = [], redirect_to
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_literals_are_refused_without_dns_and_allowed_on_request(url):
    with pytest.raises(UnsafeUrl, match="allow_private_addresses"):
        check_url(url)
    assert check_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url", ["http://example.com/a b", "http://example.com/\tx", " http://example.com/", "-o x"]
)
def test_whitespace_and_options_are_refused(url):
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=True)


def test_numeric_forms_name_what_a_resolver_would_connect_to():
    assert str(literal_address("0x7f.1")) == "127.0.0.1"
    assert str(literal_address("[::ffff:10.0.0.1]")) == "10.0.0.1"
    assert literal_address("example.com") is None


@pytest.mark.parametrize("kind", ["youtube", "http_recordings"])
def test_settings_refuse_unsafe_urls_when_they_load(make_settings, kind):
    field = {
        "youtube": {"urls": ["http://2130706433/watch"]},
        "http_recordings": {"base_url": "http://10.0.0.7"},
    }
    with pytest.raises(SettingsError, match="allow_private_addresses"):
        make_settings(sources=[{"name": "remote", "kind": kind, **field[kind]}])
    with pytest.raises(SettingsError, match="whitespace"):
        make_settings(sources=[{"name": "remote", "kind": "youtube", "urls": ["https://example.com/a b"]}])
    allowed = make_settings(
        sources=[{"name": "remote", "kind": kind, "allow_private_addresses": True, **field[kind]}]
    )
    assert allowed.sources[0].allow_private_addresses


def test_a_media_url_on_a_private_address_never_reaches_yt_dlp(recorder, tmp_path):
    internal = recorder()
    url = f"http://127.0.0.1:{internal.server_address[1]}/internal.html"
    stats = sync_urls([url], tmp_path / "talks", "en", False, address_policy(allow_private=False))
    assert stats == {"videos": 0, "rejected": 1}
    assert "not a public address" in (tmp_path / "talks" / "_rejected.jsonl").read_text()
    assert internal.seen == []


def test_every_request_yt_dlp_makes_is_checked_redirects_included(recorder, tmp_path):
    internal = recorder()
    target = f"http://127.0.0.1:{internal.server_address[1]}/internal.html"
    public = recorder(redirect_to=target)
    # The policy stands in for DNS: "localhost" plays a public site, 127.0.0.1 the internal network.
    policy = lambda host, _address: host == "localhost"  # noqa: E731
    url = f"http://localhost:{public.server_address[1]}/redirect"
    stats = sync_urls([url], tmp_path / "talks", "en", False, policy)
    assert stats["rejected"] == 1 and public.seen == ["/redirect"] and internal.seen == []
    assert "refused to fetch 127.0.0.1" in (tmp_path / "talks" / "_rejected.jsonl").read_text()


def test_recordings_connect_to_the_address_that_was_checked(recorder, monkeypatch):
    """DNS rebinding: the name answers an allowed address first and another one afterwards."""
    good = recorder("127.0.0.1")
    port = good.server_address[1]
    try:
        evil = recorder("127.0.0.2", port)
    except OSError:
        pytest.skip("127.0.0.2 is not usable on this machine")
    answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 10)
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    only_first = functools.partial(lambda allowed, _host, address: str(address) == allowed, "127.0.0.1")
    fetcher = Fetcher(f"http://rebind.test:{port}", policy=only_first, retries=0)
    with fetcher.open(fetcher.base_url + "/recordings/") as response:
        assert response.status == 200
    assert good.seen == ["/recordings/"] and evil.seen == []
    with pytest.raises(
        UnsafeUrl, match=r"127\.0\.0\.2"
    ):  # the next connection resolves again, and is refused
        fetcher.open(fetcher.base_url + "/recordings/")
    assert evil.seen == []


def test_the_proxy_refuses_and_reports(recorder):
    internal = recorder()
    with guard.guard_proxy(address_policy(allow_private=False)) as proxy:
        host, port = proxy.server_address[:2]
        with socket.create_connection((host, port)) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{internal.server_address[1]} HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 403")
    assert internal.seen == [] and "not a public address" in proxy.refused[0]
