"""`GET /openapi.json`: the API this service serves, for client generators and fuzzers.

The Recordings paths are Twilio's own, copied unchanged from the official Video v1
description (`twilio_recordings_v1.json`, without its per-path `servers`, so that
clients call this service); what that description does not model is added here: the
`/Media` redirect and its 302 body, the signed link with its ranges and errors, the
health endpoints, the recorder API and this document itself.
"""

from __future__ import annotations

import functools
import json
import pkgutil
from typing import Any, Final

from aiohttp import web

from gateway import __version__
from gateway.api.query import DEFAULT_TTL, MAX_TTL

_ERROR: Final = {"$ref": "#/components/schemas/gateway.error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def _sid(name: str, prefix: str, description: str) -> dict[str, Any]:
    pattern = f"^{prefix}[0-9a-fA-F]{{32}}$"
    return {
        "name": name, "in": "path", "required": True, "description": description,
        "schema": {"type": "string", "minLength": 34, "maxLength": 34, "pattern": pattern},
    }  # fmt: skip


_RECORDING_SID: Final = _sid("Sid", "RT", "The SID of the Recording resource.")
_ROOM_SID: Final = _sid("RoomSid", "RM", "The SID of the Room the recording belongs to.")

_MEDIA_REDIRECT: Final = {
    "summary": "A link to the recording's media",
    "description": "A 302 to an expiring signed link (`redirect_to`), which needs no "
    "other credential: this service's own link, or with GATEWAY_MEDIA_MODE=presign "
    "an S3 presigned URL.",
    "tags": ["VideoV1Recording"],
    "parameters": [
        {
            "name": "Ttl",
            "in": "query",
            "required": False,
            "description": "Seconds the link stays valid.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TTL, "default": DEFAULT_TTL},
        },
        {
            "name": "ContentDisposition",
            "in": "query",
            "required": False,
            "description": "The Content-Disposition the link serves: attachment or "
            'inline, optionally with filename="…".',
            "schema": {"type": "string"},
        },
    ],
    "responses": {
        "302": {
            "description": "The signed link, in Location and in the body.",
            "headers": {"Location": _header("The signed link.")},
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["redirect_to"],
                        "additionalProperties": False,
                        "properties": {"redirect_to": {"type": "string", "format": "uri"}},
                    }
                }
            },
        },
        "400": _error("A parameter is malformed."),
        "401": _error("No valid credentials."),
        "404": _error("No such recording, or it has no media (yet, or any more)."),
        "503": _error("The database or storage is not answering; try again."),
    },
}

_MEDIA_HEADERS: Final = {
    "Content-Type": _header("By codec: video/webm, audio/webm, audio/x-matroska, …"),
    "Content-Disposition": _header("As the link was signed with."),
    "Content-Length": _header("Of this answer's body."),
    "Accept-Ranges": _header("bytes"),
    "ETag": _header("The stored object's."),
    "Last-Modified": _header("When the media was stored."),
    "Cache-Control": _header("private, for no longer than the link's remaining life."),
    "Access-Control-Allow-Origin": _header("Per GATEWAY_CORS_ORIGINS."),
}
_MEDIA_ERRORS: Final = {
    "403": _error("The link is expired, tampered with, or signed with a retired key."),
    "404": _error("The recording was deleted since the link was issued."),
    "503": _error("Storage or the database is not answering; try again."),
}


def _media_link(method: str) -> dict[str, Any]:
    body = {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}
    return {
        "summary": f"{method} a recording's media through its signed link",
        "description": "The link is the credential. One byte range (RFC 9110 §14) and "
        "the conditional headers of §13 are honoured.",
        "security": [],
        "tags": ["Media"],
        "parameters": [
            {"name": "Token", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "The whole object.", "headers": _MEDIA_HEADERS, **body},
            "206": {
                "description": "The range asked for.",
                "headers": {**_MEDIA_HEADERS, "Content-Range": _header("bytes a-b/size")},
                **body,
            },
            "304": {"description": "Not modified (If-None-Match, If-Modified-Since)."},
            "412": {"description": "A precondition failed (If-Match, If-Unmodified-Since)."},
            "416": _error("The range starts past the end of the media."),
            **_MEDIA_ERRORS,
        },
    }


