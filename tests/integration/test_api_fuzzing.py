"""Schemathesis against the Recordings routes, as the official Video v1 description has them."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.ingestion import Declaration, Ingestion
from gateway.models import Account, Codec, Container, MediaType, Recording
from gateway.recordings import Recordings
from gateway.sids import mint
from tests.conftest import basic_auth
from tests.schema import SPEC, validate, validate_error

OPERATIONS: Final = {
    "GET /v1/Recordings",
    "GET /v1/Recordings/{Sid}",
    "DELETE /v1/Recordings/{Sid}",
    "GET /v1/Rooms/{RoomSid}/Recordings",
    "GET /v1/Rooms/{RoomSid}/Recordings/{Sid}",
    "DELETE /v1/Rooms/{RoomSid}/Recordings/{Sid}",
}
# Per operation and generation mode: about 1,200 requests, a few seconds on loopback.
EXAMPLES: Final = 100

pytestmark = [
    # The routes and their parsing are the same on every backend; one is enough to fuzz.
    pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True),
    pytest.mark.timeout(90),
]

Seed = dict[str, dict[str, Any]]  # keyword arguments of APIOperation.as_strategy


def recordings_operations() -> list[APIOperation]:
    config = schemathesis.Config.from_dict(
        {
            # Otherwise negative mode spends most examples on a mangled Authorization header,
            # which the real credentials then overwrite, instead of on the path and the query.
            "generation": {"with-security-parameters": False},
            # A reproduction must show the PageToken it sent, not "[Filtered]".
            "output": {"sanitization": {"enabled": False}},
        }
    )
    paths = sorted({label.split(" ")[1] for label in OPERATIONS})
    schema = schemathesis.openapi.from_path(SPEC, config=config).include(
        path=paths, method=["GET", "DELETE"]
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} == OPERATIONS
    # Every GET before any DELETE, so reads see the seeded recordings in their first state.
    return sorted(operations, key=lambda operation: operation.method.upper() == "DELETE")


def seeds(operation: APIOperation, recordings: list[Recording]) -> list[Seed]:
    """Values naming what exists, so that not every request is a 404 or an empty page;
    whatever a seed leaves out is still generated."""
    room = recordings[0].room_sid
    names = {parameter.name for parameter in operation.path_parameters}
    if names == {"Sid"}:
        return [{"path_parameters": {"Sid": r.sid}} for r in recordings]
    if names == {"RoomSid", "Sid"}:
        pairs = [{"path_parameters": {"RoomSid": room, "Sid": r.sid}} for r in recordings]
        return [{"path_parameters": {"RoomSid": room}}, *pairs]
    groups = {sid for r in recordings for sid in r.grouping_sids.values()}
    filters: list[Seed] = [{"query": {"SourceSid": r.source_sid}} for r in recordings[:2]]
    if names == {"RoomSid"}:
        return [{"path_parameters": {"RoomSid": room}}, *filters]
    return [*({"query": {"GroupingSid": [sid]}} for sid in sorted(groups)), *filters]


def cases(operation: APIOperation, mode: GenerationMode, known: list[Seed]) -> st.SearchStrategy:
    generated = operation.as_strategy(generation_mode=mode)
    # A seed fixes valid values, which is what negative mode must not be given.
    if mode is GenerationMode.NEGATIVE:
        return generated
    seeded = st.sampled_from(known).flatmap(
        lambda seed: operation.as_strategy(generation_mode=mode, **seed)
    )
    return st.one_of(generated, seeded)


def fuzz(
    operation: APIOperation,
    mode: GenerationMode,
    known: list[Seed],
    base_url: str,
    headers: dict[str, str],
    found: dict[str, str],
) -> None:
    """Runs in a worker thread: requests blocks, and the server runs on the test's loop."""
    session = requests.Session()

    def record(check: str, detail: str, case: Case, response: requests.Response) -> None:
        # One example per operation, mode, check and status: the first one found.
        key = f"{operation.label} ({mode.value}): {check} -> {response.status_code}"
        # Without the credentials: those of a throwaway account, and noise in a report.
        curl = case.as_curl_command()
        found.setdefault(key, f"{curl}\n  {detail[:300]}\n  body: {response.text[:400]}")

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # Failures are collected rather than raised, so there is nothing to shrink.
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases(operation, mode, known))
    def one(case: Case) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers)
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except FailureGroup as failures:
            for failure in failures.exceptions:
                record(failure.title, failure.message, case, response)
        # The spec documents only 200 and 204; any 4xx is fine if it is Twilio's error.
        status = response.status_code
        try:
            if 400 <= status < 500:
                validate_error(response.json(), status)
            elif status == 200:
                validate(response.json(), operation.path)
        except (AssertionError, ValueError, jsonschema.ValidationError) as error:
            check = "not Twilio's error body" if status != 200 else "not exactly the schema"
            record(check, f"{type(error).__name__}: {error}", case, response)

    with session:
        one()


async def in_every_state(
    recordings: Recordings,
    ingestion: Ingestion,
    account: Account,
    ingested: dict[Codec, Recording],
) -> list[Recording]:
    """Recordings in each status the schema's enum names, all in one room."""
    completed = list(ingested.values())
    room = completed[0].room_sid
    declared = Declaration(
        account.sid, MediaType.VIDEO, Codec.VP8, Container.MKV, mint("MT"), room, mint("PA")
    )
    processing = await ingestion.start(declared)
    failed = await ingestion.fail((await ingestion.start(declared)).sid, "probe refused it")
    await recordings.delete(account.sid, completed[-1].sid)
    deleted = await recordings.get(account.sid, completed[-1].sid)
    return [*completed[:-1], deleted, processing, failed]


async def test_recordings_routes_answer_as_the_spec_says_under_fuzzing(
    base_url: str,
    account: Account,
    recordings: Recordings,
    ingestion: Ingestion,
    ingested: dict[Codec, Recording],
) -> None:
    existing = await in_every_state(recordings, ingestion, account, ingested)
    headers = basic_auth(account.sid, account.auth_token)
    found: dict[str, str] = {}
    for operation in recordings_operations():
        known = seeds(operation, existing)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            await asyncio.to_thread(fuzz, operation, mode, known, base_url, headers, found)
    report = "\n".join(f"{key}\n  {example}" for key, example in sorted(found.items()))
    assert not found, f"{len(found)} distinct failures:\n{report}"
