"""Property-based tests of every parser on the request path.

Two kinds of property for each parser:

- totality: whatever a client sends (any text, lone surrogates and control or format
  characters included, thousands of digits, digits of other scripts, any JSON), the parser
  answers a value or raises the project's own bad-input error, never anything else;
- agreement: for valid input the answer is the one the RFC (or the Twilio schema) defines,
  the expected value computed here from that definition, never by the code under test.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Final, TypeVar

import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, MultiDict, MultiDictProxy

from gateway import sids
from gateway.api.credentials import parse_basic, parse_bearer
from gateway.api.declarations import parse_declaration
from gateway.api.page_tokens import decode_cursor, encode_cursor
from gateway.api.query import parse_list, parse_media_link
from gateway.errors import InvalidParameter, RangeNotSatisfiable, Unauthenticated
from gateway.hosts import listed, parse_host
from gateway.ingestion import Declaration
from gateway.media.conditional import Decision, _http_date, evaluate, range_applies
from gateway.media.headers import content_disposition
from gateway.media.ranges import parse_range
from gateway.models import Codec, Container, Cursor, MediaType, Status

T = TypeVar("T")

# No "explain" phase: it reruns each failing example many times over, which costs more
# than its report is worth in a file of this many properties.
PHASES: Final = tuple(phase for phase in Phase if phase is not Phase.explain)
CHEAP: Final = settings(max_examples=200, deadline=None, phases=PHASES)
MEDIUM: Final = settings(max_examples=150, deadline=None, phases=PHASES)
COSTLY: Final = settings(max_examples=100, deadline=None, phases=PHASES)
FEW: Final = settings(max_examples=50, deadline=None, phases=PHASES)

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ASCII_DIGITS: Final = "0123456789"
HEX: Final = string.hexdigits  # 0-9, a-f, A-F


# --- Hostile input ------------------------------------------------------------------------

# Characters parsers get wrong, given more often than their share of Unicode would give them:
# C0 and C1 controls, Unicode's extra white space and line separators, format characters
# (zero width, bidi overrides, BOM), lone surrogates (aiohttp's surrogate escapes), digits of
# other scripts, superscripts and fractions, and the non-ASCII letters whose case mappings
# are ASCII (LONG S, DOTLESS I, KELVIN SIGN).
TRICKY_CHARS: Final = (
    "\x00\t\n\r\x0b\x0c\x1c\x1f\x7f\x85\xa0 \u1680\u2028\u2029\u3000"
    "\u200b\u200e\u202e\u2066\ufeff\ud800\udbff\udc80\udcff\udfff"
    "\u0663\u06f3\u0969\uff13\U0001d7d9\xb2\xb9\xbd\u2167"
    "\u017f\u0131\u212a"
)
# st.characters() leaves surrogates out unless asked for them, and st.text() drops them.
ANY_CHAR: Final = st.one_of(
    st.characters(), st.characters(categories=["Cs"]), st.sampled_from(TRICKY_CHARS)
)
ANY_TEXT: Final = st.lists(ANY_CHAR, max_size=30).map("".join)
WHITESPACE: Final = st.text(" \t\r\n\x0b\x0c\xa0\u3000\u2028", min_size=1, max_size=3)
# Decimal digits of every script but ASCII's, and other characters that int() or isdigit()
# take for digits.
NON_ASCII_DIGIT: Final = st.characters(categories=["Nd"]).filter(
    lambda c: c not in ASCII_DIGITS
) | st.sampled_from("\xb2\xb3\xb9\u2070\u2460\u0f33")
SHORT_DIGITS: Final = st.text(ASCII_DIGITS, min_size=1, max_size=25)
# Thousands of digits: past the 4,300 at which int() refuses a string.
HUGE_DIGITS: Final = st.builds(
    lambda head, count, tail: head * count + tail,
    st.sampled_from(ASCII_DIGITS),
    st.integers(1_000, 6_000),
    st.text(ASCII_DIGITS, max_size=6),
)
# 19 to 4,000 digits: from a C long's limit to far past it, yet fewer than int() refuses.
LONG_DIGITS: Final = st.builds(
    lambda head, count: head * count, st.sampled_from("123456789"), st.integers(19, 4_000)
)
WEIRD_NUMBER: Final = st.one_of(
    SHORT_DIGITS,
    LONG_DIGITS,
    HUGE_DIGITS,
    st.text(NON_ASCII_DIGIT, min_size=1, max_size=6),
    st.builds("".join, st.lists(st.sampled_from(ASCII_DIGITS) | NON_ASCII_DIGIT, max_size=8)),
    st.sampled_from(["-1", "+1", "1_0", "1.5", "1e3", "0x10", " 5", "5 ", "\n5", "", "-0"]),
)


def sids_of(prefix: str) -> st.SearchStrategy[str]:
    return st.text(HEX, min_size=32, max_size=32).map(prefix.__add__)


BODY_FIELDS: Final = (
    "account_sid", "type", "codec", "container_format", "source_sid", "grouping_sids",
    "track_name", "offset", "status_callback", "status_callback_method",
)  # fmt: skip


def deeply_nested(depth: int, kind: str) -> object:
    value: object = None
    for _ in range(depth):
        value = [value] if kind == "list" else {"room_sid": value}
    return value


JSON_SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.integers(300, 1_200).map(lambda digits: 10**digits - 1),
    st.floats(),
    ANY_TEXT,
    sids_of("AC") | sids_of("MT") | sids_of("RM") | sids_of("PA"),
    st.sampled_from([*MediaType, *Codec, *Container, "GET", "POST"]).map(str),
)
JSON_VALUES: Final = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(BODY_FIELDS) | ANY_TEXT, inner, max_size=4)
    ),
    max_leaves=10,
) | st.builds(deeply_nested, st.integers(1, 500), st.sampled_from(["list", "dict"]))


def assembled(*pieces: st.SearchStrategy[str], max_pieces: int = 10) -> st.SearchStrategy[str]:
    """Text made of pieces that look like the grammar, and pieces that do not."""
    return st.lists(st.one_of(*pieces), max_size=max_pieces).map("".join)


def hostile(*vocabulary: str) -> st.SearchStrategy[str]:
    """Anything at all, or a near miss built from the grammar's own words."""
    return st.one_of(
        ANY_TEXT,
        WEIRD_NUMBER,
        assembled(st.sampled_from(vocabulary), WEIRD_NUMBER, WHITESPACE, ANY_TEXT),
    )


@cache
def _unicode_case_variants() -> dict[str, tuple[str, ...]]:
    """For each ASCII letter, the non-ASCII characters whose case mapping is that letter
    (all of them in the Basic Multilingual Plane, which is all this looks through)."""
    found: dict[str, set[str]] = {}
    for codepoint in range(0x10000):
        char = chr(codepoint)
        if char.isascii():
            continue
        for mapped in {char.lower(), char.upper(), char.casefold()}:
            if len(mapped) == 1 and mapped.isascii() and mapped.isalpha():
                found.setdefault(mapped.lower(), set()).add(char)
    return {letter: tuple(sorted(chars)) for letter, chars in found.items()}


def any_case(word: str) -> st.SearchStrategy[str]:
    """`word` with each ASCII letter in either case."""
    return st.tuples(*(st.sampled_from(sorted({c.lower(), c.upper()})) for c in word)).map("".join)


def any_case_or_lookalike(word: str) -> st.SearchStrategy[str]:
    """`word` with each letter in either case or as a non-ASCII character that case-maps
    to it (U+017F LATIN SMALL LETTER LONG S upper-cases to "S", U+212A KELVIN SIGN
    lower-cases to "k"): the same word only to a Unicode-aware, not an ASCII, comparison."""

    def spellings(char: str) -> st.SearchStrategy[str]:
        variants = _unicode_case_variants().get(char.lower(), ())
        return st.sampled_from(sorted({char.lower(), char.upper(), *variants}))

    return st.tuples(*(spellings(c) for c in word)).map("".join)


def is_ascii_word(text: str, word: str) -> bool:
    """RFC 9110 §5.6.2 tokens compare case-insensitively: ASCII case only."""
    return text.isascii() and text.lower() == word


