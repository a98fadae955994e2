"""`gateway recordings delete`: the list filters, a dry run, a confirmation, callbacks."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.ingestion import Declaration, Ingestion
from gateway.models import Codec, Container, MediaType
from gateway.sids import mint
from gateway.storage import open_storage
from gateway.store import open_store
from tests.processes import ok, refused

ROOM_A, ROOM_B = "RM" + "a" * 32, "RM" + "b" * 32


@pytest.fixture
def account(env: dict[str, str], media_files: dict[Codec, Path]) -> dict[str, str]:
    """An account with two recordings in room A and one in room B."""
    made: dict[str, str] = ok(env, "accounts", "create")
    for room in (ROOM_A, ROOM_A, ROOM_B):
        path = str(media_files[Codec.OPUS])
        ok(env, "ingest", path, "--account", made["account_sid"], "--room", room)
    return made


def would_delete(env: dict[str, str], account: dict[str, str], *filters: str) -> int:
    done = ok(
        env, "recordings", "delete", "--account", account["account_sid"], *filters, "--dry-run"
    )
    assert len(done["recordings"]) == done["would_delete"]
    return int(done["would_delete"])


def test_dry_run_prints_what_would_go_and_deletes_nothing(
    env: dict[str, str], account: dict[str, str]
) -> None:
    assert would_delete(env, account, "--room", ROOM_A) == 2
    assert would_delete(env, account, "--room", ROOM_B, "--media-type", "audio") == 1
    assert would_delete(env, account, "--media-type", "video") == 0
    assert would_delete(env, account, "--before", "2000-01-01T00:00:00Z") == 0
    assert would_delete(env, account) == 3


def test_delete_with_yes_deletes_exactly_the_matching_recordings(
    env: dict[str, str], account: dict[str, str]
) -> None:
    sid = account["account_sid"]
    assert ok(env, "recordings", "delete", "--account", sid, "--room", ROOM_A, "--yes") == {
        "deleted": 2
    }
    assert would_delete(env, account) == 1
    assert would_delete(env, account, "--status", "deleted") == 2


def test_without_a_terminal_it_will_not_delete_unasked(
    env: dict[str, str], account: dict[str, str]
) -> None:
    assert "--yes" in refused(env, "recordings", "delete", "--account", account["account_sid"])
    assert would_delete(env, account) == 3


def test_bad_filter_is_refused_naming_the_flag(
    env: dict[str, str], account: dict[str, str]
) -> None:
    args = ("recordings", "delete", "--account", account["account_sid"], "--dry-run")
    assert "--participant" in refused(env, *args, "--participant", "PA-nope")
    assert "--after" in refused(env, *args, "--after", "yesterday")
    assert "--room" in refused(env, *args, "--room", "RM1")


@pytest.mark.parametrize(("answer", "left"), [("y", 1), ("n", 3)])
def test_on_a_terminal_it_asks_first(
    env: dict[str, str], account: dict[str, str], answer: str, left: int
) -> None:
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "gateway", "recordings", "delete"]
    process = subprocess.Popen(
        [*command, "--account", account["account_sid"], "--room", ROOM_A],
        env=env, stdin=terminal, stdout=terminal, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    try:
        prompt = b""
        while b"[y/N]" not in prompt:
            prompt += os.read(controller, 1024)
        assert b"Delete 2 recordings" in prompt
        os.write(controller, answer.encode() + b"\n")
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    assert would_delete(env, account) == left


async def test_each_deletion_announces_itself_as_the_api_would(
    env: dict[str, str], account: dict[str, str]
) -> None:
    settings = Settings.from_env(env)
    store, storage = await open_store(settings), await open_storage(settings)
    try:
        declared = Declaration(
            account_sid=account["account_sid"], type=MediaType.AUDIO, codec=Codec.OPUS,
            container_format=Container.MKA, source_sid=mint("MT"), room_sid=ROOM_B,
            status_callback="https://app.example.com/events",
        )  # fmt: skip
        started = await Ingestion(store, storage).start(declared)
        command = ("recordings", "delete", "--account", account["account_sid"])
        ok(env, *command, "--room", ROOM_B, "--yes")
        events = [c.event for c in await store.list_callbacks(started.sid, 10)]
    finally:
        await storage.aclose()
        await store.aclose()
    assert events == ["recording-started", "recording-deleted"]
    # Queued for the running service to deliver, and visible to the operator meanwhile.
    listed = ok(env, "callbacks", "list", "--recording", started.sid)
    assert [(c["event"], c["state"], c["attempts"]) for c in listed] == [
        ("recording-started", "pending", 0),
        ("recording-deleted", "pending", 0),
    ]
