"""The mock upstream's OpenAI routes: generation endpoints, injected failures, streaming.

Hot path (chat completion, log disabled, no latency): read the body, one orjson parse,
one dict lookup for the behaviour, one orjson dump. `build_app` wires these routes, the
control API (control.py) and the shared state (state.py); `start_mock` serves it in-process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from benchmarks.mock_upstream.behaviour import MockConfig
from benchmarks.mock_upstream.behaviour import ModelBehaviour as Behaviour
from benchmarks.mock_upstream.control import add_control_routes
from benchmarks.mock_upstream.plan import JSON, RequestError, reply_pieces, with_reply
from benchmarks.mock_upstream.responses import (
    CHAT,
    COMPLETIONS,
    Endpoint,
    Frames,
    embeddings_body,
    error_body,
    models_body,
)
from benchmarks.mock_upstream.responses_api import RESPONSES
from benchmarks.mock_upstream.state import STATE, MockState, ModelStats

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


_MALFORMED = object()


@dataclass(slots=True)
class _Call:
    body: JSON
    model: str
    behaviour: Behaviour
    stats: ModelStats
    abort_after: int | None = None  # drop_mid_stream: frames to send before the abort


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=JSON_HEADERS)


def _error(
    status: int,
    message: str,
    kind: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        body=error_body(message, kind, param, code),
        status=status,
        headers={**JSON_HEADERS, **(headers or {})},
    )


async def _admit(request: web.Request) -> _Call | web.Response:
    """Read, log and check a /v1 request; an error response when it is refused."""
    state = request.app[STATE]
    raw = await request.read()
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _MALFORMED
    model = body.get("model") if isinstance(body, dict) else None
    state.record(request, raw, model if isinstance(model, str) else None)
    if state.auth is not None and request.headers.get("Authorization") != state.auth:
        return _error(
            401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
        )
    if body is _MALFORMED:
        return _error(
            400, "We could not parse the JSON body of your request.", "invalid_request_error"
        )
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.", "invalid_request_error")
    if not isinstance(model, str) or not model:
        return _error(400, "You must provide a model parameter.", "invalid_request_error", "model")
    stats = state.stats_for(model)
    stats.requests += 1
    return _Call(body, model, state.table.get(model), stats)


def _drop(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the connection (after flushing what was written); nothing more reaches the
    client, so the response returned to aiohttp is never sent."""
    if request.transport is not None:
        request.transport.close()
    if response is not None:
        return response
    return web.Response(status=500)


async def _fault(
    request: web.Request, call: _Call, prompt_tokens: int, param: str, stream: bool
) -> web.StreamResponse | None:
    """Apply this request's failure: a response to send instead, or None to answer."""
    b = call.behaviour
    kind = request.app[STATE].table.failure_for(call.model, b)
    if kind is None and b.context_window and prompt_tokens > b.context_window:
        kind = "context_length_exceeded"
    if kind is None:
        return None
    call.stats.failures += 1
    if kind == "timeout":
        await asyncio.sleep(b.hang_s)
        return None
    if kind == "drop_mid_stream" and stream:
        call.abort_after = b.fail_after_chunks
        return None
    if kind in ("drop", "drop_mid_stream"):
        return _drop(request)
    if kind == "429":
        retry = f"{b.retry_after_s:g}"
        return _error(
            429,
            "Rate limit reached (mock upstream).",
            "requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": retry},
        )
    if kind == "500":
        return _error(500, "The server had an error (mock upstream).", "server_error")
    if kind == "400":
        return _error(400, "Invalid request (mock upstream).", "invalid_request_error")
    limit = b.context_window or max(prompt_tokens - 1, 0)
    return _error(
        400,
        f"This model's maximum context length is {limit} tokens. However, your "
        f"{param} resulted in {prompt_tokens} tokens. Please reduce the length of "
        f"the {param}.",
        "invalid_request_error",
        param,
        "context_length_exceeded",
    )


async def _stream(request: web.Request, call: _Call, frames: Frames) -> web.StreamResponse:
    """Send SSE frames: the first after ttft_ms, the rest paced at tokens_per_s."""
    b, stats = call.behaviour, call.stats
    chunks, tail = frames
    if call.abort_after is not None:
        chunks = chunks[: call.abort_after]
    stats.streams_started += 1
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        if b.ttft_ms:
            await asyncio.sleep(b.ttft_ms / 1000)
        if b.tokens_per_s > 0 and len(chunks) > 1:
            loop = asyncio.get_running_loop()
            start, interval = loop.time(), 1.0 / b.tokens_per_s
            for i, chunk in enumerate(chunks):
                if i:
                    await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
                await response.write(chunk)
            chunks = []
        if call.abort_after is not None:
            if chunks:
                await response.write(b"".join(chunks))
            return _drop(request, response)
        await response.write_eof(b"".join(chunks) + tail)
    except ConnectionResetError:
        stats.streams_cancelled += 1
        return response
    except asyncio.CancelledError:
        stats.streams_cancelled += 1
        raise
    stats.streams_completed += 1
    return response


async def _generate(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    call = await _admit(request)
    if isinstance(call, web.StreamResponse):
        return call
    reply = call.behaviour.reply
    output_tokens = len(reply_pieces(reply)) if reply else call.behaviour.output_tokens
    try:
        plan = endpoint.plan(call.body, call.model, output_tokens)
    except RequestError as exc:
        return _error(400, str(exc), "invalid_request_error", exc.param)
    if reply and plan.tool is None and not call.model.startswith("echo"):
        plan = with_reply(plan, reply)
    failed = await _fault(request, call, plan.prompt_tokens, endpoint.prompt_param, plan.stream)
    if failed is not None:
        return failed
    seq = request.app[STATE].next_seq()
    if plan.stream:
        return await _stream(request, call, endpoint.stream(plan, seq))
    if call.behaviour.latency_ms:
        await asyncio.sleep(call.behaviour.latency_ms / 1000)
    return web.Response(body=orjson.dumps(endpoint.body(plan, seq)), headers=JSON_HEADERS)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, CHAT)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, COMPLETIONS)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _generate(request, RESPONSES)


async def embeddings(request: web.Request) -> web.StreamResponse:
    call = await _admit(request)
    if isinstance(call, web.StreamResponse):
        return call
    try:
        body = embeddings_body(call.body, call.model)
    except RequestError as exc:
        return _error(400, str(exc), "invalid_request_error", exc.param)
    failed = await _fault(request, call, body["usage"]["prompt_tokens"], "input", False)
    if failed is not None:
        return failed
    if call.behaviour.latency_ms:
        await asyncio.sleep(call.behaviour.latency_ms / 1000)
    return _json(body)


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.record(request, b"", None)
    if state.auth is not None and request.headers.get("Authorization") != state.auth:
        return _error(
            401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
        )
    return web.Response(body=models_body(state.table.models), headers=JSON_HEADERS)


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def build_app(config: MockConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = MockState(config)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    add_control_routes(app)
    return app


async def start_mock(
    config: MockConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve the mock in this process; returns the runner (call `cleanup()`) and the port."""
    runner = web.AppRunner(build_app(config), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound
