"""Who may reach a web app the platform serves (the review app, the transcription server).

Bound to loopback, an app answers only this machine's own names; bound beyond it, every request needs an access
token. Host names are checked against the ones the server answers to, so a web page cannot reach a local app
through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """127.0.0.1, ::1, localhost; any other name counts as reaching beyond this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str, token: str | None, token_hint: str) -> str | None:
    """Why the app must not start on this address (None: it may): an empty host, or no token off loopback."""
    if not host.strip():
        return "--host is empty: give an address to bind (127.0.0.1 by default)"
    if not is_loopback(host.strip()) and not token:
        return f"binding to {host} exposes the app beyond this machine: {token_hint}"
    return None


def host_name(host_header: str) -> str:
    """The name in a Host header or URL netloc, without port or IPv6 brackets, lowercased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


def served_names(bound_host: str, allowed_hosts: Sequence[str]) -> frozenset[str] | None:
    """The Host names to accept; None accepts any (bound to every interface with no names configured)."""
    names = {host_name(h) for h in allowed_hosts}
    if bound_host in WILDCARD_ADDRESSES:
        return frozenset(names) if names else None
    return frozenset({*LOOPBACK_NAMES, host_name(bound_host), *names})


def token_matches(given: str | None, expected: str) -> bool:
    """A constant-time comparison that treats a missing token as wrong."""
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (empty when there is none)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
