"""Where sources that fetch may connect: public addresses only, unless a source allows private ones.

Checks look at the address actually connected to, never at an earlier lookup: urllib requests go through
connections pinned to the address that was checked (Host header and TLS name unchanged), and yt-dlp goes
through a local proxy that checks every request it makes, redirects included. So DNS rebinding between a check
and a connection cannot slip through. Literal addresses in every numeric form (127.1, 2130706433, 0x7f.1,
::ffff:127.0.0.1) count as what they name.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import selectors
import socket
import socketserver
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[str, IPAddress], bool]  # (host name as asked, address to connect to) -> allowed
_RELAY_IDLE_SECONDS = 60.0


class UnsafeUrl(ValueError):
    """A URL or address a source may not fetch, with the reason and the setting that would allow it."""


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any form a resolver accepts; None for a DNS name."""
    host = host.strip("[]")
    try:
        return _unmapped(ipaddress.ip_address(host.split("%")[0]))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))  # 127.1, 2130706433, 0x7f000001, 0177.0.0.1
    except OSError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, unspecified, reserved or multicast."""
    address = _unmapped(address)
    return address.is_global and not address.is_multicast


def address_policy(allow_private: bool) -> AddressPolicy:
    return (lambda _host, _address: True) if allow_private else (lambda _host, address: is_public(address))


def check_url(url: str, allow_private: bool = False) -> str:
    """What can be known without DNS: http(s), a host, no whitespace, no leading '-', no private literal."""
    if url.startswith("-"):
        raise UnsafeUrl(f"{url!r} starts with '-': it would be read as a command-line option")
    if any(c.isspace() for c in url):
        raise UnsafeUrl(f"{url!r} contains whitespace")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"{url!r} is not an http(s) URL with a host")
    if not allow_private:
        host = parts.hostname
        address = literal_address(host)
        if host == "localhost" or host.endswith(".localhost") or (address and not is_public(address)):
            raise UnsafeUrl(f"{url!r} names a loopback/private address; {_ALLOW}")
    return url


_ALLOW = "set allow_private_addresses: true on the source to allow it (a server on your own network)"


def resolve_allowed(host: str, port: int, policy: AddressPolicy) -> str:
    """The address to connect to: every address the name resolves to must pass the policy."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    refused = [str(a) for a in addresses if not policy(host, a)]
    if refused or not addresses:
        raise UnsafeUrl(
            f"{host!r} resolves to {', '.join(refused) or 'nothing'}: not a public address; {_ALLOW}"
        )
    return str(addresses[0])


# urllib: connections pinned to the checked address ---------------------------------------------------------


class _Pinned:
    """A connection that resolves its host, checks the addresses, and connects to the checked one."""

    def __init__(self, *args, policy: AddressPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self._policy = policy

    def _pinned_socket(self) -> socket.socket:
        address = resolve_allowed(self.host, self.port, self._policy)
        return socket.create_connection((address, self.port), self.timeout, self.source_address)


class _PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = self._pinned_socket()


class _PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def connect(self) -> None:
        self.sock = self._context.wrap_socket(self._pinned_socket(), server_hostname=self.host)  # the name


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self._policy = policy

    def http_open(self, req):
        return self.do_open(functools.partial(_PinnedHTTPConnection, policy=self._policy), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self._policy = policy

    def https_open(self, req):
        return self.do_open(
            functools.partial(_PinnedHTTPSConnection, policy=self._policy), req, context=self._context
        )


def pinned_opener(
    policy: AddressPolicy, *handlers: urllib.request.BaseHandler
) -> urllib.request.OpenerDirector:
    """An opener whose every connection (redirects too) goes to an address the policy allowed."""
    return urllib.request.build_opener(_PinnedHTTPHandler(policy), _PinnedHTTPSHandler(policy), *handlers)


# yt-dlp: a local proxy that checks every request ------------------------------------------------------------


class _GuardProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, policy: AddressPolicy, timeout: float):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.policy = policy
        self.connect_timeout = timeout
        self.refused: list[str] = []


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _GuardProxy

    def handle(self) -> None:
        try:
            method, target, version = self.rfile.readline(65537).decode("latin-1").split()
        except ValueError:
            return
        headers = []
        while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            headers.append(line)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            host, port, path = host.strip("[]"), int(port or 443), None
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", parts.port or 80
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            address = resolve_allowed(host, port, self.server.policy)
            upstream = socket.create_connection((address, port), self.server.connect_timeout)
        except (UnsafeUrl, OSError) as exc:
            self.server.refused.append(f"{host}:{port}: {exc}")
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            if path is None:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                kept = [h for h in headers if not h.lower().startswith((b"proxy-", b"connection:"))]
                head = f"{method} {path} {version}\r\n".encode("latin-1") + b"".join(kept)
                length = next(
                    (int(h.split(b":", 1)[1]) for h in kept if h.lower().startswith(b"content-length:")), 0
                )
                upstream.sendall(head + b"Connection: close\r\n\r\n" + self.rfile.read(length))
            self.wfile.flush()
            _relay(self.connection, upstream)


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while events := selector.select(timeout=_RELAY_IDLE_SECONDS):
            for key, _ in events:
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)


@contextmanager
def guard_proxy(policy: AddressPolicy, timeout: float = 20.0) -> Iterator[_GuardProxy]:
    """A proxy on 127.0.0.1 for one client's requests; `.refused` lists what it blocked."""
    proxy = _GuardProxy(policy, timeout)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def proxy_url(proxy: _GuardProxy) -> str:
    host, port = proxy.server_address[:2]
    return f"http://{host}:{port}"
