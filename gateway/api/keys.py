"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.accounts import Authenticator
from gateway.config import Settings
from gateway.ingestion import Ingestion
from gateway.media_links import MediaLinks
from gateway.metrics import Metrics
from gateway.recordings import Recordings
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

SETTINGS: Final = web.AppKey("settings", Settings)
STORE: Final = web.AppKey("store", MetadataStore)
STORAGE: Final = web.AppKey("storage", MediaStorage)
RECORDINGS: Final = web.AppKey("recordings", Recordings)
INGESTION: Final = web.AppKey("ingestion", Ingestion)
MEDIA_LINKS: Final = web.AppKey("media_links", MediaLinks)
AUTHENTICATOR: Final = web.AppKey("authenticator", Authenticator)
METRICS: Final = web.AppKey("metrics", Metrics)
# Whether media goes out through os.sendfile (local files), decided once at start-up;
# else it is read in pieces.
SENDFILE: Final = web.AppKey("sendfile", bool)
ACCOUNT_SID: Final = web.RequestKey("account_sid", str)
# The route template a request matched, for logs: never the path, which for a media link
# is the link's credential.
ROUTE: Final = web.RequestKey("route", str)
# The CORS headers every answer to the request carries (an error's too), when its route
# takes cross-origin requests.
CORS_HEADERS: Final = web.RequestKey("cors_headers", dict[str, str])
# The request's id: a trusted proxy's X-Request-Id, or one made here. Every answer carries
# it, and so do the access line and every other log line of the request.
REQUEST_ID: Final = web.RequestKey("request_id", str)
# Behind a trusted proxy, the client's address it names; unset, the peer is the client.
CLIENT: Final = web.RequestKey("client", str)
# The recording a request is about, where it names one (for the access line).
RECORDING_SID: Final = web.RequestKey("recording_sid", str)
