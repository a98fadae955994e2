"""What a trusted proxy says, and what is made of what an untrusted one says."""

from __future__ import annotations

import pytest

from gateway.api.forwarded import client, new_request_id, origin, request_id, trusted
from gateway.hosts import networks

PROXIES = networks("127.0.0.1, 10.0.0.0/8, ::1")
HOST, HOST_PORT = "rec.example", "rec.example:8443"


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # An untrusted peer's headers are its own say-so.
        ("198.51.100.1", {"X-Forwarded-For": "203.0.113.9"}, "198.51.100.1"),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
        # Walking back from the peer: the first hop that is not a trusted proxy. What a
        # client put before it could be made up.
        ("127.0.0.1", {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3"}, "203.0.113.9"),
        ("127.0.0.1", {"X-Forwarded-For": "10.1.2.3, 10.4.5.6"}, "10.1.2.3"),
        ("127.0.0.1", {}, "127.0.0.1"),
        ("::1", {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'}, "2001:db8::7"),
        ("127.0.0.1", {"Forwarded": "for=192.0.2.43:47011, for=10.0.0.5"}, "192.0.2.43"),
        ("10.9.9.9", {"X-Forwarded-For": " 203.0.113.9 "}, "203.0.113.9"),
    ],
)
def test_the_client_is_the_first_untrusted_hop(
    peer: str, headers: dict[str, str], expected: str
) -> None:
    assert client(peer, headers, PROXIES) == expected


def test_nothing_is_trusted_by_default() -> None:
    assert trusted("127.0.0.1", networks("")) is False
    assert trusted(None, PROXIES) is False
    assert trusted("not-an-address", PROXIES) is False
    assert trusted("10.200.0.1", PROXIES) is True


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "rec.example"}, ("https", HOST)),
        ({"X-Forwarded-Proto": "HTTPS, http", "X-Forwarded-Host": "a, b"}, ("https", "a")),
        ({"Forwarded": 'proto=HTTPS;host="rec.example:8443", proto=http'}, ("https", HOST_PORT)),
        ({}, (None, None)),
    ],
)  # fmt: skip
def test_the_origin_asked_for(headers: dict[str, str], expected: tuple[str, str]) -> None:
    assert origin(headers) == expected


def test_request_ids_are_taken_only_if_fit_for_a_log_line() -> None:
    assert request_id("abc-123") == "abc-123"
    made = new_request_id()
    assert new_request_id() != made  # each one new
    for hostile in ("", "a b", "x\r\nInjected: 1", "é", "a" * 129):
        assert request_id(hostile) != hostile


def test_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="nginx"):
        networks("10.0.0.0/8, nginx")
