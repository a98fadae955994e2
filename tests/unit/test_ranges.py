"""`parse_range`: one byte range of a representation, RFC 9110 §14.1.1 and §14.2."""

from __future__ import annotations

import pytest

from gateway.errors import RangeNotSatisfiable
from gateway.media.ranges import parse_range

SIZE = 100  # bytes 0..99


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # int-range "first-pos - last-pos": both inclusive (§14.1.1).
        ("bytes=0-0", (0, 1)),
        ("bytes=0-99", (0, 100)),
        ("bytes=10-19", (10, 20)),
        ("bytes=99-99", (99, 100)),
        ("bytes=000-009", (0, 10)),
        # int-range without last-pos: to the end of the representation.
        ("bytes=0-", (0, 100)),
        ("bytes=50-", (50, 100)),
        ("bytes=99-", (99, 100)),
        # suffix-range "-n": the last n bytes.
        ("bytes=-1", (99, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-100", (0, 100)),
    ],
)
def test_range_selects_the_bytes_it_names(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=-101", "bytes=-1000", "bytes=-99999999999999999999"])
def test_range_suffix_longer_than_file_selects_whole_body(header: str) -> None:
    # §14.1.1: "If the selected representation is shorter than the specified
    # suffix-length, the entire representation is used."
    assert parse_range(header, SIZE) == (0, SIZE)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-100", (0, 100)),
        ("bytes=50-1000", (50, 100)),
        ("bytes=99-100", (99, 100)),
        ("bytes=0-99999999999999999999", (0, 100)),
    ],
)
def test_range_last_pos_beyond_end_is_clamped_to_the_last_byte(
    header: str, expected: tuple[int, int]
) -> None:
    # §14.1.1: a last-pos at or beyond the length means "the remainder of the representation".
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",
        "bytes=100-100",
        "bytes=100-200",
        "bytes=1000-",
        "bytes=99999999999999999999-",
    ],
)
def test_range_first_pos_at_or_beyond_end_is_unsatisfiable(header: str) -> None:
    # §14.1.1: an int-range is satisfiable only if first-pos < the current length.
    with pytest.raises(RangeNotSatisfiable) as excinfo:
        parse_range(header, SIZE)
    # §15.5.17: the 416 carries the complete length in Content-Range "bytes */100".
    assert excinfo.value.size == SIZE


def test_range_suffix_of_zero_bytes_is_unsatisfiable() -> None:
    # §14.1.1: a suffix-range is satisfiable only with a non-zero suffix-length.
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", SIZE)


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0"])
def test_range_int_range_of_empty_representation_is_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 0)


@pytest.mark.parametrize("header", ["bytes=20-10", "bytes=1-0", "bytes=100-50"])
def test_range_last_pos_before_first_pos_is_invalid_and_ignored(header: str) -> None:
    # §14.1.1: "A byte-range-spec is invalid if the last-pos value is present and less
    # than the first-pos"; §14.2: a server MAY ignore an invalid Range header.
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",
        "bytes=0-1, 5-6",
        "bytes=-1,0-0",
        "bytes=200-300,400-500",
        "bytes=0-0,0-0",
    ],
)
def test_range_with_several_ranges_is_ignored_for_the_whole_body(header: str) -> None:
    # §14.2 lets a server ignore Range; the gateway answers multi-range with a 200.
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "=0-1",
        "0-1",
        "bytes 0-1",
        "bytes:0-1",
        "items=0-1",
        "bits=0-1",
        "bytesx=0-1",
        "bytes=a-b",
        "bytes=1-2-3",
        "bytes=0x10-20",
        "bytes=+1-2",
        "bytes=--1",
        "bytes=1.5-2",
        "garbage",
    ],
)
def test_range_malformed_header_is_ignored(header: str) -> None:
    # §14.2: "A server MAY ignore the Range header field", and must not act on one it
    # cannot parse; an unknown range unit is ignored too (§14.1).
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(
            "bytes=\u0660-\u0669",
            id="arabic-indic-digits",
        ),
        pytest.param(
            "bytes=\uff10-\uff19",
            id="fullwidth-digits",
        ),
    ],
)
def test_range_positions_are_ascii_digits_only(header: str) -> None:
    # §14.1.1: first-pos = 1*DIGIT, and DIGIT is %x30-39 (RFC 5234 appendix B.1).
    assert parse_range(header, SIZE) is None


def test_range_absent_header_selects_whole_body() -> None:
    assert parse_range(None, SIZE) is None


@pytest.mark.parametrize("header", ["Bytes=0-9", "BYTES=0-9", "bYtEs=0-9"])
def test_range_unit_is_case_insensitive(header: str) -> None:
    # §14.1: "Range unit names are case-insensitive".
    assert parse_range(header, SIZE) == (0, 10)


@pytest.mark.parametrize(
    "header",
    ["bytes = 0-9", "bytes=0 - 9", "bytes=\t0-9", "bytes=0-9 ", "bytes=0-9\t"],
)
def test_range_with_stray_whitespace_is_read_or_ignored_never_misread(header: str) -> None:
    # The grammar has no whitespace there, so a server may ignore such a header (§14.2);
    # if it reads it, it must read the range the client meant.
    assert parse_range(header, SIZE) in (None, (0, 10))
