"""Hypothesis against a real gateway: JSON bodies an OpenAPI spec would never produce
(deep nesting, odd types where content parts go, huge numbers, unicode, null bytes, lone
surrogates) on every inference endpoint. Whatever comes in: never a 5xx, and every
refusal is OpenAI's error body with a request id header.

Fixed seed (`derandomize`) and a bounded number of examples: the same bodies every run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway_config import MAIN_KEY
from tests.support.processes import Server

ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
HEADERS = {"authorization": f"Bearer {MAIN_KEY}", "content-type": "application/json"}

# Leaves a JSON body can carry, the awkward ones on purpose.
ODD_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
    st.sampled_from(["", "\x00", "text", "image_url", "hi\x00there", "é🙂", "1e999"]),
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=12,
)
part_types = st.one_of(
    st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "input_text"]),
    values,
)
parts = st.one_of(
    values,
    st.fixed_dictionaries(
        {"type": part_types},
        optional={"text": values, "image_url": values, "input_audio": values, "file": values},
    ),
)
contents = st.one_of(values, st.lists(parts, max_size=3))
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool"]), values)},
        optional={"content": contents, "tool_call_id": values, "tool_calls": values},
    ),
    max_size=3,
)
models = st.sampled_from(["small", "embed", "chat-only", "nope"]) | values
bodies = st.fixed_dictionaries(
    {"model": models},
    optional={
        "messages": messages,
        "prompt": contents,
        "input": st.one_of(contents, messages),
        "max_tokens": values,
        "temperature": values,
        "stream": st.one_of(st.just(False), values),
        "metadata": values,
        "tools": values,
        "response_format": values,
        "n": values,
    },
)


def nested_text(depth: int) -> str:
    """A JSON value nested `depth` levels (written by hand: no encoder goes that deep)."""
    opening = "".join('{"k":' if i % 2 else "[" for i in range(depth))
    closing = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    return opening + '"deep"' + closing


@pytest.fixture(scope="module")
def http(gateway: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=HEADERS, timeout=20) as client:
        yield client


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"]
    assert response.headers["x-flywheel-request-id"].startswith("req_")


FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_odd_bodies_never_get_a_5xx(http: httpx.Client, endpoint: str, body: Any) -> None:
    raw = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    check(http.post(endpoint, content=raw))


@settings(FUZZ, max_examples=40)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    field=st.sampled_from(["metadata", "messages", "response_format", "x_extra", "input"]),
    depth=st.integers(min_value=1, max_value=1100),
)
def test_deep_bodies_never_get_a_5xx(
    http: httpx.Client, endpoint: str, field: str, depth: int
) -> None:
    raw = f'{{"model": "small", "{field}": {nested_text(depth)}}}'
    check(http.post(endpoint, content=raw.encode()))


@settings(FUZZ, max_examples=30)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    number=st.sampled_from(
        ["1" * 400, "-" + "9" * 30, "1e308", "1e309", "-1e400", "0.0000000001e-400", "1E+2"]
    ),
    field=st.sampled_from(["max_tokens", "temperature", "n", "seed", "x_extra"]),
)
def test_huge_numbers_never_get_a_5xx(
    http: httpx.Client, endpoint: str, number: str, field: str
) -> None:
    raw = '{"model": "small", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi",'
    raw += f' "input": "hi", "{field}": {number}}}'
    check(http.post(endpoint, content=raw.encode()))


# Well-formed requests carrying hostile text: they reach the upstream and come back, so
# classification, templates, PII masking and the event see them too.
texts = st.text(st.characters(codec="utf-8"), max_size=40)
known_parts = {"text", "image_url", "input_audio", "file", "refusal"}
valid_parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": texts})}
    ),
    st.fixed_dictionaries(
        {"type": texts.filter(lambda t: t not in known_parts)}, optional={"x": values}
    ),
)
valid_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant"]),
            "content": st.one_of(texts, st.lists(valid_parts, min_size=1, max_size=3)),
        }
    ),
    min_size=1,
    max_size=3,
)
extra_keys = st.text(min_size=1, max_size=8).map(lambda k: "x_" + k)
extras = st.dictionaries(extra_keys, values, max_size=3)


@settings(FUZZ, max_examples=60)
@given(messages=valid_messages, extra=extras, user=texts)
def test_hostile_text_in_valid_requests_never_gets_a_5xx(
    http: httpx.Client, messages: list[Any], extra: dict[str, Any], user: str
) -> None:
    body = {**extra, "model": "small", "messages": messages, "user": user}
    raw = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    response = http.post("/v1/chat/completions", content=raw)
    check(response)
    responses_body = {**extra, "model": "small", "input": messages, "user": user}
    raw = json.dumps(responses_body, ensure_ascii=False, allow_nan=False).encode()
    check(http.post("/v1/responses", content=raw))
