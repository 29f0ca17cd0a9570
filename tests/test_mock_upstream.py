"""The mock upstream (benchmarks/mock_upstream), served for real on a loopback port.

Driven with the openai SDK for the OpenAI routes and with aiohttp for raw bodies, the
control API, early disconnects and pacing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from benchmarks.mock_upstream import MockConfig, ModelBehaviour, start_mock
from benchmarks.mock_upstream.behaviour import BehaviourError, load_config
from benchmarks.mock_upstream.cli import config_from_args, parse_args
from tests.support.processes import free_port, start_server

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
]
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello world!"}]  # 3 tokens


@dataclass
class Mock:
    url: str
    http: aiohttp.ClientSession
    client: openai.AsyncOpenAI

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.url}/_mock/{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def post(self, path: str, data: bytes, **headers: str) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}{path}", data=data, headers=headers) as resp:
            return resp.status, await resp.json()


async def _serve(config: MockConfig) -> AsyncIterator[Mock]:
    runner, port = await start_mock(config)
    url = f"http://127.0.0.1:{port}"
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=5)
    async with aiohttp.ClientSession() as http:
        yield Mock(url, http, client)
    await client.close()
    await runner.cleanup()


@pytest.fixture
async def mock() -> AsyncIterator[Mock]:
    async for served in _serve(MockConfig(default=ModelBehaviour(output_tokens=5))):
        yield served


async def test_chat_completion(mock: Mock) -> None:
    done = await mock.client.chat.completions.create(model="m", messages=USER)
    assert done.id.startswith("chatcmpl-mock-") and done.model == "m"
    assert done.choices[0].message.content == "m tok0 tok1 tok2 tok3 tok4"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (3, 5)
    assert done.usage.total_tokens == 8


async def test_chat_stream_one_token_per_chunk_with_usage(mock: Mock) -> None:
    stream = await mock.client.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["m tok0", " tok1", " tok2", " tok3", " tok4"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


async def test_n_max_tokens_and_stop(mock: Mock) -> None:
    capped = await mock.client.chat.completions.create(
        model="m",
        messages=USER,
        n=2,
        max_completion_tokens=2,
    )
    assert [c.message.content for c in capped.choices] == ["m tok0 tok1"] * 2
    assert {c.finish_reason for c in capped.choices} == {"length"}
    assert capped.usage is not None and capped.usage.completion_tokens == 4
    stopped = await mock.client.chat.completions.create(model="m", messages=USER, stop=[" tok2"])
    assert stopped.choices[0].message.content == "m tok0 tok1"
    assert stopped.choices[0].finish_reason == "stop"


async def test_fixed_reply_honours_the_cap_and_streams(mock: Mock) -> None:
    text = "Summary: three points, kept short."
    await mock.control("POST", "models/fixed", {"reply": text})
    whole = await mock.client.chat.completions.create(model="fixed", messages=USER)
    assert whole.choices[0].message.content == text
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    capped = await mock.client.chat.completions.create(model="fixed", messages=USER, max_tokens=2)
    assert capped.choices[0].message.content == "Summary: three"
    assert capped.choices[0].finish_reason == "length"
    stream = await mock.client.chat.completions.create(model="fixed", messages=USER, stream=True)
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == text
    with pytest.raises(BehaviourError, match="'reply' must be a string"):
        ModelBehaviour().merged({"reply": 3})


async def test_tool_calls_plain_and_streamed(mock: Mock) -> None:
    done = await mock.client.chat.completions.create(model="m", messages=USER, tools=TOOLS)
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.function.name, call.function.arguments) == ("lookup", '{"echo": true}')  # type: ignore[union-attr]
    assert done.choices[0].finish_reason == "tool_calls"
    stream = await mock.client.chat.completions.create(
        model="m",
        messages=USER,
        tools=TOOLS,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls]
    assert deltas[0].function.name == "lookup"  # type: ignore[union-attr]
    assert "".join(d.function.arguments or "" for d in deltas) == '{"echo": true}'  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    plain = await mock.client.chat.completions.create(
        model="m",
        messages=USER,
        tools=TOOLS,
        tool_choice="none",
    )
    assert plain.choices[0].message.tool_calls is None


async def test_completions(mock: Mock) -> None:
    done = await mock.client.completions.create(model="c", prompt="abcdefgh", max_tokens=3)
    assert done.choices[0].text == "c tok0 tok1 tok2" and done.choices[0].finish_reason == "length"
    assert done.usage is not None and done.usage.prompt_tokens == 2
    stream = await mock.client.completions.create(model="c", prompt="x", stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == "c tok0 tok1 tok2 tok3 tok4"


async def test_embeddings(mock: Mock) -> None:
    one = await mock.client.embeddings.create(model="e", input="hello")  # SDK asks for base64
    many = await mock.client.embeddings.create(model="e", input=["hello", "world"])
    assert len(one.data) == 1 and len(many.data) == 2
    assert len(one.data[0].embedding) == 8
    assert many.data[0].embedding == pytest.approx(one.data[0].embedding, abs=1e-6)
    assert many.data[1].embedding != many.data[0].embedding
    status, raw = await mock.post("/v1/embeddings", b'{"model": "e", "input": "hello"}')
    assert status == 200 and raw["data"][0]["embedding"] == pytest.approx(one.data[0].embedding)


async def test_responses_plain_and_streamed(mock: Mock) -> None:
    done = await mock.client.responses.create(model="r", input="hello world!")
    assert done.output_text == "r tok0 tok1 tok2 tok3 tok4"
    Response.model_validate(done.model_dump())
    assert done.usage is not None and done.usage.input_tokens == 3
    stream = await mock.client.responses.create(model="r", input="hi", stream=True)
    events = [event async for event in stream]
    for event in events:
        EVENTS.validate_python(event.model_dump())
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 5
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "r tok0 tok1 tok2 tok3 tok4"
    tool = await mock.client.responses.create(
        model="r",
        input="hi",
        tools=[{"type": "function", "name": "find", "parameters": {}}],  # type: ignore[list-item]
    )
    assert tool.output[0].type == "function_call" and tool.output[0].name == "find"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("500", openai.InternalServerError),
        ("400", openai.BadRequestError),
        ("429", openai.RateLimitError),
        ("context_length_exceeded", openai.BadRequestError),
        ("drop", openai.APIConnectionError),
        ("drop_mid_stream", openai.APIConnectionError),  # non-stream: same as drop
        ("timeout", openai.APITimeoutError),
    ],
)
async def test_forced_failures(mock: Mock, kind: str, error: type[Exception]) -> None:
    await mock.control("POST", "models/m", {"hang_s": 1})
    await mock.control("POST", "fail", {"model": "m", "kind": kind, "count": 2})
    client = mock.client.with_options(timeout=0.3)
    for _ in range(2):
        with pytest.raises(error) as caught:
            await client.chat.completions.create(model="m", messages=USER)
    if kind == "429":
        assert caught.value.response.headers["retry-after"] == "1"  # type: ignore[attr-defined]
    done = await client.chat.completions.create(model="m", messages=USER)
    assert done.choices[0].message.content
    stats = await mock.control("GET", "stats")
    assert stats["m"]["failures"] == 2 and stats["m"]["requests"] == 3


async def test_drop_mid_stream_sends_some_chunks_then_aborts(mock: Mock) -> None:
    await mock.control("POST", "fail", {"model": "m", "kind": "drop_mid_stream"})
    stream = await mock.client.chat.completions.create(model="m", messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["m tok0", " tok1", " tok2"]
    stats = (await mock.control("GET", "stats"))["m"]
    assert (stats["streams_started"], stats["streams_completed"]) == (1, 0)


async def test_failure_rate_is_seeded(mock: Mock) -> None:
    body = orjson.dumps({"model": "f", "messages": USER})

    async def pattern() -> list[int]:
        await mock.control("POST", "models/f", {"failure_rate": 0.5, "failure_kind": "500"})
        return [(await mock.post("/v1/chat/completions", body))[0] for _ in range(20)]

    first = await pattern()
    assert set(first) == {200, 500}
    await mock.control("POST", "reset")
    assert await pattern() == first


async def test_context_window(mock: Mock) -> None:
    await mock.control("POST", "models/m", {"context_window": 2})
    with pytest.raises(openai.BadRequestError) as caught:
        await mock.client.chat.completions.create(model="m", messages=USER)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert error["message"].startswith("This model's maximum context length is 2")
    short: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": [{"type": "text", "text": "abcd"}]}
    ]
    assert await mock.client.chat.completions.create(model="m", messages=short)


async def test_request_log_is_exact(mock: Mock) -> None:
    raw = '{"model":"m",  "messages": [{"role":"user","content":"héllo \\u00e9"}], "x": 1.50}'
    status, _ = await mock.post(
        "/v1/chat/completions", raw.encode(), **{"X-Trace": "t1", "User-Agent": "ua"}
    )
    assert status == 200
    await mock.client.embeddings.create(model="e", input="hi", extra_headers={"x-tenant": "a"})
    log = await mock.control("GET", "requests")
    assert [(e["path"], e["model"]) for e in log] == [
        ("/v1/chat/completions", "m"),
        ("/v1/embeddings", "e"),
    ]
    assert log[0]["body"] == raw and log[0]["headers"]["x-trace"] == "t1"
    assert "user-agent" not in log[0]["headers"]
    assert log[1]["headers"]["authorization"] == "Bearer x" and log[1]["headers"]["x-tenant"] == "a"
    assert orjson.loads(log[1]["body"])["input"] == "hi"
    await mock.control("DELETE", "requests")
    assert await mock.control("GET", "requests") == [] and await mock.control("GET", "stats") == {}


async def test_stream_cancelled_by_client_is_counted(mock: Mock) -> None:
    await mock.control("POST", "models/slow", {"tokens_per_s": 50, "output_tokens": 100})
    body = orjson.dumps({"model": "slow", "messages": USER, "stream": True})
    async with mock.http.post(f"{mock.url}/v1/chat/completions", data=body) as resp:
        assert b"slow tok0" in await resp.content.readline()
    for _ in range(100):
        stats = (await mock.control("GET", "stats"))["slow"]
        if stats["streams_cancelled"]:
            break
        await asyncio.sleep(0.02)
    assert (stats["streams_started"], stats["streams_cancelled"]) == (1, 1)
    assert stats["streams_completed"] == 0


async def test_pacing_ttft_and_tokens_per_s(mock: Mock) -> None:
    await mock.control("POST", "models/p", {"ttft_ms": 150, "tokens_per_s": 20, "output_tokens": 4})
    await mock.control("POST", "models/l", {"latency_ms": 100})
    body = orjson.dumps({"model": "p", "messages": USER, "stream": True})
    start = time.monotonic()
    arrivals: list[float] = []
    async with mock.http.post(f"{mock.url}/v1/chat/completions", data=body) as resp:
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content"' in line:
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 4
    assert arrivals[0] >= 0.12 and arrivals == sorted(arrivals)
    assert arrivals[-1] - arrivals[0] >= 0.12  # 3 gaps of 50 ms
    start = time.monotonic()
    await mock.client.chat.completions.create(model="l", messages=USER)
    assert time.monotonic() - start >= 0.09


async def test_bad_input_gets_openai_errors(mock: Mock) -> None:
    for raw, param in [
        (b"{not json", None),
        (b"[1]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "m", "messages": "x"}', "messages"),
        (b'{"model": "m", "messages": [], "n": 0}', "n"),
    ]:
        status, body = await mock.post("/v1/chat/completions", raw)
        assert status == 400 and body["error"]["param"] == param, raw
    for path, payload in [("models/m", {"latency": 1}), ("fail", {"model": "m", "kind": "418"})]:
        async with mock.http.post(f"{mock.url}/_mock/{path}", json=payload) as resp:
            assert resp.status == 400
    async with mock.http.get(f"{mock.url}/healthz") as resp:
        assert resp.status == 200


async def test_api_key_and_models() -> None:
    config = MockConfig(models={"a": ModelBehaviour(), "b": ModelBehaviour()}, api_key="k1")
    async for served in _serve(config):
        with pytest.raises(openai.AuthenticationError):
            await served.client.models.list()
        good = served.client.with_options(api_key="k1")
        assert [m.id async for m in good.models.list()] == ["a", "b"]


def test_config_loading(tmp_path: Path) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text("default: {output_tokens: 7}\nmodels: {big: {failure_kind: 500}}\nseed: 3\n")
    config = load_config(path)
    assert config.models["big"] == ModelBehaviour(output_tokens=7, failure_kind="500")
    assert config.seed == 3
    with pytest.raises(BehaviourError, match="nope"):
        MockConfig.from_dict({"default": {"nope": 1}})
    args = parse_args(["--config", str(path), "--latency-ms", "5", "--log-size", "0"])
    merged = config_from_args(args)
    assert merged.default.latency_ms == 5.0 and merged.default.output_tokens == 7
    assert merged.log_size == 0


def test_cli_subprocess(tmp_path: Path) -> None:
    port = free_port()
    args = ["-m", "benchmarks.mock_upstream", "--port", str(port), "--output-tokens", "2"]
    server = start_server(args, port, tmp_path / "mock.log", "/healthz")
    try:
        body = {"model": "z", "messages": USER}
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=5).json()
        assert reply["choices"][0]["message"]["content"] == "z tok0 tok1"
    finally:
        server.stop()
    assert f"mock upstream listening on http://127.0.0.1:{port}" in server.log()
