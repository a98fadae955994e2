"""The `gateway` command: JSON on stdout, one-line errors on stderr with exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from gateway import accounts, demo
from gateway.api.serialize import recording_json
from gateway.app import create_app
from gateway.config import Settings, signing_keys
from gateway.errors import ConfigError, GatewayError
from gateway.janitor import sweep, utc
from gateway.models import Codec, RecordingFilter
from gateway.recordings import Recordings
from gateway.signing import MediaLinkSigner
from gateway.storage import open_storage
from gateway.store import open_store


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
        result = uvloop.run(_COMMANDS[args.command](settings, args))
    except (ConfigError, GatewayError, OSError) as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
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
    async def ingest(recordings: Recordings) -> dict[str, Any]:
        recording = await recordings.ingest(
            args.file,
            args.account,
            room_sid=args.room,
            participant_sid=args.participant,
            source_sid=args.source_sid,
            track_name=args.track_name,
            offset=args.offset,
            codec=args.codec,
        )
        return recording_json(_public_url(settings), recording)

    if not args.file.is_file():
        raise GatewayError(f"{args.file}: no such file")
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
    web.run_app(
        create_app(settings, keys),
        host=settings.host,
        port=settings.port,
        loop=uvloop.new_event_loop(),
        print=lambda line: print(line, flush=True),
    )
    return 0


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
