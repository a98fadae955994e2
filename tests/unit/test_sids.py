"""Twilio SIDs: a two-letter kind and 32 hex digits (the schema's SID patterns)."""

from __future__ import annotations

import re

import pytest

from gateway import sids

HEX = "0123456789abcdef0123456789abcdef"
KINDS = ["AC", "SK", "RT", "RM", "PA", "MT"]


@pytest.mark.parametrize("prefix", KINDS)
def test_minted_sid_is_its_kind_and_32_lowercase_hex_digits(prefix: str) -> None:
    sid = sids.mint(prefix)
    assert re.fullmatch(rf"{prefix}[0-9a-f]{{32}}", sid)
    assert sids.is_sid(sid)
    assert sids.is_sid(sid, prefix)


def test_minted_sids_do_not_repeat() -> None:
    minted = {sids.mint("RT") for _ in range(1000)}
    assert len(minted) == 1000


@pytest.mark.parametrize(
    "value",
    [
        "RT" + HEX,
        "RT" + "0" * 32,
        "RT" + "f" * 32,
        # The schema's generic pattern is ^[a-zA-Z]{2}[0-9a-fA-F]{32}$.
        "RT" + HEX.upper(),
        "rt" + HEX,
        "Zz" + HEX,
    ],
)
def test_value_matching_the_schema_sid_pattern_is_a_sid(value: str) -> None:
    assert sids.is_sid(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "RT",
        HEX,
        "RT" + HEX[:-1],
        "RT" + HEX + "0",
        "RT" + HEX[:-1] + "g",
        "R1" + HEX,
        "1T" + HEX,
        "R" + HEX,
        "RT-" + HEX[1:],
        "RT" + HEX + "\n",
        "\nRT" + HEX,
        " RT" + HEX,
        "RT" + HEX + " ",
        "RT" + "\u0660" * 32,
        "\uff32\uff34" + HEX,
        "\u00c9T" + HEX,
    ],
)
def test_value_not_matching_the_schema_sid_pattern_is_not_a_sid(value: str) -> None:
    assert not sids.is_sid(value)


@pytest.mark.parametrize(
    ("value", "prefix", "expected"),
    [
        ("RT" + HEX, "RT", True),
        ("RT" + HEX.upper(), "RT", True),
        ("RM" + HEX, "RT", False),
        ("AC" + HEX, "RT", False),
        # The schema's typed patterns, such as ^RT[0-9a-fA-F]{32}$, spell the kind in capitals.
        ("rt" + HEX, "RT", False),
        ("RT" + HEX[:-1], "RT", False),
    ],
)
def test_sid_of_a_kind_has_that_exact_prefix(value: str, prefix: str, expected: bool) -> None:
    assert sids.is_sid(value, prefix) is expected
