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


def listed(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether `patterns` name `host`: exactly, "*" any host, "*.domain" the domain's
    subdomains, ".domain" the domain and its subdomains (as Django's ALLOWED_HOSTS)."""
    host = host.lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address as a URL's hostname gives it, spelled as listed
    for pattern in patterns:
        if pattern in ("*", host):
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern)):
            return True
    return False


def host_patterns(value: str) -> tuple[str, ...]:
    """A comma-separated list of what `listed` takes; ValueError for anything else."""
    patterns = []
    for raw in value.split(","):
        pattern = raw.strip().lower()
        if not pattern:
            continue
        prefix = next((p for p in ("*.", ".") if pattern.startswith(p)), "")
        name = pattern.removeprefix(prefix)
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"  # an IPv6 address, bracketed as a Host spells it
            pattern = prefix + name
        try:
            valid = pattern == "*" or ("*" not in name and parse_host(name) == (name, ""))
        except InvalidParameter:
            valid = False
        if not valid:
            raise ValueError(
                f"{raw.strip()!r} is not a host (without a port), *.domain, .domain or *"
            )
        patterns.append(pattern)
    return tuple(patterns)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(value: str) -> tuple[Network, ...]:
    """GATEWAY_TRUSTED_PROXIES: comma-separated addresses or CIDRs."""
    found = []
    for raw in value.split(","):
        if raw.strip():
            try:
                found.append(ipaddress.ip_network(raw.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{raw.strip()!r} is not an address or a CIDR") from None
    return tuple(found)
