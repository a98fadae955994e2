"""`gateway import twilio`: its arguments, and the run with its progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gateway import sids
from gateway.backends import media, metadata
from gateway.config import Settings
from gateway.errors import InvalidParameter
from gateway.models import MediaType, Status
from gateway.twilio_import.decrypt import private_key
from gateway.twilio_import.importer import Importer, Progress, Summary
from gateway.twilio_import.source import (
    DEFAULT_SOURCE,
    Credentials,
    Politeness,
    Source,
    list_filters,
)


def add_parser(commands: Any) -> None:
    imports = commands.add_parser("import", help="bring recordings over from elsewhere")
    twilio = imports.add_subparsers(dest="source", required=True).add_parser(
        "twilio",
        help="every recording of a Twilio account (or any service speaking the Recordings "
        "API), with the same SIDs; run again to bring only what is new or changed",
    )
    twilio.add_argument("--source-url", default=DEFAULT_SOURCE, metavar="URL")
    # The Twilio CLI's and helper libraries' variables; the flags override them.
    twilio.add_argument("--account-sid", metavar="AC…", help="default: TWILIO_ACCOUNT_SID")
    twilio.add_argument("--auth-token", metavar="TOKEN", help="default: TWILIO_AUTH_TOKEN")
    twilio.add_argument("--api-key", metavar="SK…", help="default: TWILIO_API_KEY")
    twilio.add_argument("--api-secret", metavar="SECRET", help="default: TWILIO_API_SECRET")
    twilio.add_argument("--room", metavar="RM…")
    twilio.add_argument("--participant", metavar="PA…")
    twilio.add_argument("--source-sid", metavar="MT…")
    twilio.add_argument("--status", choices=[s.value for s in Status])
    twilio.add_argument("--media-type", choices=[MediaType.AUDIO.value, MediaType.VIDEO.value])
    twilio.add_argument("--created-after", metavar="ISO-8601")
    twilio.add_argument("--created-before", metavar="ISO-8601")
    twilio.add_argument(
        "--dry-run", action="store_true", help="count what would come; change nothing"
    )
    twilio.add_argument("--concurrency", type=int, default=4, help="downloads at a time (4)")
    twilio.add_argument("--rate", type=float, default=50.0, help="API reads a second (50)")
    twilio.add_argument("--page-size", type=int, default=100, help="recordings a list page asks")
    twilio.add_argument(
        "--decrypt-key", type=Path, metavar="PEM", help="RSA private key of encrypted media"
    )


def credentials(args: argparse.Namespace) -> Credentials:
    account = args.account_sid or os.environ.get("TWILIO_ACCOUNT_SID", "")
    if not sids.is_sid(account, "AC"):
        raise InvalidParameter("--account-sid", "give the source account's AC… SID")
    key = args.api_key or os.environ.get("TWILIO_API_KEY")
    if key:
        secret = args.api_secret or os.environ.get("TWILIO_API_SECRET")
        if not secret:
            raise InvalidParameter("--api-secret", "an API key needs its secret")
        return Credentials(account, key, secret)
    token = args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN")
    if not token:
        raise InvalidParameter("--auth-token", "give the account's auth token or an API key")
    return Credentials(account, account, token)


def _moment(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(name, "must be an ISO 8601 date-time") from None


async def run(settings: Settings, args: argparse.Namespace) -> Summary:
    if args.concurrency < 1 or not args.rate > 0:
        raise InvalidParameter("--concurrency/--rate", "must be above 0")
    if not 1 <= args.page_size <= 1000:
        raise InvalidParameter("--page-size", "must be from 1 to 1000, as Twilio allows")
    for name, value, prefix in (
        ("--room", args.room, "RM"),
        ("--participant", args.participant, "PA"),
        ("--source-sid", args.source_sid, "MT"),
    ):
        if value is not None and not sids.is_sid(value, prefix):
            raise InvalidParameter(name, f"must be a {prefix} SID")
    filters = list_filters(
        room=args.room,
        participant=args.participant,
        source_sid=args.source_sid,
        status=args.status,
        media_type=args.media_type,
        created_after=_moment("--created-after", args.created_after),
        created_before=_moment("--created-before", args.created_before),
    )
    key = private_key(args.decrypt_key) if args.decrypt_key else None
    source = Source(
        args.source_url, credentials(args), Politeness(rate=args.rate, page_size=args.page_size)
    )
    bar = _Bar()
    try:
        async with metadata(settings) as store, media(settings) as storage:
            importer = Importer(source, store, storage, dry_run=args.dry_run,
                                concurrency=args.concurrency, decrypt_key=key,
                                progress=bar)  # fmt: skip
            return await importer.run(filters)
    finally:
        bar.close()
        await source.aclose()


class _Bar(Progress):
    """On a terminal: media bytes with their rate and ETA, and recordings done."""

    def __init__(self) -> None:
        self._bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
                         disable=not sys.stderr.isatty())  # fmt: skip
        self._recordings, self._done = 0, 0

    def planned(self, recordings: int, media_bytes: int) -> None:
        self._recordings = recordings
        self._bar.reset(total=media_bytes)
        self._show()

    def advanced(self, recordings: int, media_bytes: int) -> None:
        self._done += recordings
        if recordings:
            self._show()
        self._bar.update(media_bytes)

    def _show(self) -> None:
        self._bar.set_description_str(f"{self._done}/{self._recordings} recordings", refresh=False)

    def close(self) -> None:
        self._bar.close()
