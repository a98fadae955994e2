"""Host values: parsed as RFC 9110 §7.2 and RFC 3986 §3.2 spell them, and matched
against the hosts an operator allows (as Django's ALLOWED_HOSTS are)."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from gateway.errors import InvalidParameter

# RFC 3986 §3.2.2 reg-name: unreserved, pct-encoded and sub-delims characters.
_REG_NAME: Final = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_PORT: Final = re.compile(r"[0-9]{1,5}")


def parse_host(value: str) -> tuple[str, str]:
    """(host, port) of a Host value (RFC 9110 §7.2: uri-host [":" port]), the host in
    lower case and the port "" when none is given; InvalidParameter for anything else."""
    if value.startswith("["):
        literal, bracket, rest = value[1:].partition("]")
        if not bracket or not _is_ipv6(literal):
            raise InvalidParameter("Host", "is not a valid [IPv6] address")
        host = f"[{literal.lower()}]"
    else:
        host, _, _ = value.partition(":")
        rest = value[len(host) :]
        if _REG_NAME.fullmatch(host) is None:
            raise InvalidParameter("Host", "is not a host name or address")
        host = host.lower()
    if rest in ("", ":"):  # RFC 3986 §3.2.3: an empty port is as good as none
        return host, ""
    port = rest[1:]
    if rest[0] != ":" or _PORT.fullmatch(port) is None or not 0 < int(port) <= 65535:
        raise InvalidParameter("Host", "has a port that is not a number from 1 to 65535")
    return host, port


def _is_ipv6(literal: str) -> bool:
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        return False
    return "%" not in literal  # zone IDs have no place in a URL's authority


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """`allowed` holds exact hosts, ".domain" for it and its subdomains, or "*"."""
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern)):
            return True
    return False
