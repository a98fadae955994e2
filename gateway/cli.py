"""The `gateway` command: JSON on stdout, one-line errors on stderr with exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

import uvloop
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from tqdm import tqdm

from gateway import accounts, demo, logs, metrics, sids
from gateway.api import prefork, server
from gateway.api.keys import METRICS, SETTINGS
from gateway.api.query import parse_list
from gateway.api.serialize import recording_json
from gateway.app import create_app
from gateway.backends import media, metadata
from gateway.config import Settings
from gateway.errors import ConfigError, GatewayError, InvalidParameter, NotFound
from gateway.ingestion import Ingestion
from gateway.instants import utc
from gateway.janitor import sweep
from gateway.models import Codec, MediaType, RecordingFilter, Status
from gateway.recordings import Recordings
from gateway.signing import signing_keys
from gateway.twilio_import import command as twilio_import
from gateway.twilio_import.importer import Summary

PROGRESS_FROM: Final = 8 * 1024 * 1024  # bytes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API and media links")
    serve.add_argument("--host", help="address to listen on (GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (GATEWAY_PORT)")
    serve.add_argument("--workers", type=int, help="serving processes (GATEWAY_WORKERS)")
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

    twilio_import.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return _serve(settings, args)
        result = uvloop.run(_COMMANDS[args.command](settings, args))
    except (ConfigError, GatewayError, OSError) as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    if isinstance(result, Summary):  # an import: done only if nothing failed
        _print(result.as_json())
        return 1 if result.failed else 0
    if result is not None:
        _print(result)
    return 0


def _print(result: object) -> None:
    print(json.dumps(result, indent=2))


async def _migrate(settings: Settings, args: argparse.Namespace) -> dict[str, int]:
    async with metadata(settings) as store:  # opening migrates
        return {"schema_version": store.schema_version}


async def _purge(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    async with metadata(settings) as store, media(settings) as storage:
        done = await sweep(store, storage, settings.deleted_retention, utc(time.time()))
    return dataclasses.asdict(done)


async def _delete_recordings(settings: Settings, args: argparse.Namespace) -> None:
    where = _bulk_filter(args)
    async with metadata(settings) as store, media(settings) as storage:
        recordings = Recordings(store, storage)
        found = await recordings.matching(args.account, where)
        if args.dry_run:
            return _print({"would_delete": len(found), "recordings": list(found)})
        if found and not args.yes and not await asyncio.to_thread(_confirmed, args, found):
            return _print({"deleted": 0})
        deleted = 0
        with tqdm(total=len(found), unit="recording", disable=not sys.stderr.isatty()) as bar:
            for sid in found:
                with contextlib.suppress(NotFound):  # purged since it was found: gone anyway
                    await recordings.delete(args.account, sid)
                    deleted += 1
                bar.update()
    _print({"deleted": deleted})


def _bulk_filter(args: argparse.Namespace) -> RecordingFilter:
    """The same parsing as GET /v1/Recordings, so a filter means here what it means there;
    a bad one is refused naming its flag."""
    flags = {
        "GroupingSid": ("--participant", args.participant),
        "DateCreatedAfter": ("--after", args.after),
        "DateCreatedBefore": ("--before", args.before),
        "Status": ("--status", args.status),
        "MediaType": ("--media-type", args.media_type),
    }
    query = MultiDict((name, value) for name, (_, value) in flags.items() if value is not None)
    if args.room is not None and not sids.is_sid(args.room, "RM"):
        raise InvalidParameter("--room", "must be an RM SID")
    try:
        return parse_list(MultiDictProxy(query), args.room).where
    except InvalidParameter as bad:
        raise InvalidParameter(flags[bad.name][0], bad.problem) from None


def _confirmed(args: argparse.Namespace, found: tuple[str, ...]) -> bool:
    if not sys.stdin.isatty():
        raise GatewayError("not on a terminal: add --yes to delete without asking")
    answer = input(f"Delete {len(found)} recordings of {args.account}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def _callbacks(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    async with metadata(settings) as store:
        found = await store.list_callbacks(args.recording, args.limit)
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
    async with metadata(settings) as store:
        account = await accounts.create_account(store, args.name)
    return {"account_sid": account.sid, "auth_token": account.auth_token}


async def _keys(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    async with metadata(settings) as store:
        key, secret = await accounts.create_api_key(store, args.account)
    return {"sid": key.sid, "secret": secret}


async def _ingest(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    if not args.file.is_file():
        raise GatewayError(f"{args.file}: no such file")
    size = args.file.stat().st_size
    # A bar only for a person watching, and only when there is time to watch it.
    quiet = not sys.stderr.isatty() or size < PROGRESS_FROM
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, disable=quiet)
    with bar:
        async with metadata(settings) as store, media(settings) as storage:
            # The recorders' own steps, so a file handed in here is checked the same way.
            recording = await Ingestion(store, storage).ingest(
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


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, Any]]] = {
    "import": twilio_import.run,
    "migrate": _migrate,
    "purge": _purge,
    "recordings": _delete_recordings,
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
        workers=settings.workers if args.workers is None else args.workers,
    )
    if settings.workers < 1:
        raise InvalidParameter("--workers", "must be 1 or more")
    logs.configure(settings.log_format, settings.log_level)
    keys = signing_keys(settings)  # before any fork, so that every worker has the same
    if args.demo:
        uvloop.run(_announce_demo(settings))
    _warn_of_unusable_hosts(settings)

    def make_app() -> web.Application:
        app = create_app(settings, keys)
        app.on_shutdown.append(_hold_further_signals)
        return app

    def announce(line: str) -> None:
        print(line, flush=True)

    if settings.workers > 1:
        prefork.run_workers(
            make_app,
            settings.host,
            settings.port,
            workers=settings.workers,
            header_timeout=settings.header_timeout,
            shutdown_grace=settings.shutdown_grace,
            announce=announce,
            log_format=settings.log_format,
            metrics_address=settings.metrics_address,
        )
        return 0
    app = make_app()
    registry = app[METRICS].registry
    stop_metrics = None
    if settings.metrics_address and registry:
        stop_metrics = metrics.serve(settings.metrics_address, registry)
    try:
        server.run(
            app,
            settings.host,
            settings.port,
            header_timeout=settings.header_timeout,
            shutdown_grace=settings.shutdown_grace,
            loop=uvloop.new_event_loop(),
            announce=announce,
            log_format=settings.log_format,
        )
    finally:
        if stop_metrics:
            stop_metrics()
    return 0


def _warn_of_unusable_hosts(settings: Settings) -> None:
    """Reached by another name than localhost's, the API would answer 400 to every call
    that returns URLs: say so now rather than at the first client's."""
    loopback = settings.host in ("localhost", "127.0.0.1", "::1")
    default = Settings.from_env({}).allowed_hosts
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


async def _announce_demo(settings: Settings) -> None:
    credentials = settings.sqlite_path.parent / "demo-account.json"
    async with metadata(settings) as store, media(settings) as storage:
        recordings = Recordings(store, storage)
        account_sid, auth_token, _ = await demo.seed(recordings, credentials)
        page = await recordings.list(account_sid, RecordingFilter(), 1, None)
    base = _public_url(settings)
    print(f"Demo account: {account_sid}\nAuth token:   {auth_token}")
    for recording in page.recordings:
        sid, url = recording.sid, f"{base}/v1/Recordings/{recording.sid}/Media"
        file = f"{sid}.{recording.container_format}"
        curl = f"curl -L -u {account_sid}:{auth_token} -o {file} '{url}'"
        print(f"Fetch a recording's media:\n  {curl}")
    print(flush=True)