def query(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def insert(text: str, index: int, char: str) -> str:
    index %= len(text) + 1
    return text[:index] + char + text[index:]


def raises(call: Callable[[], T], error: type[Exception]) -> T | Exception:
    """The answer of `call`, or the `error` it raised; any other exception propagates."""
    try:
        return call()
    except error as refused:
        return refused


# --- Byte ranges: RFC 9110 §14 ------------------------------------------------------------

# Sizes of files that exist: empty, tiny, and up to a PiB. (The parser reads any position
# of 18 or more digits as "past the end", which is exact for every size up to 10**17.)
SIZES: Final = st.one_of(st.integers(0, 3), st.integers(0, 2**20), st.integers(0, 2**50))


def _significant(digits: str) -> str:
    return digits.lstrip("0") or "0"


def _digits_less(a: str, b: str) -> bool:
    """a < b as numbers, for digit strings of any length (int() stops at 4,300 digits)."""
    a, b = _significant(a), _significant(b)
    return (len(a), a) < (len(b), b)


def _at_most(digits: str, bound: int) -> int:
    """min(value of `digits`, bound), for digit strings of any length."""
    significant = _significant(digits)
    if len(significant) > len(str(bound)):
        return bound
    return min(int(significant), bound)


def rfc_9110_slice(first: str, last: str, size: int) -> tuple[int, int] | str | None:
    """What RFC 9110 §14.1.1-2 make of one range-spec over `size` bytes: the
    (start, end-exclusive) slice, None when the range-spec is invalid (§14.2 ignores the
    header) or "416" when it is not satisfiable (§15.5.17)."""
    if not first and not last:
        return None  # "-" alone is no range-spec at all
    if not first:
        # suffix-range: the last `suffix` bytes, all of them when there are fewer; a
        # suffix-length of 0 is the one unsatisfiable suffix-range, even of no bytes.
        suffix = _at_most(last, size + 1)
        if suffix == 0:
            return "416"
        return size - min(suffix, size), size
    if last and _digits_less(last, first):
        return None  # "A range with last-pos < first-pos is invalid"
    start = _at_most(first, size)  # an int-range is satisfiable iff first-pos < size
    if start >= size:
        return "416"
    final_byte = size - 1 if not last else _at_most(last, size - 1)
    return start, final_byte + 1


def positions(size: int) -> st.SearchStrategy[str]:
    """Decimal positions around `size` and far beyond it, some with leading zeros."""
    number = st.one_of(
        st.integers(0, size + 2).map(str),
        st.integers(max(size - 3, 0), size + 3).map(str),
        st.integers(0, 2**70).map(str),
        HUGE_DIGITS,
    )
    return st.builds(lambda zeros, digits: zeros + digits, st.text("0", max_size=3), number)


@st.composite
def range_specs(draw: st.DrawFn, size: int) -> tuple[str, str]:
    kind = draw(st.sampled_from(["int-range", "open int-range", "suffix-range"]))
    first = "" if kind == "suffix-range" else draw(positions(size))
    last = "" if kind == "open int-range" else draw(positions(size))
    return first, last


RANGE_WORDS: Final = ("bytes", "BYTES", "=", "-", ",", "bytes=", "bytes=-", "0", " ", "\t")


@CHEAP
@given(header=st.none() | hostile(*RANGE_WORDS), size=SIZES)
def test_range_parser_answers_a_slice_none_or_416_for_any_header(
    header: str | None, size: int
) -> None:
    answer = raises(lambda: parse_range(header, size), RangeNotSatisfiable)
    if isinstance(answer, RangeNotSatisfiable):
        assert answer.size == size
        assert answer.headers == {"Content-Range": f"bytes */{size}"}
    elif answer is not None:
        start, end = answer
        assert type(start) is int
        assert type(end) is int
        assert 0 <= start <= end <= size


@MEDIUM
@given(data=st.data(), size=SIZES, unit=any_case("bytes"))
def test_a_single_byte_range_selects_exactly_the_rfc_9110_slice(
    data: st.DataObject, size: int, unit: str
) -> None:
    first, last = data.draw(range_specs(size))
    expected = rfc_9110_slice(first, last, size)
    header = f"{unit}={first}-{last}"
    if expected == "416":
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == expected


@MEDIUM
@given(
    data=st.data(),
    size=SIZES,
    unit=any_case_or_lookalike("bytes")
    | st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1),
)
def test_a_range_in_any_unit_but_bytes_is_ignored(
    data: st.DataObject, size: int, unit: str
) -> None:
    # §14.1: range units compare case-insensitively, which for a token is ASCII case only;
    # §14.2: "An origin server MUST ignore a Range header field that contains a range unit
    # it does not understand."
    assume(not is_ascii_word(unit, "bytes"))
    first, last = data.draw(range_specs(size))
    assert parse_range(f"{unit}={first}-{last}", size) is None


@FEW
@given(
    data=st.data(),
    size=SIZES,
    count=st.integers(2, 4),
    separators=st.lists(st.sampled_from([",", ", ", " ,", ",\t"]), min_size=3, max_size=3),
)
def test_several_byte_ranges_are_ignored_and_the_whole_file_sent(
    data: st.DataObject, size: int, count: int, separators: list[str]
) -> None:
    # README: a multi-range header gets the whole file with 200, as §14.2 allows.
    specs = [data.draw(range_specs(size)) for _ in range(count)]
    header = "bytes=" + specs[0][0] + "-" + specs[0][1]
    for separator, (first, last) in zip(separators, specs[1:], strict=False):
        header += f"{separator}{first}-{last}"
    assert parse_range(header, size) is None


# --- Conditional requests: RFC 9110 §13 ---------------------------------------------------

DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def imf_fixdate(moment: datetime) -> str:
    """§5.6.7: day-name "," SP date1 SP time-of-day SP GMT, e.g. Sun, 06 Nov 1994 08:49:37 GMT."""
    return (
        f"{DAYS[moment.weekday()]}, {moment.day:02d} {MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment:%H:%M:%S} GMT"
    )


def rfc850_date(moment: datetime) -> str:
    """§5.6.7 obs-date: day-name-l "," SP date2 SP time-of-day SP GMT, date2 = DD-Mon-YY."""
    return (
        f"{WEEKDAYS[moment.weekday()]}, {moment.day:02d}-{MONTHS[moment.month - 1]}-"
        f"{moment.year % 100:02d} {moment:%H:%M:%S} GMT"
    )


def asctime_date(moment: datetime) -> str:
    """§5.6.7 obs-date: day-name SP date3 SP time-of-day SP year, date3 = Mon SP (2DIGIT /
    (SP DIGIT))."""
    return (
        f"{DAYS[moment.weekday()]} {MONTHS[moment.month - 1]} {moment.day:2d} "
        f"{moment:%H:%M:%S} {moment.year:04d}"
    )


def http_dates(low: datetime, high: datetime) -> st.SearchStrategy[datetime]:
    """Instants in whole seconds, as HTTP-dates carry them, in UTC."""
    return st.datetimes(min_value=low, max_value=high).map(
        lambda moment: moment.replace(microsecond=0, tzinfo=UTC)
    )