def _probe(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [],
        "tags": ["Health"],
        "responses": {
            "200": {"description": "Yes.", "content": {"application/json": {"schema": {}}}},
            "503": {"description": "No.", "content": {"application/json": {"schema": {}}}},
        },
    }


def _recorder(summary: str, answer: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"recorder_bearer": []}],
        "tags": ["Recorder"],
        "responses": {
            answer: {"description": "Done.", "content": {"application/json": {"schema": {}}}},
            "400": _error("The declaration or upload is not acceptable."),
            "401": _error("No valid bearer token."),
            "404": _error("No such recording."),
            "409": _error("The recording is not in a state that allows this step."),
        },
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


_JSON_BODY: Final = {"required": True, "content": {"application/json": {"schema": {}}}}
_MEDIA_BODY: Final = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}

_OURS: Final[dict[str, dict[str, Any]]] = {
    "/v1/Recordings/{Sid}/Media": {"parameters": [_RECORDING_SID], "get": _MEDIA_REDIRECT},
    "/v1/Rooms/{RoomSid}/Recordings/{Sid}/Media": {
        "parameters": [_ROOM_SID, _RECORDING_SID],
        "get": _MEDIA_REDIRECT,
    },
    "/media/{Token}": {
        "get": _media_link("GET"),
        "head": _media_link("HEAD"),
        "options": {
            "summary": "A browser's CORS preflight for GET or HEAD",
            "security": [],
            "tags": ["Media"],
            "parameters": [
                {"name": "Token", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "204": {"description": "Allowed (with Access-Control-Allow-Origin), or not."},
                "405": _error("Not a preflight for GET or HEAD."),
            },
        },
    },
    "/healthz": {
        "get": _probe("Whether the process is alive"),
        "head": _probe("Whether the process is alive"),
    },
    "/readyz": {
        "get": _probe("Whether the database and storage answer"),
        "head": _probe("Whether the database and storage answer"),
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0"}},
        }
    },
    "/internal/v1/Recordings": {
        "post": _recorder("Declare a recording that is starting", "201", _JSON_BODY)
    },
    "/internal/v1/Recordings/{Sid}/Media": {
        "parameters": [_RECORDING_SID],
        "put": _recorder("Upload the recording's media (Matroska)", "200", _MEDIA_BODY),
    },
    "/internal/v1/Recordings/{Sid}/Complete": {
        "parameters": [_RECORDING_SID],
        "post": _recorder("Mark the recording completed", "200", _JSON_BODY),
    },
    "/internal/v1/Recordings/{Sid}/Fail": {
        "parameters": [_RECORDING_SID],
        "post": _recorder("Mark the recording failed", "200", _JSON_BODY),
    },
}


@functools.cache
def document() -> bytes:
    """The whole description, encoded once."""
    raw = pkgutil.get_data(__name__, "twilio_recordings_v1.json")
    assert raw is not None
    twilio: dict[str, Any] = json.loads(raw)
    components = twilio["components"]
    components["schemas"]["gateway.error"] = {
        "type": "object",
        "description": "Twilio's error body.",
        "required": ["code", "message", "more_info", "status"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "more_info": {"type": "string", "format": "uri"},
            "status": {"type": "integer"},
        },
    }
    components["securitySchemes"]["recorder_bearer"] = {"type": "http", "scheme": "bearer"}
    return json.dumps(
        {
            "openapi": twilio["openapi"],
            "info": {
                "title": "Recording gateway",
                "description": "Twilio Programmable Video's Recordings API, served from "
                "storage of your own.",
                "version": __version__,
            },
            "security": [{"accountSid_authToken": []}],
            "paths": {**twilio["paths"], **_OURS},
            "components": components,
        },
        indent=1,
    ).encode()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=document(), content_type="application/json")
