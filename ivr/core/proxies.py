"""Proxy headers, trusted only from the proxies this deployment names.

Without ``IVR_PUBLIC_URL`` the URL a Twilio signature is checked against is rebuilt from
the request: its scheme and its ``Host``. A proxy in front (TLS termination, a load
balancer) says what the client asked for in ``X-Forwarded-Proto`` / ``X-Forwarded-Host``
and who the client was in ``X-Forwarded-For``; anyone else can send the same headers, so
they count only from ``IVR_TRUSTED_PROXIES`` (addresses or networks). ``ProxyHeaders``
is the app's outermost layer: for a request from a trusted proxy it puts the forwarded
scheme, host and client into the request itself (everything after it — the signature
check, the sign-in throttle, the console cookie's ``Secure`` flag — sees one truth); from
anyone else it changes nothing. The server runs without its own proxy-header handling
(``ivr serve`` turns uvicorn's off), so this is the only place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.5``, ``10.0.0.0/8``, ``::1`` … as networks (a ValueError names a bad one)."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(out)


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = networks(entries)

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The client behind a chain of trusted proxies: the right-most address of
        ``X-Forwarded-For`` that is not one of them (each proxy appends whom it heard from;
        the entries left of an untrusted one are the client's own claims)."""
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


def _last(value: bytes) -> str:
    """The value the nearest proxy set (it appends to whatever came with the request)."""
    return value.decode("latin-1").split(",")[-1].strip()


class ProxyHeaders:
    """ASGI middleware: ``X-Forwarded-Proto``, ``-Host`` and ``-For`` from a trusted proxy
    become the request's scheme, ``Host`` header and client; from anyone else, ignored."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted.networks:
            peer = str((scope.get("client") or ("", 0))[0])
            if self.trusted.trusts(peer):
                scope = self._forwarded(scope, peer)
        await self.app(scope, receive, send)

    def _forwarded(self, scope: Scope, peer: str) -> Scope:
        headers = list(scope.get("headers") or [])
        found: dict[bytes, bytes] = {}
        for name, value in headers:  # a header sent as several fields is one list
            if name in (b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-for"):
                found[name] = found[name] + b"," + value if name in found else value
        if not found:
            return scope
        scope = dict(scope)
        proto = _last(found[b"x-forwarded-proto"]).lower() if b"x-forwarded-proto" in found \
            else ""
        if proto in ("http", "https", "ws", "wss"):
            websocket = scope["type"] == "websocket"
            secure = proto in ("https", "wss")
            scope["scheme"] = ("wss" if secure else "ws") if websocket else \
                ("https" if secure else "http")
        if b"x-forwarded-host" in found:
            host = _last(found[b"x-forwarded-host"]).encode("latin-1")
            if host:
                headers = [(n, v) for n, v in headers if n != b"host"] + [(b"host", host)]
                scope["headers"] = headers
        if b"x-forwarded-for" in found:
            client = self.trusted.client(peer, found[b"x-forwarded-for"].decode("latin-1"))
            scope["client"] = (client, 0)
        return scope