# Every instant an HTTP-date with a four-digit year can spell, but for one second at each
# end, so that a second either side of it is still a datetime; its first and last centuries,
# and the years around now, more often than their share.
ANY_HTTP_DATE: Final = st.one_of(
    http_dates(datetime(1, 1, 1, 0, 0, 1), datetime(9999, 12, 31, 23, 59, 58)),
    http_dates(datetime(1, 1, 1, 0, 0, 1), datetime(199, 12, 31, 23, 59, 59)),
    http_dates(datetime(1900, 1, 1), datetime(2100, 12, 31, 23, 59, 59)),
    http_dates(datetime(9900, 1, 1), datetime(9999, 12, 31, 23, 59, 58)),
)
RECENT: Final = http_dates(datetime(1970, 1, 1), datetime(2100, 12, 31))
ONE_SECOND_EITHER_SIDE: Final = st.sampled_from([-1, 0, 1]).map(lambda s: timedelta(seconds=s))

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E (and
# obs-text). A comma is an etagc like any other; it, "W", "/" and "*" come more often than
# their share, as the characters that mean something in the fields' syntax.
ETAGC: Final = "".join(chr(c) for c in range(0x21, 0x7F) if c != 0x22)
OPAQUE_TAGS: Final = st.text(st.sampled_from(ETAGC) | st.sampled_from(",W/*"), max_size=12).map(
    lambda opaque: f'"{opaque}"'
)
OWS: Final = st.text(" \t", max_size=2)

ETAG_WORDS: Final = ('"', 'W/"', "W/", "*", ",", ", ", '"abc"', 'W/"abc"', "GMT", " GMT")
DATE_WORDS: Final = (
    *DAYS, *WEEKDAYS, *MONTHS, ",", " ", ":", "-", " GMT", "GMT", "UT", "+0000", "-9999",
)  # fmt: skip


@st.composite
def near_dates(draw: st.DrawFn) -> str:
    """A valid HTTP-date with one of its numbers replaced by any other digits."""
    value = draw(st.sampled_from([imf_fixdate, rfc850_date, asctime_date]))(draw(RECENT))
    numbers = [match.span() for match in re.finditer("[0-9]+", value)]
    start, end = draw(st.sampled_from(numbers))
    return value[:start] + draw(WEIRD_NUMBER) + value[end:]


def date_like() -> st.SearchStrategy[str]:
    """HTTP-date shapes with any numbers in them: huge, negative, other scripts' digits."""
    field = st.one_of(SHORT_DIGITS, LONG_DIGITS, HUGE_DIGITS, WEIRD_NUMBER, st.just(""))
    return st.one_of(
        near_dates(),
        st.builds(
            "{}, {} {} {} {}:{}:{}{}".format,
            st.sampled_from(DAYS),
            field,
            st.sampled_from(MONTHS) | ANY_TEXT,
            field,
            field,
            field,
            field,
            st.sampled_from([" GMT", "", " UT", " +0000", " -2400", " GMT, x GMT"]),
        ),
        st.builds(
            "{} {} {} {}:{}:{} {}".format,
            st.sampled_from(DAYS),
            st.sampled_from(MONTHS),
            field,
            field,
            field,
            field,
            field,
        ),
        assembled(st.sampled_from(DATE_WORDS), WEIRD_NUMBER, ANY_TEXT),
    )


ETAG_VALUES: Final = hostile(*ETAG_WORDS) | st.lists(OPAQUE_TAGS, min_size=1).map(", ".join)
DATE_VALUES: Final = st.one_of(date_like(), ANY_HTTP_DATE.map(imf_fixdate), hostile(*DATE_WORDS))
CONDITIONAL_VALUES: Final = ETAG_VALUES | DATE_VALUES
CONDITIONAL_HEADERS: Final = st.fixed_dictionaries(
    {},
    optional={
        "If-Match": ETAG_VALUES,
        "If-None-Match": ETAG_VALUES,
        "If-Modified-Since": DATE_VALUES,
        "If-Unmodified-Since": DATE_VALUES,
        "If-Range": CONDITIONAL_VALUES,
    },
)


def headers(**fields: str) -> CIMultiDict[str]:
    return CIMultiDict((name.replace("_", "-"), value) for name, value in fields.items())


@CHEAP
@given(
    fields=CONDITIONAL_HEADERS,
    etag=OPAQUE_TAGS | OPAQUE_TAGS.map("W/".__add__),
    last_modified=ANY_HTTP_DATE,
)
def test_conditionals_answer_a_decision_for_any_headers(
    fields: Mapping[str, str], etag: str, last_modified: datetime
) -> None:
    request = CIMultiDict(fields)
    assert evaluate(request, etag, last_modified) in set(Decision)
    assert range_applies(request, etag, last_modified) in (True, False)


@CHEAP
@given(value=st.none() | CONDITIONAL_VALUES)
def test_http_date_parser_answers_a_utc_instant_or_none_for_any_text(value: str | None) -> None:
    moment = _http_date(value)
    assert moment is None or (isinstance(moment, datetime) and moment.utcoffset() == timedelta())


def _field_list(tags: list[str], separators: list[str]) -> str:
    return "".join(
        (separator if index else "") + tag
        for index, (separator, tag) in enumerate(zip(separators, tags, strict=True))
    )


@st.composite
def etag_lists(draw: st.DrawFn) -> tuple[str, str, bool, bool, bool]:
    """(If-Match/If-None-Match value, the representation's etag, whether the list holds
    its opaque-tag, whether as a strong tag, whether the representation's tag is weak)."""
    opaque = draw(OPAQUE_TAGS)
    weak_etag = draw(st.booleans())
    others = draw(st.lists(OPAQUE_TAGS.filter(lambda other: other != opaque), max_size=5))
    tags = [draw(st.sampled_from(["", "W/"])) + other for other in others]
    present = draw(st.booleans())
    strong_in_list = False
    if present:
        strong_in_list = draw(st.booleans())
        tags.insert(draw(st.integers(0, len(tags))), ("" if strong_in_list else "W/") + opaque)
    assume(tags)
    # §5.6.1: #element = [ element ] *( OWS "," OWS [ element ] ), with empty elements.
    separators = [draw(OWS) + draw(st.sampled_from([",", ", ,"])) + draw(OWS) for _ in tags]
    value = draw(OWS) + _field_list(tags, separators) + draw(OWS)
    return value, ("W/" if weak_etag else "") + opaque, present, strong_in_list, weak_etag


@MEDIUM
@given(case=etag_lists(), last_modified=RECENT)
def test_if_match_passes_exactly_when_the_list_strongly_matches_the_etag(
    case: tuple[str, str, bool, bool, bool], last_modified: datetime
) -> None:
    value, etag, present, strong_in_list, weak_etag = case
    # §13.1.1 uses the strong comparison of §8.8.3.2: both tags strong, opaque-tags equal.
    strong_match = present and strong_in_list and not weak_etag
    expected = Decision.SEND if strong_match else Decision.PRECONDITION_FAILED
    assert evaluate(headers(If_Match=value), etag, last_modified) is expected


@MEDIUM
@given(case=etag_lists(), last_modified=RECENT)
def test_if_none_match_is_not_modified_exactly_when_the_list_weakly_matches_the_etag(
    case: tuple[str, str, bool, bool, bool], last_modified: datetime
) -> None:
    value, etag, present, _, _ = case
    # §13.1.2 uses the weak comparison: opaque-tags equal, whether or not either is weak.
    expected = Decision.NOT_MODIFIED if present else Decision.SEND
    assert evaluate(headers(If_None_Match=value), etag, last_modified) is expected


@CHEAP
@given(etag=OPAQUE_TAGS | OPAQUE_TAGS.map("W/".__add__), last_modified=RECENT, space=OWS)
def test_a_star_matches_any_etag_in_if_match_and_if_none_match(
    etag: str, last_modified: datetime, space: str
) -> None:
    star = space + "*" + space
    assert evaluate(headers(If_Match=star), etag, last_modified) is Decision.SEND
    assert evaluate(headers(If_None_Match=star), etag, last_modified) is Decision.NOT_MODIFIED


@CHEAP
@given(
    opaque=OPAQUE_TAGS,
    other=OPAQUE_TAGS,
    weak_etag=st.booleans(),
    weak_validator=st.booleans(),
    last_modified=RECENT,
)
def test_if_range_with_an_entity_tag_applies_only_on_a_strong_match(
    opaque: str, other: str, weak_etag: bool, weak_validator: bool, last_modified: datetime
) -> None:
    etag = ("W/" if weak_etag else "") + opaque
    for validator in (opaque, other):
        field = ("W/" if weak_validator else "") + validator
        # §13.1.5: "the condition is true if the entity-tag validator ... matches the
        # current entity tag of the selected representation" by strong comparison.
        expected = validator == opaque and not weak_etag and not weak_validator
        assert range_applies(headers(If_Range=field), etag, last_modified) is expected


DATE_FORMATS: Final = {"IMF-fixdate": imf_fixdate, "asctime-date": asctime_date}


@pytest.mark.parametrize("spell", DATE_FORMATS.values(), ids=DATE_FORMATS.keys())
@CHEAP
@given(moment=ANY_HTTP_DATE, shift=ONE_SECOND_EITHER_SIDE, etag=OPAQUE_TAGS)
def test_an_http_date_means_the_instant_it_spells_in_every_date_header(
    spell: Callable[[datetime], str], moment: datetime, shift: timedelta, etag: str
) -> None:
    value = spell(moment)
    last_modified = moment + shift
    assert _http_date(value) == moment
    # §13.1.3: not modified when the representation is not newer than the date.
    not_modified = Decision.NOT_MODIFIED if last_modified <= moment else Decision.SEND
    assert evaluate(headers(If_Modified_Since=value), etag, last_modified) is not_modified
    # §13.1.4: the precondition fails when the representation is newer than the date.
    failed = Decision.PRECONDITION_FAILED if last_modified > moment else Decision.SEND
    assert evaluate(headers(If_Unmodified_Since=value), etag, last_modified) is failed
    # §13.1.5: a date applies the range only when it is exactly the Last-Modified.
    assert range_applies(headers(If_Range=value), etag, last_modified) is (last_modified == moment)


# Today, give or take. §5.6.7 reads a two-digit year by today's date, so this test does too.
NOW: Final = datetime.now(UTC)
NEAR_NOW: Final = http_dates(
    datetime(NOW.year - 45, 1, 1), datetime(NOW.year + 45, 12, 31, 23, 59, 59)
)


@CHEAP
@given(moment=NEAR_NOW)
def test_an_rfc_850_date_means_the_year_within_fifty_years_of_now(moment: datetime) -> None:
    # §5.6.7: "Recipients of a timestamp value in rfc850-date format, which uses a two-digit
    # year, MUST interpret a timestamp that appears to be more than 50 years in the future
    # as representing the most recent year in the past that had the same last two digits."
    # Every moment here is within 45 years of now, so its two digits name its own year.
    assert _http_date(rfc850_date(moment)) == moment


@CHEAP
@given(
    first=RECENT,
    second=RECENT,
    spell=st.sampled_from([imf_fixdate, rfc850_date, asctime_date]),
    separator=st.sampled_from([",", ", ", " , "]),
    etag=OPAQUE_TAGS,
)
def test_a_list_of_dates_in_if_modified_since_or_if_unmodified_since_is_ignored(
    first: datetime,
    second: datetime,
    spell: Callable[[datetime], str],
    separator: str,
    etag: str,
) -> None:
    value = spell(first) + separator + spell(second)
    # §13.1.3: "A recipient MUST ignore the If-Modified-Since header field if the received
    # field value is not a valid HTTP-date, or if the field value has more than one member."
    older = min(first, second)
    assert evaluate(headers(If_Modified_Since=value), etag, older) is Decision.SEND
    # §13.1.4: "... MUST ignore the If-Unmodified-Since header field if the received field
    # value is not a valid HTTP-date (including when the field value appears to be a list
    # of dates)."
    newer = max(first, second) + timedelta(seconds=1)
    assert evaluate(headers(If_Unmodified_Since=value), etag, newer) is Decision.SEND


@CHEAP
@given(
    moment=RECENT,
    spell=st.sampled_from([imf_fixdate, rfc850_date, asctime_date]),
    index=st.integers(0, 40),
    digit=NON_ASCII_DIGIT,
)
def test_an_http_date_with_a_digit_of_another_script_is_no_date(
    moment: datetime, spell: Callable[[datetime], str], index: int, digit: str
) -> None:
    # §5.6.7 spells every number of an HTTP-date with DIGIT, which RFC 5234 defines as
    # %x30-39; anything else is not a valid HTTP-date, which §13.1.3-4 ignore.
    value = spell(moment)
    digit_positions = [i for i, char in enumerate(value) if char in ASCII_DIGITS]
    position = digit_positions[index % len(digit_positions)]
    value = value[:position] + digit + value[position + 1 :]
    assert _http_date(value) is None


# --- Content-Disposition: RFC 6266, RFC 8187 ----------------------------------------------

DEFAULT_FILENAME: Final = "RT0123456789abcdef0123456789abcdef.mka"
TCHAR: Final = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# What the ContentDisposition parameter refuses in a filename (gateway/media/headers.py):
# control, format, surrogate, private-use and unassigned characters (Unicode category C),
# quotes, backslashes and the two line separators.
UNSAFE_IN_FILENAME: Final = st.characters(categories=["C"]) | st.sampled_from('"\\\u2028\u2029')
SAFE_FILENAME_CHAR: Final = st.characters(
    exclude_categories=["C"], exclude_characters='"\\\u2028\u2029'
)
SAFE_FILENAMES: Final = st.text(SAFE_FILENAME_CHAR, min_size=1, max_size=40)


def _quoted_string(value: str, position: int) -> tuple[str, int]:
    """RFC 9110 §5.6.4 quoted-string starting at value[position], and where it ends."""
    assert value[position] == '"'
    out, position = [], position + 1
    while value[position] != '"':
        if value[position] == "\\":
            position += 1
        out.append(value[position])
        position += 1
    return "".join(out), position + 1


def _ext_value(value: str) -> str:
    """RFC 8187 §3.2: charset "'" [ language ] "'" value-chars, value-chars percent-encoded
    UTF-8 octets and attr-chars."""
    charset, language, chars = value.split("'", 2)
    assert charset.upper() == "UTF-8", charset
    assert all(c in string.ascii_letters + string.digits + "-" for c in language)
    attr_chars = string.ascii_letters + string.digits + "!#$&+-.^_`|~"
    octets, position = bytearray(), 0
    while position < len(chars):
        if chars[position] == "%":
            octets.append(int(chars[position + 1 : position + 3], 16))
            assert all(c in HEX for c in chars[position + 1 : position + 3])
            position += 3
        else:
            assert chars[position] in attr_chars, chars[position]
            octets.extend(chars[position].encode("ascii"))
            position += 1
    return octets.decode("utf-8")


def parse_content_disposition(value: str) -> tuple[str, dict[str, str]]:
    """RFC 6266 §4.1: disposition-type *( ";" disposition-parm ), names lower-cased."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    position = 0
    rest = rest.lstrip(" \t")
    while rest:
        name, equals, rest = rest.partition("=")
        assert equals, f"no '=' in the parameter {name!r}"
        name, rest = name.strip(" \t").lower(), rest.lstrip(" \t")
        if rest.startswith('"'):
            params[name], position = _quoted_string(rest, 0)
        else:
            position = rest.find(";") if ";" in rest else len(rest)
            params[name] = rest[:position].rstrip(" \t")
            assert params[name]
            assert all(c in TCHAR or c in "'%" for c in params[name])
        rest = rest[position:].lstrip(" \t")
        if rest:
            assert rest[0] == ";", rest
            rest = rest[1:].lstrip(" \t")
    if "filename*" in params:
        params["filename*"] = _ext_value(params["filename*"])
    return kind.strip(" \t").lower(), params


def assert_is_a_field_value(value: str) -> None:
    # RFC 9110 §5.5: visible ASCII, SP and HTAB (this header needs no obs-text).
    assert all(" " <= c <= "~" or c == "\t" for c in value), value


def named_file(value: str) -> str:
    """The filename a user agent takes from the header: filename* when it knows RFC 8187
    (RFC 6266 §4.3 prefers it), else filename."""
    kind, params = parse_content_disposition(value)
    assert kind in ("attachment", "inline")
    assert "filename" in params, value
    assert set(params) <= {"filename", "filename*"}
    if "filename*" in params:
        assert params["filename"].isascii()
        return params["filename*"]
    return params["filename"]


DISPOSITION_WORDS: Final = (
    "attachment", "inline", "ATTACHMENT", ";", "; ", "filename", "filename*", "=", '"', "'",
    "UTF-8''", "%", "%00", "%C3%A9", "\\", "\u202e", "\r\n",
)  # fmt: skip


@CHEAP
@given(requested=st.none() | hostile(*DISPOSITION_WORDS))
def test_content_disposition_answers_a_field_value_or_invalid_parameter_for_any_text(
    requested: str | None,
) -> None:
    answer = raises(lambda: content_disposition(requested, DEFAULT_FILENAME), InvalidParameter)
    if isinstance(answer, InvalidParameter):
        assert answer.name == "ContentDisposition"
    else:
        assert_is_a_field_value(answer)


@MEDIUM
@given(
    kind=st.sampled_from(["attachment", "inline"]).flatmap(any_case),
    filename=SAFE_FILENAMES,
    spaces=st.tuples(OWS, OWS, OWS, OWS),
)
def test_content_disposition_with_a_quoted_safe_filename_names_exactly_that_file(
    kind: str, filename: str, spaces: tuple[str, str, str, str]
) -> None:
    before_semicolon, after_semicolon, before_equals, after_equals = spaces
    requested = (
        f'{kind}{before_semicolon};{after_semicolon}filename{before_equals}={after_equals}"'
        f'{filename}"'
    )
    answer = content_disposition(requested, DEFAULT_FILENAME)
    assert_is_a_field_value(answer)
    assert parse_content_disposition(answer)[0] == kind.lower()
    assert named_file(answer) == filename


@CHEAP
@given(
    kind=st.sampled_from(["attachment", "inline"]).flatmap(any_case),
    filename=st.text(TCHAR, min_size=1, max_size=40),
)
def test_content_disposition_with_a_token_filename_names_exactly_that_file(
    kind: str, filename: str
) -> None:
    answer = content_disposition(f"{kind}; filename={filename}", DEFAULT_FILENAME)
    assert_is_a_field_value(answer)
    assert named_file(answer) == filename


@CHEAP
@given(filename=SAFE_FILENAMES, index=st.integers(0, 40), unsafe=UNSAFE_IN_FILENAME)
def test_content_disposition_refuses_filenames_with_quotes_controls_or_format_characters(
    filename: str, index: int, unsafe: str
) -> None:
    requested = f'attachment; filename="{insert(filename, index, unsafe)}"'
    with pytest.raises(InvalidParameter):
        content_disposition(requested, DEFAULT_FILENAME)


@CHEAP
@given(kind=any_case_or_lookalike("attachment") | any_case_or_lookalike("inline") | ANY_TEXT)
def test_content_disposition_type_is_attachment_or_inline_in_any_ascii_case(kind: str) -> None:
    # RFC 6266 §4.2: "Disposition types ... are case-insensitive." (ASCII case: a token.)
    known = is_ascii_word(kind.strip(" \t"), "attachment") or is_ascii_word(
        kind.strip(" \t"), "inline"
    )
    # Around the type only OWS (SP, HTAB); what str.strip() strips besides is no concern here.
    assume(";" not in kind and kind.strip() == kind.strip(" \t"))
    answer = raises(lambda: content_disposition(kind, DEFAULT_FILENAME), InvalidParameter)
    if known:
        assert answer == kind.strip(" \t").lower()
    else:
        assert isinstance(answer, InvalidParameter)


@CHEAP
@given(value=st.none() | hostile(*DISPOSITION_WORDS), ttl=st.none() | st.integers(1, 3600))
def test_media_link_keeps_the_content_disposition_as_asked(
    value: str | None, ttl: int | None
) -> None:
    pairs = [] if value is None else [("ContentDisposition", value)]
    pairs += [] if ttl is None else [("Ttl", str(ttl))]
    link = parse_media_link(query(*pairs))
    assert link.content_disposition == value
    assert link.ttl == (600 if ttl is None else ttl)


# --- Query parameters of the public API ---------------------------------------------------

LIST_NAMES: Final = (
    "PageSize", "Page", "PageToken", "Status", "MediaType", "SourceSid", "GroupingSid",
    "DateCreatedAfter", "DateCreatedBefore",
)  # fmt: skip


def cursor_text(forward: bool, micros: int, sid: str) -> str:
    """The cursor grammar gateway/api/page_tokens.py documents: direction, microseconds since
    the epoch, ":" and the recording SID."""
    return f"{'n' if forward else 'p'}{micros}:{sid}"


def page_token(text: str) -> str:
    """RFC 4648 §5 base64url, without padding, of the text's UTF-8 (its lone surrogates
    encoded as such, which no UTF-8 decoder takes back)."""
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def json_arrays() -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(ANY_TEXT | sids_of("RM") | sids_of("PA"), max_size=4).map(json.dumps),
        st.lists(JSON_VALUES, max_size=3).map(lambda values: json.dumps(values)),
        st.integers(1, 20_000).map(nested),
        st.integers(1, 20_000).map(lambda depth: "[" * depth),
        HUGE_DIGITS.map(lambda digits: f"[{digits}]"),
        assembled(st.sampled_from(["[", "]", ",", '"', "\\ud800", "NaN", "1e999"]), ANY_TEXT),
    )


RECORDING_SIDS: Final = sids_of("RT")
MICROS: Final = st.integers(-(10**20), 10**20) | st.integers(
    -62_135_596_800_000_000, 253_402_300_799_999_999
)
TOKENS: Final = st.one_of(
    ANY_TEXT,
    st.binary(max_size=80).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
    st.binary(max_size=80).map(lambda raw: base64.b64encode(raw).decode().rstrip("=")),
    st.builds(cursor_text, st.booleans(), MICROS, RECORDING_SIDS).map(page_token),
    st.builds(
        lambda direction, digits, sid: page_token(f"{direction}{digits}:{sid}"),
        st.sampled_from(["n", "p", "x", "", "n-", "N"]),
        WEIRD_NUMBER,
        RECORDING_SIDS | ANY_TEXT,
    ),
    assembled(st.sampled_from(["=", "-", "_", "+", "/", "==", "\n"]), ANY_TEXT),
)
ISO_DATES: Final = assembled(
    st.sampled_from(["2024", "-", "05", "01", "T", "12", ":", "00", ".", "Z", "+", "24", "99"]),
    WEIRD_NUMBER,
    ANY_TEXT,
)
LIST_VALUES: Final = st.one_of(
    hostile("["),
    json_arrays(),
    TOKENS,
    ISO_DATES,
    st.sampled_from([*Status, *MediaType]).map(str).flatmap(any_case_or_lookalike),
    sids_of("RM") | sids_of("MT") | RECORDING_SIDS,
)


@COSTLY
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(LIST_NAMES) | ANY_TEXT, LIST_VALUES),
        max_size=6,
    ),
    room=st.none() | sids_of("RM"),
)
def test_list_parser_answers_a_query_or_invalid_parameter_for_any_parameters(
    pairs: list[tuple[str, str]], room: str | None
) -> None:
    answer = raises(lambda: parse_list(query(*pairs), room), InvalidParameter)
    if isinstance(answer, InvalidParameter):
        assert answer.name in LIST_NAMES
    else:
        assert 1 <= answer.page_size <= 1000
        assert answer.where.room_sid == room


def digit_spellings(low: int, high: int) -> st.SearchStrategy[str]:
    """ASCII digit strings from `low` to far past `high`, some with leading zeros."""
    numbers = st.one_of(
        st.integers(low, high).map(str),
        st.integers(high - 2, high + 2).map(str),
        st.integers(0, 10**30).map(str),
        HUGE_DIGITS,
    )
    return st.builds(lambda zeros, digits: zeros + digits, st.text("0", max_size=4), numbers)


def number(digits: str, beyond: int) -> int:
    """The value of ASCII `digits`, or `beyond` for any value greater than it."""
    return _at_most(digits, beyond)


VALID_TOKEN: Final = page_token(cursor_text(True, 1_714_564_800_000_000, "RT" + "0" * 32))


@CHEAP
@given(raw=digit_spellings(0, 1000))
def test_page_size_of_ascii_digits_is_that_number_above_1000_is_1000_and_0_is_refused(
    raw: str,
) -> None:
    value = number(raw, 1001)
    answer = raises(lambda: parse_list(query(("PageSize", raw))), InvalidParameter)
    if value == 0:
        assert isinstance(answer, InvalidParameter)
        assert answer.name == "PageSize"
    else:
        assert not isinstance(answer, InvalidParameter)
        assert answer.page_size == min(value, 1000)


@CHEAP
@given(raw=digit_spellings(0, 2**31))
def test_page_of_ascii_digits_is_that_number_up_to_2_to_the_31(raw: str) -> None:
    value = number(raw, 2**31 + 1)
    answer = raises(
        lambda: parse_list(query(("Page", raw), ("PageToken", VALID_TOKEN))), InvalidParameter
    )
    if value > 2**31:
        assert isinstance(answer, InvalidParameter)
        assert answer.name == "Page"
    else:
        assert not isinstance(answer, InvalidParameter)
        assert answer.page == value


@CHEAP
@given(raw=digit_spellings(1, 3600))
def test_ttl_of_ascii_digits_is_that_number_from_1_to_3600(raw: str) -> None:
    value = number(raw, 3601)
    answer = raises(lambda: parse_media_link(query(("Ttl", raw))), InvalidParameter)
    if 1 <= value <= 3600:
        assert not isinstance(answer, InvalidParameter)
        assert answer.ttl == value
    else:
        assert isinstance(answer, InvalidParameter)
        assert answer.name == "Ttl"


NOT_ASCII_DIGITS: Final = st.one_of(
    st.builds(
        insert,
        st.text(ASCII_DIGITS, max_size=5),
        st.integers(0, 5),
        NON_ASCII_DIGIT | st.sampled_from(" \t\n+-_.,e\x00\u200b\ufeff") | ANY_CHAR,
    ).filter(lambda raw: not all(c in ASCII_DIGITS for c in raw)),
    st.just(""),
)


@CHEAP
@given(raw=NOT_ASCII_DIGITS, name=st.sampled_from(["PageSize", "Page", "Ttl"]))
def test_numbers_spelled_with_anything_but_ascii_digits_are_refused(raw: str, name: str) -> None:
    # RFC 5234 DIGIT is %x30-39; Twilio's integers are spelled with those only.
    parse = parse_media_link if name == "Ttl" else parse_list
    with pytest.raises(InvalidParameter) as refused:
        parse(query((name, raw), ("PageToken", VALID_TOKEN)))
    assert refused.value.name == name


GROUP_SIDS: Final = sids_of("RM") | sids_of("PA")


@CHEAP
@given(
    values=st.lists(GROUP_SIDS, min_size=1, max_size=6).flatmap(
        lambda values: st.lists(st.sampled_from(values), min_size=1, max_size=8)
    ),
    separators=st.tuples(st.sampled_from([",", ", ", " , "]), st.sampled_from(["", " "])),
)
def test_grouping_sids_repeated_or_in_one_json_array_give_the_same_tuple(
    values: list[str], separators: tuple[str, str]
) -> None:
    item_separator, padding = separators
    # Each SID once, in the order first given.
    expected: list[str] = []
    for sid in values:
        if sid not in expected:
            expected.append(sid)
    repeated = parse_list(query(*(("GroupingSid", sid) for sid in values)))
    array = json.dumps(values, separators=(item_separator, ":"))
    as_json = parse_list(query(("GroupingSid", array[0] + padding + array[1:])))
    assert repeated.where.grouping_sids == tuple(expected)
    assert as_json.where.grouping_sids == tuple(expected)


OFFSETS: Final = st.integers(-(24 * 60 - 1), 24 * 60 - 1)  # minutes east of UTC


def iso_offset(minutes: int, style: str) -> str:
    """ISO 8601 time offset: Z, ±hh:mm, ±hhmm or ±hh; or none at all."""
    if style in ("Z", ""):
        return style
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    if style == "hh":
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}{':' if style == 'hh:mm' else ''}{rest:02d}"


@st.composite
def iso_date_times(draw: st.DrawFn) -> tuple[str, datetime]:
    """(ISO 8601 extended date-time, the instant it names in UTC). Without an offset the
    time is UTC, as Twilio reads it."""
    local = draw(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
    style = draw(st.sampled_from(["Z", "hh:mm", "hhmm", "hh", ""]))
    minutes = 0 if style in ("Z", "") else draw(OFFSETS)
    if style == "hh":
        minutes = minutes // 60 * 60 if minutes >= 0 else -(-minutes // 60 * 60)
    precision = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    if precision == "milliseconds":
        local = local.replace(microsecond=local.microsecond // 1000 * 1000)
    if precision == "seconds":
        local = local.replace(microsecond=0)
    fraction = {"seconds": "", "milliseconds": f".{local.microsecond // 1000:03d}"}.get(
        precision, f".{local.microsecond:06d}"
    )
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
        f"{draw(st.sampled_from(['T', 't', ' ']))}"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}{fraction}"
        f"{iso_offset(minutes, style)}"
    )
    # Local time = UTC + offset, so UTC = local time - offset.
    instant = local.replace(tzinfo=UTC) - timedelta(minutes=minutes)
    return text, instant


@CHEAP
@given(case=iso_date_times(), name=st.sampled_from(["DateCreatedAfter", "DateCreatedBefore"]))
def test_a_date_created_filter_with_any_offset_is_that_instant_in_utc(
    case: tuple[str, datetime], name: str
) -> None:
    text, instant = case
    where = parse_list(query((name, text))).where
    moment = where.created_after if name == "DateCreatedAfter" else where.created_before
    assert moment == instant
    assert moment is not None
    assert moment.utcoffset() == timedelta()


FIXED_OFFSETS: Final = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59, seconds=59),
    max_value=timedelta(hours=23, minutes=59, seconds=59),
).map(timezone)


@MEDIUM
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=FIXED_OFFSETS
    ),
    sid=RECORDING_SIDS,
    forward=st.booleans(),
)
def test_a_page_token_round_trips_any_instant_and_recording_sid(
    moment: datetime, sid: str, forward: bool
) -> None:
    cursor = Cursor(moment, sid, forward=forward)
    token = encode_cursor(cursor)
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")
    decoded = decode_cursor(token)
    assert decoded == cursor
    assert decoded.date_created == moment  # the same instant, whatever the offset was
    assert parse_list(query(("PageToken", token))).cursor == cursor


@CHEAP
@given(
    micros=st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999),
    sid=RECORDING_SIDS,
    forward=st.booleans(),
)
def test_a_page_token_in_the_cursor_grammar_names_that_instant_and_sid(
    micros: int, sid: str, forward: bool
) -> None:
    cursor = decode_cursor(page_token(cursor_text(forward, micros, sid)))
    assert cursor.date_created == EPOCH + timedelta(microseconds=micros)
    assert (cursor.sid, cursor.forward) == (sid, forward)


@CHEAP
@given(token=TOKENS)
def test_a_page_token_decodes_to_a_cursor_or_is_refused_for_any_text(token: str) -> None:
    answer = raises(lambda: decode_cursor(token), InvalidParameter)
    if isinstance(answer, InvalidParameter):
        assert answer.name == "PageToken"
    else:
        assert sids.is_sid(answer.sid, "RT")
        assert answer.date_created.utcoffset() == timedelta()
    listed = raises(lambda: parse_list(query(("PageToken", token))), InvalidParameter)
    if isinstance(listed, InvalidParameter):
        assert listed.name == "PageToken"
    else:
        assert listed.page_token == token


# --- SIDs ---------------------------------------------------------------------------------

PREFIXES: Final = st.text(string.ascii_letters, min_size=2, max_size=2)


def is_a_sid(value: str) -> bool:
    """Twilio's SID pattern: two ASCII letters and 32 hexadecimal digits."""
    return (
        len(value) == 34
        and all(c in string.ascii_letters for c in value[:2])
        and all(c in HEX for c in value[2:])
    )


