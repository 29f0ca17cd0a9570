"""Schemathesis against a real gateway, from OpenAI's published OpenAPI spec (the subset
the gateway serves, tests/data): whatever the spec lets a client send, valid or not, the
gateway answers 2xx or 4xx, never 5xx, and every error is OpenAI's error body.

Bodies name the gateway's own models (the spec's `model` is any string, which would stop
nearly every case at a 404), so generated requests travel the whole path to the mock
upstream. Fixed seed, bounded examples: the same cases on every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.gateway_config import MAIN_KEY
from tests.support.processes import Server

SPEC = Path(__file__).parent / "data" / "openai-openapi-subset.json"
MODELS = {"/embeddings": "embed"}  # the suite's gateway (tests/support/gateway_config.py)
PHASES = ["fuzzing"]  # "coverage" adds minutes per operation


# Loaded eagerly (schemathesis' lazy `from_fixture` does not work with this pytest); each
# case names the gateway's address when it is sent.
schema = schemathesis.openapi.from_path(SPEC)
schema.config.phases.update(phases=PHASES)


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_spec_never_gets_a_5xx(case: Any, gateway: Server) -> None:
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = MODELS.get(case.operation.path, "small")
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = {**headers, "authorization": f"Bearer {MAIN_KEY}"}
    response = case.call(base_url=f"{gateway.url}/v1", timeout=20)
    sent = f"{case.method} {case.path} {case.headers} {case.body!r}"[:2000]
    assert response.status_code < 500, (sent, response.text[:500])
    assert response.status_code in (200, 400, 404, 405, 413, 422, 429), response.text[:500]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        (request_id,) = response.headers["x-flywheel-request-id"]  # each header: its values
        assert request_id.startswith("req_")
