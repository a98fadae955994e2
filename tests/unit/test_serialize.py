"""`gateway.api.serialize`: the JSON the API answers."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.api.serialize import redirect_json


@given(st.text())
def test_redirect_body_is_what_json_dumps_writes(location: str) -> None:
    assert redirect_json(location) == json.dumps({"redirect_to": location})
    assert json.loads(redirect_json(location)) == {"redirect_to": location}