@st.composite
def near_sids(draw: st.DrawFn) -> str:
    """A SID, or a SID with one character changed, added or removed."""
    sid = draw(PREFIXES.flatmap(sids_of))
    index = draw(st.integers(0, 34))
    change = draw(st.sampled_from(["none", "replace", "insert", "delete", "newline"]))
    char = draw(ANY_CHAR | NON_ASCII_DIGIT | st.sampled_from("gGzZ\uff21\uff41\u0430"))
    if change == "replace":
        return sid[: index % 34] + char + sid[index % 34 + 1 :]
    if change == "insert":
        return insert(sid, index, char)
    if change == "delete":
        return sid[: index % 34] + sid[index % 34 + 1 :]
    if change == "newline":
        return sid + "\n"
    return sid


@CHEAP
@given(prefix=PREFIXES, other=PREFIXES)
def test_a_minted_sid_is_a_sid_of_its_prefix_and_of_no_other(prefix: str, other: str) -> None:
    sid = sids.mint(prefix)
    assert sid[:2] == prefix
    assert len(sid) == 34
    assert all(c in "0123456789abcdef" for c in sid[2:])
    assert sids.is_sid(sid)
    assert sids.is_sid(sid, prefix)
    assert sids.is_sid(sid, other) is (other == prefix)


