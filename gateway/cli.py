"""The `gateway` command: JSON on stdout, one-line errors on stderr with exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

import uvloop
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from tqdm import tqdm

from gateway import accounts, demo, sids
from gateway.api import server
from gateway.api.keys import SETTINGS
from gateway.api.params import parse_list
from gateway.api.serialize import recording_json
from gateway.app import create_app
from gateway.config import Settings, signing_keys
from gateway.errors import ConfigError, GatewayError, InvalidParameter, NotFound
from gateway.ingestion import Ingestion
from gateway.instants import utc
from gateway.janitor import sweep
from gateway.models import Codec, MediaType, RecordingFilter, Status
from gateway.recordings import Recordings
from gateway.signing import MediaLinkSigner
from gateway.storage import open_storage
from gateway.store import open_store

PROGRESS_FROM: Final = 8 * 1024 * 1024  # bytes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API and media links")
    serve.add_argument("--host", help="address to listen on (GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (GATEWAY_PORT)")
    serve.add_argument(
        "--demo", action="store_true", help="create a demo account and recordings if none yet"
    )
    commands.add_parser("migrate", help="create or upgrade the database schema (serve does too)")
    commands.add_parser("purge", help="run one janitor sweep now")

    bulk = commands.add_parser("recordings", help="manage recordings in bulk")
    delete = bulk.add_subparsers(dest="action", required=True).add_parser(
        "delete",
        help="delete every recording the filters match, as the API's DELETE does "
        "(callbacks are sent by the running service)",
    )
    delete.add_argument("--account", required=True, metavar="AC…")
    delete.add_argument("--room", metavar="RM…")
    delete.add_argument("--participant", metavar="PA…")
    delete.add_argument("--after", metavar="ISO-8601", help="created at or after")
    delete.add_argument("--before", metavar="ISO-8601", help="created before")
    delete.add_argument("--status", choices=[s.value for s in Status])
    delete.add_argument("--media-type", choices=[t.value for t in MediaType])
    delete.add_argument(
        "--dry-run", action="store_true", help="print what would go, delete nothing"
    )
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    callbacks = commands.add_parser("callbacks", help="status callback deliveries")
    listing = callbacks.add_subparsers(dest="action", required=True).add_parser(
        "list", help="deliveries, oldest first, with attempts and last error"
    )
    listing.add_argument("--recording", metavar="RT…")
    listing.add_argument("--limit", type=int, default=100)

    account = commands.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create_account = account.add_parser("create", help="create an account")
    create_account.add_argument("--name", default="Account", help="friendly name")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create_key = keys.add_parser("create", help="create an API key (SK…:secret)")
    create_key.add_argument("--account", required=True, metavar="AC…")

    ingest = commands.add_parser("ingest", help="store a Matroska file as a completed recording")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--account", required=True, metavar="AC…")
    ingest.add_argument("--room", metavar="RM…")
    ingest.add_argument("--participant", metavar="PA…")
    ingest.add_argument("--source-sid", metavar="MT…")
    ingest.add_argument("--track-name", metavar="NAME")
    ingest.add_argument("--offset", type=int, default=0, metavar="MS")
    ingest.add_argument("--codec", type=Codec, choices=list(Codec), metavar="C")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "recordings":
            return _delete_recordings(settings, args)
        result = uvloop.run(_COMMANDS[args.command](settings, args))
    except (ConfigError, GatewayError, OSError) as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    _print(result)
    return 0


async def _with_recordings(settings: Settings, use: Callable[[Recordings], Awaitable[Any]]) -> Any:
    store = await open_store(settings)
    try:
        storage = await open_storage(settings)
        try:
            signer = MediaLinkSigner(signing_keys(settings))
            return await use(Recordings(store, storage, signer))
        finally:
            await storage.aclose()
    finally:
        await store.aclose()


async def _migrate(settings: Settings, args: argparse.Namespace) -> dict[str, int]:
    store = await open_store(settings)  # opening migrates
    await store.aclose()
    return {"schema_version": store.schema_version}


async def _purge(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    async def purge(recordings: Recordings) -> dict[str, Any]:
        now = utc(time.time())
        done = await sweep(recordings.store, recordings.storage, settings.deleted_retention, now)
        return dataclasses.asdict(done)

    return await _with_recordings(settings, purge)  # type: ignore[no-any-return]


def _delete_recordings(settings: Settings, args: argparse.Namespace) -> int:
    # The same parsing as GET /v1/Recordings, so a filter means here what it means there.
    query = MultiDict(
        (name, value)
        for name, value in (
            ("GroupingSid", args.participant),
            ("DateCreatedAfter", args.after),
            ("DateCreatedBefore", args.before),
            ("Status", args.status),
            ("MediaType", args.media_type),
        )
        if value is not None
    )
    if args.room is not None and not sids.is_sid(args.room, "RM"):
        raise InvalidParameter("--room", "must be an RM SID")
    try:
        where = parse_list(MultiDictProxy(query), args.room).where
    except InvalidParameter as bad:
        flag = _FLAGS.get(bad.name, bad.name)
        raise InvalidParameter(flag, bad.message.split(": ", 1)[1]) from None

    async def find(recordings: Recordings) -> tuple[str, ...]:
        return await recordings.matching(args.account, where)

    found = uvloop.run(_with_recordings(settings, find))
    if args.dry_run:
        _print({"would_delete": len(found), "recordings": list(found)})
        return 0
    if found and not args.yes:
        if not sys.stdin.isatty():
            raise GatewayError("not on a terminal: add --yes to delete without asking")
        answer = input(f"Delete {len(found)} recordings of {args.account}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            _print({"deleted": 0})
            return 0

    async def delete(recordings: Recordings) -> int:
        deleted = 0
        with tqdm(total=len(found), unit="recording", disable=not sys.stderr.isatty()) as bar:
            for sid in found:
                try:
                    await recordings.delete(args.account, sid)
                    deleted += 1
                except NotFound:
                    pass  # purged since it was found: nothing left to delete
                bar.update()
        return deleted

    _print({"deleted": uvloop.run(_with_recordings(settings, delete))})
    return 0


_FLAGS: Final = {
    "GroupingSid": "--participant",
    "DateCreatedAfter": "--after",
    "DateCreatedBefore": "--before",
}


def _print(result: object) -> None:
    print(json.dumps(result, indent=2))


async def _callbacks(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    store = await open_store(settings)
    try:
        found = await store.list_callbacks(args.recording, args.limit)
    finally:
        await store.aclose()
    return [
        {
            "id": c.id,
            "recording_sid": c.recording_sid,
            "event": c.event,
            "url": c.url,
            "method": c.method,
            "state": c.state.value,
            "attempts": c.attempts,
            "last_error": c.last_error,
            "created": c.created.isoformat(),
            "delivered": c.delivered and c.delivered.isoformat(),
        }
        for c in found
    ]


async def _accounts(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    store = await open_store(settings)
    try:
        account = await accounts.create_account(store, args.name)
    finally:
        await store.aclose()
    return {"account_sid": account.sid, "auth_token": account.auth_token}


async def _keys(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    store = await open_store(settings)
    try:
        key, secret = await accounts.create_api_key(store, args.account)
    finally:
        await store.aclose()
    return {"sid": key.sid, "secret": secret}


async def _ingest(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    size = args.file.stat().st_size if args.file.is_file() else 0
    # A bar only for a person watching, and only when there is time to watch it.
    quiet = not sys.stderr.isatty() or size < PROGRESS_FROM
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, disable=quiet)

    async def ingest(recordings: Recordings) -> dict[str, Any]:
        # The recorders' own steps, so a file handed in here is checked the same way.
        ingestion = Ingestion(recordings.store, recordings.storage)
        recording = await ingestion.ingest(
            args.file,
            args.account,
            room_sid=args.room,
            participant_sid=args.participant,
            source_sid=args.source_sid,
            track_name=args.track_name,
            offset=args.offset,
            codec=args.codec,
            progress=bar.update,
        )
        return recording_json(_public_url(settings), recording)

    if not args.file.is_file():
        raise GatewayError(f"{args.file}: no such file")
    with bar:
        return await _with_recordings(settings, ingest)  # type: ignore[no-any-return]


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, Any]]] = {
    "migrate": _migrate,
    "purge": _purge,
    "callbacks": _callbacks,
    "accounts": _accounts,
    "keys": _keys,
    "ingest": _ingest,
}


def _public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    settings = dataclasses.replace(
        settings,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    keys = signing_keys(settings)
    if args.demo:
        uvloop.run(_with_recordings(settings, lambda r: _announce_demo(settings, r)))
    app = create_app(settings, keys)
    app.on_shutdown.append(_hold_further_signals)
    _warn_of_unusable_hosts(settings)
    server.run(
        app,
        settings.host,
        settings.port,
        header_timeout=settings.header_timeout,
        shutdown_grace=settings.shutdown_grace,
        loop=uvloop.new_event_loop(),
        announce=lambda line: print(line, flush=True),
    )
    return 0


def _warn_of_unusable_hosts(settings: Settings) -> None:
    """Reached by another name than localhost's, the API would answer 400 to every call
    that returns URLs: say so now rather than at the first client's."""
    loopback = settings.host in ("localhost", "127.0.0.1", "::1")
    default = Settings().allowed_hosts
    if not loopback and settings.public_url is None and settings.allowed_hosts == default:
        logging.getLogger(__name__).warning(
            "listening on %s, but neither GATEWAY_PUBLIC_URL nor GATEWAY_ALLOWED_HOSTS is "
            "set: the API answers 400 to any Host but %s",
            settings.host,
            ", ".join(default),
        )


async def _hold_further_signals(app: web.Application) -> None:
    """aiohttp answers each SIGTERM or SIGINT by raising GracefulExit, and a second one
    during the grace would abort the clean-up: stores left open, and the process hung on
    their threads for good. From here on another signal only says what is going on."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _already_stopping, app[SETTINGS].shutdown_grace)


def _already_stopping(grace: float) -> None:
    logging.getLogger(__name__).warning(
        "already stopping: requests in flight have up to %gs to finish; SIGKILL stops now",
        grace,
    )


async def _announce_demo(settings: Settings, recordings: Recordings) -> None:
    credentials = settings.sqlite_path.parent / "demo-account.json"
    account_sid, auth_token, _ = await demo.seed(recordings, credentials)
    page = await recordings.list(account_sid, RecordingFilter(), 1, None)
    base = _public_url(settings)
    print(f"Demo account: {account_sid}\nAuth token:   {auth_token}")
    for recording in page.recordings:
        sid, media = recording.sid, f"{base}/v1/Recordings/{recording.sid}/Media"
        file = f"{sid}.{recording.container_format}"
        curl = f"curl -L -u {account_sid}:{auth_token} -o {file} '{media}'"
        print(f"Fetch a recording's media:\n  {curl}")
    print(flush=True)
