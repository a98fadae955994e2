"""Query parameters of `GET /v1/Recordings` and of media links, per the Twilio schema."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
from multidict import MultiDict, MultiDictProxy

from gateway.api.page_tokens import decode_cursor, encode_cursor
from gateway.api.query import parse_list, parse_media_link
from gateway.errors import InvalidParameter
from gateway.models import Cursor, MediaType, RecordingFilter, Status

RT = "RT0123456789abcdef0123456789abcdef"
RM = "RM0123456789abcdef0123456789abcdef"
PA = "PA0123456789abcdef0123456789abcdef"
MT = "MT0123456789abcdef0123456789abcdef"


def query(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def refused_as(name: str, *pairs: tuple[str, str]) -> InvalidParameter:
    """The InvalidParameter `parse_list` raises, which must name parameter `name`."""
    with pytest.raises(InvalidParameter) as excinfo:
        parse_list(query(*pairs))
    assert excinfo.value.name == name
    return excinfo.value


def token_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# --- Paging -------------------------------------------------------------------------------


def test_list_without_parameters_reads_the_first_page_of_fifty_unfiltered() -> None:
    parsed = parse_list(query())
    assert parsed.page_size == 50
    assert parsed.page == 0
    assert parsed.cursor is None
    assert parsed.page_token is None
    assert parsed.where == RecordingFilter()
    assert parsed.filter_params == ()


def test_list_under_a_room_is_filtered_by_that_room() -> None:
    assert parse_list(query(), room_sid=RM).where.room_sid == RM


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", 1), ("50", 50), ("100", 100), ("1000", 1000), ("007", 7)]
)
def test_page_size_from_1_to_1000_is_accepted(raw: str, expected: int) -> None:
    assert parse_list(query(("PageSize", raw))).page_size == expected


@pytest.mark.parametrize("raw", ["1001", "1500", "100000", "9" * 5000])
def test_page_size_above_1000_is_a_page_of_1000(raw: str) -> None:
    # twilio-python 9 and twilio-node 6 send PageSize=limit for list(limit=1500).
    assert parse_list(query(("PageSize", raw))).page_size == 1000


@pytest.mark.parametrize(
    "raw",
    [
        "0", "-1", "abc", "", "1.5", "1e3", "0x10", "1_0", " 5", "5 ", "+5", "\n5",
        "\u0665", "\uff15", "\u00b2",
    ],
)  # fmt: skip
def test_page_size_outside_1_to_1000_or_not_ascii_digits_is_refused(raw: str) -> None:
    refused_as("PageSize", ("PageSize", raw))


@pytest.mark.parametrize("raw", ["1", "2", "10"])
def test_page_after_the_first_needs_its_page_token(raw: str) -> None:
    refused_as("Page", ("Page", raw))


@pytest.mark.parametrize("raw", ["-1", "abc", "", "1.0"])
def test_page_that_is_not_a_non_negative_integer_is_refused(raw: str) -> None:
    refused_as("Page", ("Page", raw))


def test_page_with_its_page_token_is_accepted() -> None:
    cursor = Cursor(datetime(2024, 5, 1, 12, 0, tzinfo=UTC), RT)
    parsed = parse_list(query(("Page", "3"), ("PageToken", encode_cursor(cursor))))
    assert parsed.page == 3
    assert parsed.cursor == cursor


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), RT, forward=True),
        Cursor(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), RT, forward=False),
        Cursor(datetime(2017, 1, 1, tzinfo=UTC), "RT" + "f" * 32, forward=True),
        Cursor(datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), RT, forward=False),
    ],
    ids=["next", "previous", "whole-second", "far-future"],
)
def test_cursor_round_trips_through_its_page_token(cursor: Cursor) -> None:
    token = encode_cursor(cursor)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", token), "a PageToken travels in a query string"
    assert decode_cursor(token) == cursor
    parsed = parse_list(query(("PageToken", token)))
    assert parsed.cursor == cursor
    assert parsed.page_token == token


@pytest.mark.parametrize(
    "token",
    [
        "",
        " ",
        "=",
        "a",
        "ab",
        "!!!!",
        "%%%",
        "....",
        "-",
        "\u00e9",
        "a" * 4001,
        base64.urlsafe_b64encode(b"junk").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        base64.b64encode(b"\xfb\xff\xbf").decode(),
        token_of("n"),
        token_of("n1"),
        token_of(f"n:{RT}"),
        token_of(f"nabc:{RT}"),
        token_of(f"x1714564800000000:{RT}"),
        token_of(f"n1714564800000000:{RM}"),
        token_of(f"n1714564800000000:{RT}x"),
        token_of("n1714564800000000:"),
        pytest.param(token_of(f"n{10**20}:{RT}"), id="after-year-9999"),
        pytest.param(token_of(f"p-{10**20}:{RT}"), id="before-year-1"),
    ],
)
def test_garbage_page_token_is_refused_as_page_token(token: str) -> None:
    refused_as("PageToken", ("PageToken", token))


# --- Filters ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["processing", "completed", "deleted", "failed"])
def test_status_of_the_schema_is_accepted(raw: str) -> None:
    assert parse_list(query(("Status", raw))).where.status == Status(raw)


@pytest.mark.parametrize("raw", ["Completed", "COMPLETED", "enqueued", "done", "", " completed"])
def test_status_outside_the_schema_enum_is_refused(raw: str) -> None:
    refused_as("Status", ("Status", raw))


@pytest.mark.parametrize("raw", ["audio", "video", "data"])
def test_media_type_of_the_schema_is_accepted(raw: str) -> None:
    assert parse_list(query(("MediaType", raw))).where.media_type == MediaType(raw)


@pytest.mark.parametrize("raw", ["Audio", "screen", "", "audio,video"])
def test_media_type_outside_the_schema_enum_is_refused(raw: str) -> None:
    refused_as("MediaType", ("MediaType", raw))


# The schema's SID pattern for SourceSid and GroupingSid: ^[a-zA-Z]{2}[0-9a-fA-F]{32}$
BAD_SIDS = [
    "",
    "MT",
    MT[:-1],
    MT + "0",
    "MT" + "g" * 32,
    "M1" + "a" * 32,
    "12" + "a" * 32,
    MT + "\n",
    " " + MT,
    "MT" + "\u0660" * 32,
]


@pytest.mark.parametrize("raw", [MT, PA, "MT" + "ABCDEF0123456789" * 2, "mt" + "a" * 32])
def test_source_sid_matching_the_schema_pattern_is_accepted(raw: str) -> None:
    assert parse_list(query(("SourceSid", raw))).where.source_sid == raw


@pytest.mark.parametrize("raw", BAD_SIDS)
def test_source_sid_not_matching_the_schema_pattern_is_refused(raw: str) -> None:
    refused_as("SourceSid", ("SourceSid", raw))


@pytest.mark.parametrize(
    "pairs",
    [
        [("GroupingSid", RM), ("GroupingSid", PA)],
        [("GroupingSid", f'["{RM}","{PA}"]')],
        [("GroupingSid", f'["{RM}", "{PA}"]')],
        [("GroupingSid", f'["{RM}"]'), ("GroupingSid", PA)],
    ],
    ids=["repeated", "json-array", "json-array-spaced", "mixed"],
)
def test_grouping_sids_repeated_or_as_a_json_array_are_all_kept(
    pairs: list[tuple[str, str]],
) -> None:
    assert parse_list(query(*pairs)).where.grouping_sids == (RM, PA)


@pytest.mark.parametrize(
    "raw",
    [
        f'["{RM}",',
        f"[{RM}]",
        f"['{RM}']",
        "[",
        "[1, 2]",
        f'[["{RM}"]]',
        f'["{RM}", null]',
        '["not-a-sid"]',
        *BAD_SIDS,
        pytest.param(
            "[" * 1000,
            id="deeply-nested",
        ),
    ],
)
def test_grouping_sid_that_is_not_a_sid_or_a_json_array_of_sids_is_refused(raw: str) -> None:
    refused_as("GroupingSid", ("GroupingSid", raw))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2017-01-01T00:00:01Z", datetime(2017, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2017-01-01T02:00:01+02:00", datetime(2017, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2016-12-31T19:00:01-05:00", datetime(2017, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2017-01-01T00:00:01+00:00", datetime(2017, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2017-01-01T00:00:01.5Z", datetime(2017, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)),
        # Without an offset the date-time is read as UTC, as Twilio reads it.
        ("2017-01-01T00:00:01", datetime(2017, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize("name", ["DateCreatedAfter", "DateCreatedBefore"])
def test_date_created_bounds_read_iso_8601_with_or_without_offset(
    name: str, raw: str, expected: datetime
) -> None:
    where = parse_list(query((name, raw))).where
    moment = where.created_after if name == "DateCreatedAfter" else where.created_before
    assert moment is not None
    assert moment.utcoffset() is not None
    assert moment == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "yesterday",
        "2017-13-01T00:00:00Z",
        "2017-02-30T00:00:00Z",
        "2017-01-01T24:61:00Z",
        "01/01/2017",
        "1483228801",
        "2017-01-01T00:00:00+25:00",
    ],
)
@pytest.mark.parametrize("name", ["DateCreatedAfter", "DateCreatedBefore"])
def test_date_created_bound_that_is_not_iso_8601_is_refused(name: str, raw: str) -> None:
    refused_as(name, (name, raw))


def test_filters_in_their_canonical_spelling_parse_to_the_same_filter() -> None:
    # The canonical parameters are repeated in every paging URL, so they must read back.
    parsed = parse_list(
        query(
            ("Status", "completed"),
            ("SourceSid", MT),
            ("GroupingSid", f'["{RM}","{PA}"]'),
            ("DateCreatedAfter", "2017-01-01T02:00:01+02:00"),
            ("DateCreatedBefore", "2017-12-31T23:59:59"),
            ("MediaType", "video"),
        )
    )
    assert parse_list(query(*parsed.filter_params)).where == parsed.where


# --- Media links --------------------------------------------------------------------------


def test_media_link_defaults_to_ten_minutes_and_the_default_disposition() -> None:
    request = parse_media_link(query())
    assert request.ttl == 600
    assert request.content_disposition is None


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("600", 600), ("3600", 3600)])
def test_media_link_ttl_from_1_to_3600_is_accepted(raw: str, expected: int) -> None:
    assert parse_media_link(query(("Ttl", raw))).ttl == expected


@pytest.mark.parametrize(
    "raw", ["0", "-1", "3601", "86400", "abc", "", "1.5", "1_0", " 60", "+60", "\u0665", "9" * 5000]
)
def test_media_link_ttl_outside_1_to_3600_or_not_an_integer_is_refused(raw: str) -> None:
    with pytest.raises(InvalidParameter) as excinfo:
        parse_media_link(query(("Ttl", raw)))
    assert excinfo.value.name == "Ttl"


def test_media_link_passes_the_requested_disposition_on_for_checking() -> None:
    requested = 'inline; filename="a.mka"'
    assert parse_media_link(query(("ContentDisposition", requested))).content_disposition == (
        requested
    )