@MEDIUM
@given(value=near_sids() | ANY_TEXT, prefix=st.none() | PREFIXES)
def test_is_sid_holds_exactly_for_two_ascii_letters_and_32_hex_digits(
    value: str, prefix: str | None
) -> None:
    assert sids.is_sid(value) is is_a_sid(value)
    for kind in (value[:2], prefix):
        if kind is not None:
            assert sids.is_sid(value, kind) is (is_a_sid(value) and value[:2] == kind)


# --- Host: RFC 9110 §7.2, RFC 3986 §3.2 ---------------------------------------------------

UNRESERVED: Final = string.ascii_letters + string.digits + "-._~"
SUB_DELIMS: Final = "!$&'()*+,;="
REG_NAMES: Final = st.lists(
    st.sampled_from(UNRESERVED + SUB_DELIMS)
    | st.tuples(st.sampled_from(HEX), st.sampled_from(HEX)).map(lambda pair: "%" + "".join(pair)),
    min_size=1,
    max_size=20,
).map("".join)
IPV4: Final = st.ip_addresses(v=4).map(str)


@st.composite
def ipv6_literals(draw: st.DrawFn) -> str:
    address = draw(st.ip_addresses(v=6))
    spelling = draw(st.sampled_from([address.compressed, address.exploded]))
    return f"[{spelling.upper() if draw(st.booleans()) else spelling}]"


