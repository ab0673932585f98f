"""Where an untrusted URL may lead: http(s) only, and no loopback, private or link-local address
unless the config allows it (``csv_allow_private_addresses``).

The address check runs on the socket actually connected (``getpeername``), so a host name that
resolves to an internal address -- or is re-pointed there between two lookups -- is refused
before a request is sent. Proxied connections are not checked: the proxy (from the
environment) is trusted and resolves the name itself.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from databackend_csv.errors import FetchError

__all__ = ["GUARDED_POOLS", "address_problem", "check_host"]


def address_problem(address: str) -> str | None:
    """Why connecting to the IP ``address`` is refused (None when it is a public address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    for kind, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("private", ip.is_private), ("unspecified", ip.is_unspecified),
                       ("multicast", ip.is_multicast), ("reserved", ip.is_reserved)):
        if flag:
            return f"{kind} address {address}"
    return None


def check_host(host: str) -> None:
    """Refuse a literal internal IP or ``localhost`` early (before any connection)."""
    name = host.strip("[]").lower().rstrip(".")
    why = "loopback host localhost" if name == "localhost" or name.endswith(".localhost") \
        else address_problem(name)
    if why is not None:
        raise FetchError("forbidden", f"{why} refused (set "
                         "csv_allow_private_addresses to allow it)")


def _check_socket(sock: socket.socket) -> None:
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return
    why = address_problem(str(peer))
    if why is not None:
        sock.close()
        raise FetchError("forbidden", f"{why} refused (set "
                         "csv_allow_private_addresses to allow it)")


class _GuardedHTTP(HTTPConnection):
    """An HTTP connection that refuses internal peers once connected."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_socket(sock)
        return sock


class _GuardedHTTPS(HTTPSConnection):
    """An HTTPS connection that refuses internal peers once connected (before TLS)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_socket(sock)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls: Any = _GuardedHTTP


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls: Any = _GuardedHTTPS


#: ``pool_classes_by_scheme`` of a :class:`urllib3.PoolManager` that applies the guard.
GUARDED_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _GuardedHTTPPool,
                                                       "https": _GuardedHTTPSPool}
