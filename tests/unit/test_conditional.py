"""Conditional requests for GET/HEAD, RFC 9110 §13.1 in the order of §13.2.2."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from gateway.media.conditional import Decision, evaluate, range_applies

ETAG = '"abc"'
LAST_MODIFIED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

# HTTP-dates (§5.6.7) around LAST_MODIFIED, in the preferred IMF-fixdate format.
AT = "Wed, 01 May 2024 12:00:00 GMT"
BEFORE = "Wed, 01 May 2024 11:59:59 GMT"
AFTER = "Wed, 01 May 2024 12:00:01 GMT"
# The two obsolete formats a recipient MUST also accept (§5.6.7), both meaning AT.
AT_RFC850 = "Wednesday, 01-May-24 12:00:00 GMT"
AT_ASCTIME = "Wed May  1 12:00:00 2024"
BEFORE_ASCTIME = "Wed May  1 11:59:59 2024"

SEND, NOT_MODIFIED, PRECONDITION_FAILED = (
    Decision.SEND,
    Decision.NOT_MODIFIED,
    Decision.PRECONDITION_FAILED,
)


def decide(**headers: str) -> Decision:
    return evaluate(request(**headers), ETAG, LAST_MODIFIED)


def request(**headers: str) -> CIMultiDict[str]:
    return CIMultiDict((name.replace("_", "-"), value) for name, value in headers.items())


def test_request_without_preconditions_is_sent() -> None:
    assert decide() is SEND


@pytest.mark.parametrize(
    ("if_match", "expected"),
    [
        ('"abc"', SEND),
        ("*", SEND),
        ('"x", "abc"', SEND),
        ('"x","abc"', SEND),
        ('"other"', PRECONDITION_FAILED),
        ('"x", "y"', PRECONDITION_FAILED),
        # §8.8.3.2: entity-tags are opaque and compared octet by octet.
        ('"ABC"', PRECONDITION_FAILED),
        # §13.1.1: strong comparison, so a weak tag never matches.
        ('W/"abc"', PRECONDITION_FAILED),
    ],
)
def test_if_match_uses_strong_comparison(if_match: str, expected: Decision) -> None:
    assert decide(If_Match=if_match) is expected


@pytest.mark.parametrize(
    ("if_unmodified_since", "expected"),
    [
        (AT, SEND),
        (AFTER, SEND),
        (BEFORE, PRECONDITION_FAILED),
        (AT_RFC850, SEND),
        pytest.param(BEFORE_ASCTIME, PRECONDITION_FAILED, id="asctime"),
    ],
)
def test_if_unmodified_since_fails_when_modified_after_the_date(
    if_unmodified_since: str, expected: Decision
) -> None:
    # §13.1.4: false if Last-Modified is more recent than the date.
    assert decide(If_Unmodified_Since=if_unmodified_since) is expected


@pytest.mark.parametrize(
    ("if_none_match", "expected"),
    [
        ('"abc"', NOT_MODIFIED),
        # §13.1.2: weak comparison, so a weak tag with the same opaque-tag matches.
        ('W/"abc"', NOT_MODIFIED),
        ("*", NOT_MODIFIED),
        ('"x", W/"abc"', NOT_MODIFIED),
        ('"x","abc"', NOT_MODIFIED),
        ('"other"', SEND),
        ('"x", "y"', SEND),
        ('W/"ABC"', SEND),
    ],
)
def test_if_none_match_uses_weak_comparison(if_none_match: str, expected: Decision) -> None:
    assert decide(If_None_Match=if_none_match) is expected


@pytest.mark.parametrize("if_none_match", ['"abc"', 'W/"abc"'])
def test_if_none_match_matches_a_weak_representation_tag(if_none_match: str) -> None:
    assert evaluate(request(If_None_Match=if_none_match), 'W/"abc"', LAST_MODIFIED) is NOT_MODIFIED


@pytest.mark.parametrize(
    ("if_modified_since", "expected"),
    [
        (AT, NOT_MODIFIED),
        (AFTER, NOT_MODIFIED),
        (BEFORE, SEND),
        (AT_RFC850, NOT_MODIFIED),
        pytest.param(AT_ASCTIME, NOT_MODIFIED, id="asctime"),
    ],
)
def test_if_modified_since_is_not_modified_unless_modified_after_the_date(
    if_modified_since: str, expected: Decision
) -> None:
    # §13.1.3: false (304) if Last-Modified is not more recent than the date.
    assert decide(If_Modified_Since=if_modified_since) is expected


INVALID_DATES = [
    "garbage",
    "",
    "2024-05-01T12:00:00Z",
    "1714564800",
    "Wed, 32 May 2024 12:00:00 GMT",
    "Wed, 01 May 2024 25:00:00 GMT",
    "Wed, 01 Foo 2024 12:00:00 GMT",
    pytest.param("Wed, 01 May 2024 12:00:00", id="no-zone"),
    pytest.param("Wed, 01 May 2024 12:00:00 -0000", id="minus-0000"),
]


@pytest.mark.parametrize("date", INVALID_DATES)
def test_if_modified_since_with_an_invalid_date_is_ignored(date: str) -> None:
    # §13.1.3: "A recipient MUST ignore the If-Modified-Since header field if the received
    # field value is not a valid HTTP-date".
    assert decide(If_Modified_Since=date) is SEND


@pytest.mark.parametrize("date", INVALID_DATES)
def test_if_unmodified_since_with_an_invalid_date_is_ignored(date: str) -> None:
    # §13.1.4: likewise for If-Unmodified-Since.
    assert decide(If_Unmodified_Since=date) is SEND


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # Step 1 before step 2: If-Match present means If-Unmodified-Since is not
        # evaluated (§13.1.4), whether it would pass or fail.
        ({"If-Match": '"abc"', "If-Unmodified-Since": BEFORE}, SEND),
        ({"If-Match": '"other"', "If-Unmodified-Since": AFTER}, PRECONDITION_FAILED),
        # Steps 1 and 2 before step 3: a failed precondition wins over a 304.
        ({"If-Match": '"other"', "If-None-Match": '"abc"'}, PRECONDITION_FAILED),
        ({"If-Unmodified-Since": BEFORE, "If-None-Match": '"abc"'}, PRECONDITION_FAILED),
        ({"If-Match": '"abc"', "If-None-Match": '"abc"'}, NOT_MODIFIED),
        ({"If-Unmodified-Since": AFTER, "If-None-Match": '"abc"'}, NOT_MODIFIED),
        # Step 3 before step 4: If-None-Match present means If-Modified-Since is not
        # evaluated (§13.1.3), in either direction.
        ({"If-None-Match": '"other"', "If-Modified-Since": AT}, SEND),
        ({"If-None-Match": '"abc"', "If-Modified-Since": BEFORE}, NOT_MODIFIED),
        ({"If-Unmodified-Since": BEFORE, "If-Modified-Since": AT}, PRECONDITION_FAILED),
    ],
)
def test_preconditions_are_evaluated_in_rfc_9110_order(
    headers: dict[str, str], expected: Decision
) -> None:
    assert evaluate(CIMultiDict(headers), ETAG, LAST_MODIFIED) is expected


@pytest.mark.parametrize("name", ["if-none-match", "IF-NONE-MATCH", "If-None-Match"])
def test_precondition_field_names_are_case_insensitive(name: str) -> None:
    # §5.1: field names are case-insensitive.
    assert evaluate(CIMultiDict({name: ETAG}), ETAG, LAST_MODIFIED) is NOT_MODIFIED


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param(
            'W/"abc"',
            id="weak",
        ),
        pytest.param('"abc"', id="strong"),
    ],
)
def test_if_match_never_matches_a_weak_representation_tag(if_match: str) -> None:
    # §8.8.3.2: strong comparison matches only if *both* entity-tags are not weak.
    decision = evaluate(request(If_Match=if_match), 'W/"abc"', LAST_MODIFIED)
    assert decision is PRECONDITION_FAILED


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        ('"abc"', True),
        ('"other"', False),
        ('"ABC"', False),
        # §13.1.5: strong comparison, so a weak tag never lets the range through.
        ('W/"abc"', False),
        ('W/"other"', False),
        (AT, True),
        (AT_RFC850, True),
        pytest.param(
            AT_ASCTIME,
            True,
            id="asctime",
        ),
        # §13.1.5: a date validator matches only an exactly equal Last-Modified.
        (BEFORE, False),
        (AFTER, False),
        # A validator that is neither an entity-tag nor a date cannot be confirmed, so the
        # whole representation is sent rather than a part of a possibly different one.
        ("garbage", False),
        ("", False),
    ],
)
def test_if_range_lets_the_range_through_only_for_a_matching_validator(
    if_range: str, expected: bool
) -> None:
    assert range_applies(request(If_Range=if_range), ETAG, LAST_MODIFIED) is expected


def test_range_applies_without_if_range() -> None:
    assert range_applies(request(), ETAG, LAST_MODIFIED) is True


def test_if_range_never_matches_a_weak_representation_tag() -> None:
    # §13.1.5 uses strong comparison, which fails when either tag is weak (§8.8.3.2).
    assert range_applies(request(If_Range='W/"abc"'), 'W/"abc"', LAST_MODIFIED) is False


@pytest.mark.parametrize("value", ["foo*bar", '"a"junk"x"', "abc", '"abc" x', "*, *x"])
def test_if_none_match_that_is_not_an_entity_tag_list_matches_nothing(value: str) -> None:
    # §13.1.2: "*" is the whole field value or not a wildcard at all; a value that is no
    # list of entity-tags cannot name the current one.
    assert decide(If_None_Match=value) is SEND


@pytest.mark.parametrize("value", ['"nope", x*', "x*", '"abc"junk'])
def test_if_match_that_is_not_an_entity_tag_list_fails(value: str) -> None:
    assert decide(If_Match=value) is PRECONDITION_FAILED


@pytest.mark.parametrize("value", ['"a,b", "abc"', 'W/"x", , "abc"', ' "abc" '])
def test_entity_tag_lists_are_split_on_tags_not_on_commas_inside_them(value: str) -> None:
    assert decide(If_None_Match=value) is NOT_MODIFIED