HOSTS: Final = st.one_of(REG_NAMES, IPV4, ipv6_literals())
PORTS: Final = st.none() | st.just("") | st.integers(1, 65535).map(str)


def host_value(host: str, port: str | None) -> str:
    return host if port is None else f"{host}:{port}"


@CHEAP
@given(value=hostile("[", "]", ":", "@", "%", "::1", "localhost", "%zz", "80", "65536"))
def test_host_parser_answers_host_and_port_or_invalid_parameter_for_any_text(value: str) -> None:
    answer = raises(lambda: parse_host(value), InvalidParameter)
    if isinstance(answer, InvalidParameter):
        assert answer.name == "Host"
    else:
        host, port = answer
        assert host
        assert host == host.lower()
        assert port == "" or 1 <= int(port) <= 65535


@MEDIUM
@given(host=HOSTS, port=PORTS)
def test_a_valid_host_and_port_parse_to_the_host_in_lower_case_and_the_port(
    host: str, port: str | None
) -> None:
    # RFC 3986 §3.2.2: hosts are case-insensitive; §3.2.3: an empty port means none.
    assert parse_host(host_value(host, port)) == (host.lower(), port or "")


@MEDIUM
@given(
    host=HOSTS,
    port=PORTS,
    index=st.integers(0, 60),
    intruder=st.sampled_from(["@", "/", "#", "?", '"', " ", "\t", "\\", "<", "[", "]"]),
)
def test_host_refuses_userinfo_paths_fragments_queries_quotes_and_spaces(
    host: str, port: str | None, index: int, intruder: str
) -> None:
    value = insert(host_value(host, port), index, intruder)
    # None of these belongs in a reg-name, an IP literal or a port, wherever it lands.
    with pytest.raises(InvalidParameter):
        parse_host(value)


@MEDIUM
@given(
    host=HOSTS,
    userinfo=st.text(UNRESERVED + SUB_DELIMS + ":", max_size=10),
    port=PORTS,
)
def test_host_with_userinfo_is_refused(host: str, userinfo: str, port: str | None) -> None:
    with pytest.raises(InvalidParameter):
        parse_host(f"{userinfo}@{host_value(host, port)}")


@MEDIUM
@given(
    host=HOSTS,
    port=st.one_of(
        st.sampled_from(["0", "00", "00000", "-1", "+80", "80 ", " 80", "8_0", "0x50"]),
        st.integers(65536, 10**30).map(str),
        HUGE_DIGITS,
        st.builds(insert, st.integers(1, 65535).map(str), st.integers(0, 5), NON_ASCII_DIGIT),
    ),
)
def test_host_refuses_ports_outside_1_to_65535(host: str, port: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_host(f"{host}:{port}")


LABELS: Final = st.lists(st.sampled_from(["a", "b", "ab", "example", "com", "x-y"]), max_size=4)


def allowed_by(host: str, pattern: str) -> bool:
    """GATEWAY_ALLOWED_HOSTS: "*" allows any host; "*.domain" every name under the domain
    (whole labels); ".domain" the domain too; anything else exactly that host."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        domain, labels = pattern[2:].split("."), host.split(".")
        return labels[len(labels) - len(domain) :] == domain and len(labels) > len(domain)
    if pattern.startswith("."):
        domain, labels = pattern[1:].split("."), host.split(".")
        return labels[len(labels) - len(domain) :] == domain and len(labels) >= len(domain)
    return host == pattern


@MEDIUM
@given(
    host=LABELS.map(".".join),
    patterns=st.lists(
        st.one_of(
            LABELS.map(".".join),
            LABELS.map(lambda labels: "." + ".".join(labels)),
            LABELS.map(lambda labels: "*." + ".".join(labels)),
            st.just("*"),
            ANY_TEXT,
        ),
        max_size=4,
    ),
)
def test_listed_takes_exact_hosts_subdomains_domains_and_star(
    host: str, patterns: list[str]
) -> None:
    expected = any(allowed_by(host, pattern) for pattern in patterns)
    assert listed(host, tuple(patterns)) is expected


# --- Authorization: RFC 7617 Basic, RFC 6750 Bearer ---------------------------------------

TOKEN68_CHARS: Final = string.ascii_letters + string.digits + "-._~+/"
TOKEN68: Final = st.builds(
    lambda body, padding: body + "=" * padding,
    st.text(TOKEN68_CHARS, min_size=1, max_size=60),
    st.integers(0, 2),
)
AUTH_WORDS: Final = ("Basic", "basic", "Bearer", "BEARER", " ", "  ", ":", "=", "==", "Og==")


def authorization_headers() -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        hostile(*AUTH_WORDS),
        st.builds(
            "{}{}{}".format,
            st.sampled_from(["Basic", "Bearer", "basic", "BEARER"])
            | any_case_or_lookalike("basic")
            | any_case_or_lookalike("bearer"),
            st.sampled_from([" ", "  ", "\t", ""]),
            st.one_of(
                ANY_TEXT,
                TOKEN68,
                st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
                st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
            ),
        ),
    )


@CHEAP
@given(header=authorization_headers())
def test_basic_parser_answers_credentials_or_unauthenticated_for_any_header(
    header: str | None,
) -> None:
    answer = raises(lambda: parse_basic(header), Unauthenticated)
    if not isinstance(answer, Unauthenticated):
        user, password = answer
        assert isinstance(user, str)
        assert isinstance(password, str)


@CHEAP
@given(
    scheme=any_case("basic"),
    spaces=st.text(" ", min_size=1, max_size=3),
    user=st.binary(max_size=40).map(lambda raw: raw.replace(b":", b"")),
    password=st.binary(max_size=40),
)
def test_basic_credentials_are_exactly_the_user_and_password_that_were_encoded(
    scheme: str, spaces: str, user: bytes, password: bytes
) -> None:
    # RFC 7617 §2: credentials = "Basic" 1*SP base64(user-id ":" password), user-id without
    # a colon; the password may hold any octets, read here as Latin-1 (§2.1 leaves the
    # charset to the server).
    header = f"{scheme}{spaces}{base64.b64encode(user + b':' + password).decode()}"
    assert parse_basic(header) == (user.decode("latin-1"), password.decode("latin-1"))


@CHEAP
@given(scheme=any_case_or_lookalike("basic") | any_case_or_lookalike("bearer") | ANY_TEXT)
def test_credentials_in_another_scheme_are_refused(scheme: str) -> None:
    # RFC 9110 §11.1: auth-scheme is a case-insensitive token, so ASCII case only.
    assume(" " not in scheme)  # a space ends the scheme
    encoded = base64.b64encode(b"AC" + b"0" * 32 + b":secret").decode()
    if not is_ascii_word(scheme, "basic"):
        with pytest.raises(Unauthenticated):
            parse_basic(f"{scheme} {encoded}")
    if not is_ascii_word(scheme, "bearer"):
        with pytest.raises(Unauthenticated):
            parse_bearer(f"{scheme} {encoded}")


@CHEAP
@given(header=authorization_headers())
def test_bearer_parser_answers_bytes_or_unauthenticated_for_any_header(
    header: str | None,
) -> None:
    answer = raises(lambda: parse_bearer(header), Unauthenticated)
    if isinstance(answer, Unauthenticated):
        assert answer.headers == {"WWW-Authenticate": "Bearer"}
    else:
        assert isinstance(answer, bytes)


@CHEAP
@given(scheme=any_case("bearer"), spaces=st.text(" ", min_size=1, max_size=3), token=TOKEN68)
def test_a_bearer_token_is_returned_as_its_bytes(scheme: str, spaces: str, token: str) -> None:
    # RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.
    assert parse_bearer(f"{scheme}{spaces}{token}") == token.encode("ascii")


@CHEAP
@given(scheme=any_case("bearer"), spaces=st.text(" ", max_size=4))
def test_a_bearer_header_without_a_token_is_refused(scheme: str, spaces: str) -> None:
    # RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    with pytest.raises(Unauthenticated):
        parse_bearer(scheme + spaces)


@CHEAP
@given(
    token=st.binary(min_size=1, max_size=40).filter(
        lambda raw: not any(byte <= 0x20 or byte == 0x7F for byte in raw)
    )
)
def test_a_bearer_token_is_the_bytes_the_client_sent(token: bytes) -> None:
    # parse_bearer's docstring: "as the bytes the client sent"; aiohttp decodes header
    # values as UTF-8 with surrogate escapes, as gateway/api/credentials.py says.
    header = b"Bearer " + token
    assert parse_bearer(header.decode("utf-8", "surrogateescape")) == token


# --- The recorder's declaration -----------------------------------------------------------


def text_without_nul(max_size: int) -> st.SearchStrategy[str]:
    """Text a database keeps: no NUL, no lone surrogates."""
    return st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=max_size
    )


@st.composite
def callback_urls(draw: st.DrawFn) -> str:
    """RFC 3986 http(s) URIs: scheme "://" [ userinfo "@" ] host [ ":" port ] path-abempty
    [ "?" query ] [ "#" fragment ]."""
    scheme = draw(st.sampled_from(["http", "https"]).flatmap(any_case))
    userinfo = draw(st.none() | st.text(UNRESERVED + SUB_DELIMS + ":", max_size=10))
    host = draw(HOSTS)
    port = draw(PORTS)
    pchar = UNRESERVED + SUB_DELIMS + ":@"
    segments = draw(st.lists(st.text(pchar, max_size=8), max_size=3))
    path = "".join("/" + segment for segment in segments)
    marker = draw(st.sampled_from(["", "?", "#"]))
    rest = marker + draw(st.text(pchar + "/?", max_size=10)) if marker else ""
    authority = ("" if userinfo is None else userinfo + "@") + host_value(host, port)
    return f"{scheme}://{authority}{path}{rest}"


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[tuple[bool, T]]:
    """(whether the field is sent at all, its value)."""
    return st.tuples(st.booleans(), strategy)


@st.composite
def declarations(draw: st.DrawFn) -> tuple[dict[str, object], Declaration]:
    """A valid body and the Declaration it states."""
    account_sid, source_sid = draw(sids_of("AC")), draw(sids_of("MT"))
    media_type = draw(st.sampled_from(list(MediaType)))
    codec = draw(st.sampled_from(list(Codec)))
    container = draw(st.sampled_from(list(Container)))
    room_sid = draw(st.none() | sids_of("RM"))
    participant_sid = draw(st.none() | sids_of("PA"))
    send_groups = draw(st.booleans())
    send_track, track_name = draw(optional(st.none() | text_without_nul(128)))
    send_offset, offset = draw(optional(st.integers(0, 2**63 - 1)))
    send_callback, callback = draw(optional(st.none() | callback_urls()))
    send_method, method = draw(optional(st.none() | st.sampled_from(["GET", "POST"])))

    body: dict[str, object] = {
        "account_sid": account_sid,
        "type": media_type.value,
        "codec": codec.value,
        "container_format": container.value,
        "source_sid": source_sid,
    }
    groups = {"room_sid": room_sid, "participant_sid": participant_sid}
    groups = {name: sid for name, sid in groups.items() if sid is not None}
    if groups or send_groups:
        body["grouping_sids"] = groups
    for name, send, value in (
        ("track_name", send_track, track_name),
        ("offset", send_offset, offset),
        ("status_callback", send_callback, callback),
        ("status_callback_method", send_method, method),
    ):
        if send:
            body[name] = value
    callback = callback if send_callback else None
    method = method if send_method else None
    expected = Declaration(
        account_sid=account_sid,
        type=media_type,
        codec=codec,
        container_format=container,
        source_sid=source_sid,
        room_sid=room_sid,
        participant_sid=participant_sid,
        track_name=track_name if send_track else None,
        offset=offset if send_offset else 0,
        status_callback=callback,
        # Twilio's default method is POST; without a callback there is none.
        status_callback_method=None if callback is None else (method or "POST"),
    )
    return body, expected


@COSTLY
@given(
    body=st.one_of(
        JSON_VALUES,
        st.dictionaries(st.sampled_from(BODY_FIELDS) | ANY_TEXT, JSON_VALUES, max_size=8),
        st.builds(
            lambda case, changes: {**case[0], **changes},
            declarations(),
            st.dictionaries(st.sampled_from(BODY_FIELDS), JSON_VALUES, min_size=1, max_size=3),
        ),
        st.builds(
            lambda case, groups: {**case[0], "grouping_sids": groups},
            declarations(),
            st.dictionaries(st.sampled_from(["room_sid", "participant_sid"]), JSON_VALUES),
        ),
    )
)
def test_declaration_parser_answers_a_declaration_or_invalid_parameter_for_any_json(
    body: object,
) -> None:
    answer = raises(lambda: parse_declaration(body), InvalidParameter)
    if isinstance(answer, InvalidParameter):
        assert answer.name in (*BODY_FIELDS, "body", "room_sid", "participant_sid")
    else:
        assert isinstance(answer, Declaration)


@COSTLY
@given(case=declarations())
def test_a_valid_declaration_is_read_field_for_field(
    case: tuple[dict[str, object], Declaration],
) -> None:
    body, expected = case
    assert parse_declaration(body) == expected


MINIMAL_BODY: Final = {
    "account_sid": "AC" + "0" * 32,
    "type": "audio",
    "codec": "OPUS",
    "container_format": "mka",
    "source_sid": "MT" + "0" * 32,
}


@COSTLY
@given(
    url=callback_urls(),
    index=st.integers(0, 80),
    control=st.characters(max_codepoint=0x1F) | st.just("\x7f"),
)
def test_a_status_callback_with_a_control_character_is_refused(
    url: str, index: int, control: str
) -> None:
    # RFC 3986 §2: a URI is made of unreserved, reserved and percent-encoded characters;
    # no control character (nor NUL, which the databases refuse) is any of them.
    body = {**MINIMAL_BODY, "status_callback": insert(url, index, control)}
    with pytest.raises(InvalidParameter) as refused:
        parse_declaration(body)
    assert refused.value.name == "status_callback"
