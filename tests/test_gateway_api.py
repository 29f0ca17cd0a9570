"""The OpenAI SDK against a real gateway and a real mock upstream: every endpoint,
streaming and not, bodies passed through untouched, headers that say what happened."""

from __future__ import annotations

import json

import httpx
import openai

from tests.support.gateway_config import MAIN_KEY, OTHER_KEY
from tests.support.processes import MockControl, Server

USER = [{"role": "user", "content": "Say hello"}]


def test_chat_non_streaming(client: openai.OpenAI, mock: MockControl) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="small", messages=USER, temperature=0.2, seed=7, user="u-1"
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens == 8
    assert raw.headers["x-flywheel-route"] == "small"
    assert raw.headers["x-flywheel-fallbacks"] == "0"
    assert raw.headers["x-flywheel-request-id"].startswith("req_")
    assert float(raw.headers["x-flywheel-overhead-ms"]) >= 0
    [sent] = mock.requests("mock-small")
    body = json.loads(sent["body"])
    # untouched except the model name, which becomes the upstream's
    assert body == {
        "model": "mock-small",
        "messages": USER,
        "temperature": 0.2,
        "seed": 7,
        "user": "u-1",
    }
    # the upstream gets its own opaque id, never the one tenants give /v1/feedback
    upstream_id = sent["headers"]["x-request-id"]
    assert upstream_id.startswith("fwu-")
    assert raw.headers["x-flywheel-request-id"].removeprefix("req_") not in upstream_id


def test_chat_streaming_chunk_by_chunk(client: openai.OpenAI, mock: MockControl) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="small", messages=USER, stream=True
    ) as response:
        assert response.headers["x-flywheel-route"] == "small"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split()[-1] == "tok7"
    # the gateway asked for usage for its own accounting, and hid that chunk
    assert all(c.usage is None for c in chunks)
    [sent] = mock.requests("mock-small")
    assert json.loads(sent["body"])["stream_options"] == {"include_usage": True}


def test_stream_usage_requested_by_the_client_is_kept(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="small", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_tools_and_response_format_pass_through(client: openai.OpenAI, mock: MockControl) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "find",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="small",
        messages=USER,
        tools=tools,
        tool_choice="auto",
        n=2,
        response_format={"type": "json_object"},
        logprobs=True,
        stop=["\n\n"],
    )
    assert len(completion.choices) == 2
    call = completion.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "lookup"
    body = json.loads(mock.requests("mock-small")[0]["body"])
    assert body["tools"] == tools and body["tool_choice"] == "auto" and body["n"] == 2
    assert body["response_format"] == {"type": "json_object"} and body["stop"] == ["\n\n"]


def test_completions_and_embeddings(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="small", prompt="Once upon", max_tokens=5)
    assert completion.choices[0].text
    streamed = list(client.completions.create(model="small", prompt="Once", stream=True))
    assert streamed
    embedding = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(embedding.data) == 2 and len(embedding.data[0].embedding) == 8


def test_responses_passed_through_to_a_provider_that_speaks_it(
    client: openai.OpenAI, mock: MockControl
) -> None:
    response = client.responses.create(model="small", input="Say hello", instructions="Be brief")
    assert response.output_text
    [sent] = mock.requests("mock-small")
    assert sent["path"] == "/v1/responses"
    events = list(client.responses.create(model="small", input="Say hello", stream=True))
    assert events[-1].type == "response.completed"


def test_responses_translated_for_a_chat_only_provider(
    client: openai.OpenAI, mock: MockControl
) -> None:
    response = client.responses.create(model="chat-only", input="Say hello", instructions="Brief")
    assert response.output_text.split()[-1] == "tok7"
    assert response.usage is not None and response.usage.output_tokens == 8
    [sent] = mock.requests("mock-chat-only")
    assert sent["path"] == "/v1/chat/completions"
    assert json.loads(sent["body"])["messages"][0] == {"role": "system", "content": "Brief"}
    events = list(client.responses.create(model="chat-only", input="Say hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas.split()[-1] == "tok7"


def test_litellm_provider_through_its_sdk(client: openai.OpenAI, mock: MockControl) -> None:
    completion = client.chat.completions.create(model="lite", messages=USER)
    assert completion.choices[0].message.content
    chunks = list(client.chat.completions.create(model="lite", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(mock.requests("mock-lite")) == 2


def test_models_lists_what_the_tenant_may_use(gateway: Server) -> None:
    def ids(key: str) -> set[str]:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        return {m.id for m in client.models.list()}

    assert "private" in ids(MAIN_KEY)
    assert "private" not in ids(OTHER_KEY) and "small" in ids(OTHER_KEY)


def test_health_ready_and_metrics(gateway: Server, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="small", messages=USER)
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in (
        "flywheel_requests_total",
        "flywheel_request_duration_seconds_bucket",
        "flywheel_time_to_first_token_seconds",
        "flywheel_upstream_duration_seconds",
        "flywheel_gateway_overhead_seconds",
        "flywheel_tokens_total",
        "flywheel_cost_usd_total",
        "flywheel_circuit_breaker_state",
        "flywheel_rejected_requests_total",
        "flywheel_upstream_retries_total",
        "flywheel_fallbacks_total",
    ):
        assert name in text, name
    assert (
        'flywheel_requests_total{endpoint="chat/completions",model="small",route="small",'
        'status="200",tenant="main"}' in text
    )
