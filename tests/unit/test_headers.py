"""Media response headers: Content-Disposition (RFC 6266, 8187), Content-Type, Cache-Control."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from gateway.errors import InvalidParameter
from gateway.media.headers import CONTENT_TYPES, cache_control, content_disposition
from gateway.models import Codec

DEFAULT = "RT0123456789abcdef0123456789abcdef.mka"

# RFC 6266 §4.1: disposition-parm = ";" name "=" ( token / quoted-string ), with OWS.
PARAM = re.compile(r';[ \t]*([^=; \t]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^; \t]*)[ \t]*')
# RFC 8187 §3.2.1: value-chars = *( pct-encoded / attr-char )
EXT_VALUE_CHARS = re.compile(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*")


def parse_disposition(value: str) -> tuple[str, dict[str, str]]:
    """The disposition type and its parameters, names lower-cased, quotes removed."""
    kind, _, rest = value.partition(";")
    rest = ";" + rest if rest else ""
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = PARAM.match(rest, position)
        assert match is not None, f"not a disposition-parm at {rest[position:]!r}"
        raw = match[2]
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[match[1].lower()] = raw
        position = match.end()
    return kind.strip().lower(), params


def test_content_disposition_defaults_to_attachment_with_the_default_filename() -> None:
    assert content_disposition(None, DEFAULT) == f'attachment; filename="{DEFAULT}"'


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("inline", "inline"),
        ("attachment", "attachment"),
        ('attachment; filename="a b.mka"', 'attachment; filename="a b.mka"'),
        ('inline; filename="clip.mka"', 'inline; filename="clip.mka"'),
        # RFC 6266 §4.1: the value may be a token instead of a quoted-string.
        ("attachment; filename=a.mka", 'attachment; filename="a.mka"'),
        ('attachment;filename="a.mka"', 'attachment; filename="a.mka"'),
        ('attachment; filename = "a.mka"', 'attachment; filename="a.mka"'),
        ('attachment; filename="a;b.mka"', 'attachment; filename="a;b.mka"'),
    ],
)
def test_content_disposition_as_requested(requested: str, expected: str) -> None:
    assert content_disposition(requested, DEFAULT) == expected


@pytest.mark.parametrize(
    ("requested", "kind", "filename"),
    [
        ("INLINE", "inline", None),
        ("Inline", "inline", None),
        ('ATTACHMENT; filename="a.mka"', "attachment", "a.mka"),
        ('Attachment; FILENAME="a.mka"', "attachment", "a.mka"),
        ('attachment; FileName="a.mka"', "attachment", "a.mka"),
    ],
)
def test_content_disposition_type_and_parameter_names_are_case_insensitive(
    requested: str, kind: str, filename: str | None
) -> None:
    # RFC 6266 §4.1: "The type is case-insensitive", and so are parameter names.
    got_kind, params = parse_disposition(content_disposition(requested, DEFAULT))
    assert got_kind == kind
    assert params.get("filename") == filename


@pytest.mark.parametrize(
    "filename",
    [
        "R\u00e9union.mka",
        "\u4f1a\u8b70 2024.mka",
        "\U0001f3a5 clip.mkv",
        "100% \u00e9t\u00e9.mka",
        "na\u00efve; name.mka",
        "\u00e9",
    ],
)
def test_content_disposition_non_ascii_filename_has_ascii_fallback_and_utf8_form(
    filename: str,
) -> None:
    value = content_disposition(f'attachment; filename="{filename}"', DEFAULT)
    assert value.isascii()
    kind, params = parse_disposition(value)
    assert kind == "attachment"
    # RFC 6266 §4.3 and appendix D: `filename` first, as the fallback for user agents
    # that do not know RFC 8187, then `filename*`.
    assert list(params) == ["filename", "filename*"]
    assert params["filename"]
    assert not set(params["filename"]) & set('"\\')
    # RFC 8187 §3.2.1: ext-value = charset "'" [ language ] "'" value-chars
    charset, language, encoded = params["filename*"].split("'", 2)
    assert charset.upper() == "UTF-8"
    assert language == ""
    assert EXT_VALUE_CHARS.fullmatch(encoded)
    assert unquote(encoded, encoding="utf-8", errors="strict") == filename


@pytest.mark.parametrize(
    "requested",
    [
        # Header injection and quoted-string escapes (RFC 9110 §5.5, §5.6.4).
        'attachment; filename="a\rb.mka"',
        'attachment; filename="a\nb.mka"',
        'attachment; filename="a.mka\r\nSet-Cookie: x=1"',
        "attachment; filename=a\r\nSet-Cookie: x=1",
        'attachment; filename="a"b.mka"',
        'attachment; filename=a"b.mka',
        'attachment; filename="a\\b.mka"',
        'attachment; filename="a\\"b.mka"',
        'attachment; filename="',
        # Other control characters: C0, DEL.
        'attachment; filename="a\x00b.mka"',
        'attachment; filename="a\tb.mka"',
        'attachment; filename="a\x1bb.mka"',
        'attachment; filename="a\x7fb.mka"',
        pytest.param(
            'attachment; filename="a\x85b.mka"',
            id="c1-control",
        ),
        # Empty filename.
        'attachment; filename=""',
        "attachment; filename=",
        "attachment; filename",
        # Unknown disposition types (RFC 6266 §4.2 allows them; the gateway does not).
        "form-data",
        'form-data; filename="a.mka"',
        "",
        "   ",
        "attachments",
        "; filename=a.mka",
        # Unknown parameters.
        "attachment; size=3",
        'inline; creation-date="Wed, 12 Feb 1997 16:29:51 -0500"',
        'attachment; filename="a.mka"; size=3',
        pytest.param(
            "attachment; filename=a.mka; size=3",
            id="unquoted-filename-then-unknown-parameter",
        ),
    ],
)
def test_content_disposition_refuses_unsafe_or_unknown_values(requested: str) -> None:
    with pytest.raises(InvalidParameter) as excinfo:
        content_disposition(requested, DEFAULT)
    assert excinfo.value.name == "ContentDisposition"


def test_content_types_follow_the_codec_and_container() -> None:
    # VP8 and OPUS tracks are WebM (video/audio); H264 and PCMU tracks are Matroska.
    assert CONTENT_TYPES == {
        Codec.VP8: "video/webm",
        Codec.OPUS: "audio/webm",
        Codec.PCMU: "audio/x-matroska",
        Codec.H264: "video/x-matroska",
    }


def test_content_types_cover_every_codec_of_the_schema() -> None:
    assert set(CONTENT_TYPES) == set(Codec)


def cache_directives(value: str) -> set[str]:
    return {directive.strip().lower() for directive in value.split(",")}


@pytest.mark.parametrize(
    ("seconds_left", "max_age"),
    [(600, "600"), (3600, "3600"), (1, "1"), (0, "0"), (-1, "0"), (-3600, "0")],
)
def test_cache_control_is_private_and_never_outlives_the_link(
    seconds_left: int, max_age: str
) -> None:
    # RFC 9111 §5.2.2.7: `private` keeps shared caches from storing one user's grant;
    # §5.2.2.1: max-age is a non-negative delta-seconds.
    assert cache_directives(cache_control(seconds_left)) == {"private", f"max-age={max_age}"}
