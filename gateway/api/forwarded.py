"""What a trusted proxy says about the request it passes on: the client's address, the
scheme and host it was asked under, and the request's id.

Only from GATEWAY_TRUSTED_PROXIES are X-Forwarded-For, -Proto, -Host (or RFC 7239's
Forwarded) and X-Request-Id believed; from anyone else they are what a client made up.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
import secrets
from collections.abc import Mapping
from typing import Final

from gateway.hosts import Network

REQUEST_ID_HEADER: Final = "X-Request-Id"
# A request id a proxy may hand on: bounded, and nothing that could split a log line.
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Ids made here: unique within the process by a counter, across processes by a prefix.
_PREFIX: Final = secrets.token_hex(6)
_COUNTER: Final = itertools.count(1)


@functools.lru_cache(maxsize=1024)
def trusted(peer: str | None, proxies: tuple[Network, ...]) -> bool:
    if not proxies or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # a Unix socket's path
        return False
    return any(address in network for network in proxies)


def client(peer: str | None, headers: Mapping[str, str], proxies: tuple[Network, ...]) -> str:
    """The client's address: walking the chain of proxies back from the peer, the first
    address that is not a trusted proxy (the ones before it could be made up)."""
    address = peer or "-"
    if not trusted(peer, proxies):
        return address
    for hop in reversed(_forwarded_for(headers)):
        address = hop
        if not trusted(hop, proxies):
            break
    return address


def origin(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The scheme and Host the client asked a trusted proxy for, where it says."""
    if forwarded := headers.get("Forwarded"):
        first = _parameters(forwarded.split(",", 1)[0])
        proto = first.get("proto")
        return None if proto is None else proto.lower(), first.get("host")
    proto = headers.get("X-Forwarded-Proto", "").split(",", 1)[0].strip().lower() or None
    host = headers.get("X-Forwarded-Host", "").split(",", 1)[0].strip() or None
    return proto, host


def identify(
    peer: str | None, headers: Mapping[str, str], proxies: tuple[Network, ...]
) -> tuple[str | None, str]:
    """The client's address a trusted proxy names (None: the peer is the client), and
    the request's id."""
    if proxies and trusted(peer, proxies):
        return client(peer, headers, proxies), request_id(headers.get(REQUEST_ID_HEADER))
    return None, new_request_id()


def request_id(given: str | None) -> str:
    """The id a trusted proxy gave the request, or a new one if it gave none fit for a
    log line."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


def _forwarded_for(headers: Mapping[str, str]) -> list[str]:
    if forwarded := headers.get("Forwarded"):
        hops = [_parameters(element).get("for", "") for element in forwarded.split(",")]
    else:
        hops = headers.get("X-Forwarded-For", "").split(",")
    return [_address(hop) for hop in hops if hop.strip()]


def _parameters(element: str) -> dict[str, str]:
    pairs = (pair.partition("=") for pair in element.split(";"))
    return {name.strip().lower(): value.strip().strip('"') for name, _, value in pairs}


def _address(hop: str) -> str:
    # RFC 7239 §6: "[2001:db8::1]:4711" and "192.0.2.43:47011" carry ports.
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop
