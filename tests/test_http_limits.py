"""The HTTP edge under hostile clients (issue 13, findings 7, 8 and 10): header size and
count limits, header and body timeouts, JSON nesting, odd content parts, a failing event
build, and a client that disconnects while its upstream call is in flight.

A gateway of its own with short timeouts, in front of the session's mock upstream."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from gateway.config_loader import load_config
from gateway.state import AppState
from tests.support.processes import MockControl, Server, free_port, start_server

KEY = "sk-edge"
ADMIN = "sk-edge-admin"
ENV = {"T_EDGE_KEYS": KEY, "T_EDGE_ADMIN": ADMIN}
AUTH = {"authorization": f"Bearer {KEY}"}
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
BODY_TOTAL_TIMEOUT_S = 3.0
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def edge_yaml(mock_url: str, work: Path) -> str:
    return f"""
server: {{max_body_bytes: 65536, header_timeout_s: {HEADER_TIMEOUT_S},
          body_timeout_s: {BODY_TIMEOUT_S}, body_total_timeout_s: {BODY_TOTAL_TIMEOUT_S}}}
store: "sqlite:///{work / "flywheel.db"}"
events: {{flush_interval_ms: 20}}
providers:
  up: {{kind: openai, base_url: "{mock_url}/v1", read_timeout_s: 20}}
models:
  edge: {{provider: up, model: edge-mock, cost_per_mtok: {{input: 1.0, output: 2.0}}}}
  edge-slow: {{provider: up, model: edge-slow, cost_per_mtok: {{input: 1.0, output: 2.0}},
               retry: {{attempts: 0}}}}
  edge-embed: {{provider: up, model: edge-embed}}
tenants:
  edge: {{api_keys_env: T_EDGE_KEYS}}
admin: {{api_key_env: T_EDGE_ADMIN}}
"""


@pytest.fixture(scope="module")
def edge_config(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("edge")
    config = work / "flywheel.yaml"
    config.write_text(edge_yaml(mock_server.url, work))
    return config


@pytest.fixture(scope="module")
def edge(edge_config: Path) -> Iterator[Server]:
    port = free_port()
    args = ["-m", "gateway", "serve", "--config", str(edge_config), "--port", str(port)]
    log = edge_config.parent / f"gateway-{port}.log"
    # A generous start-up bound: imports alone take 15 s on a busy 2-core machine.
    server = start_server(args, port, log, "/readyz", env=ENV, timeout_s=120)
    yield server
    server.stop()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout_s`)."""
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def error_of(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"x-flywheel-request-id: req_" in head, head
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


# --- header size and count ------------------------------------------------------------


def send_huge_header(server: Server, size: int) -> bytes:
    """Send a request whose one header is `size` bytes, as far as the server reads it;
    return what the server answered before closing."""
    sock = connect(server)
    with sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: edge\r\nx-big: ")
        chunk = b"b" * 16384
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before we finished: what we expect
        return read_until_closed(sock, 10)


def test_a_1mib_header_is_431_and_the_connection_closes(edge: Server) -> None:
    response = send_huge_header(edge, 1024 * 1024)
    assert status_of(response) == 431, response[:200]
    assert error_of(response)["code"] == "request_headers_too_large"


def test_huge_headers_do_not_grow_the_servers_memory(edge: Server) -> None:
    process = psutil.Process(edge.process.pid)
    send_huge_header(edge, 1024 * 1024)  # warm up whatever a first refusal allocates
    before = process.memory_info().rss
    socks = []
    try:
        for _ in range(10):  # ten held connections, each sending 16 MiB of header
            sock = connect(edge)
            sock.setblocking(False)
            sock.send(b"GET /v1/models HTTP/1.1\r\nx-big: ")
            socks.append(sock)
        chunk = b"h" * 65536
        deadline = time.monotonic() + 10
        sent = [0] * len(socks)
        while time.monotonic() < deadline and min(sent) < 16 * 1024 * 1024:
            for i, sock in enumerate(socks):
                try:
                    sent[i] += sock.send(chunk)
                except BlockingIOError:
                    pass
                except OSError:
                    sent[i] = 16 * 1024 * 1024  # closed by the server
            time.sleep(0.001)
        grown_mb = (process.memory_info().rss - before) / 2**20
    finally:
        for sock in socks:
            sock.close()
    assert grown_mb < 20, f"the gateway grew by {grown_mb:.1f} MB"
    assert httpx.get(f"{edge.url}/v1/models", headers=AUTH).status_code == 200


def test_too_many_headers_is_431(edge: Server) -> None:
    headers = {**AUTH, **{f"x-h{i}": "v" for i in range(150)}}
    response = httpx.get(f"{edge.url}/v1/models", headers=headers)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_headers_too_large"
    assert response.headers["x-flywheel-request-id"].startswith("req_")


def test_headers_under_the_limits_pass(edge: Server) -> None:
    headers = {**AUTH, "x-junk": "j" * 20_000, **{f"x-h{i}": "v" for i in range(50)}}
    assert httpx.get(f"{edge.url}/v1/models", headers=headers).status_code == 200


# --- slow clients ---------------------------------------------------------------------


def test_slowloris_connections_are_closed_within_the_header_timeout(edge: Server) -> None:
    socks = [connect(edge) for _ in range(30)]
    started = time.monotonic()
    try:
        for sock in socks:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\n")
        closed_at: dict[int, float] = {}
        for sock in socks:
            sock.setblocking(False)
        while len(closed_at) < len(socks) and time.monotonic() - started < 10:
            for i, sock in enumerate(socks):
                if i in closed_at:
                    continue
                try:
                    sock.send(b"x-drip: 1\r\n")  # a header line now and then, never the end
                    if sock.recv(65536) == b"":
                        closed_at[i] = time.monotonic() - started
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[i] = time.monotonic() - started
            time.sleep(0.1)
    finally:
        for sock in socks:
            sock.close()
    assert len(closed_at) == len(socks), f"{len(socks) - len(closed_at)} still open after 10s"
    slowest = max(closed_at.values())
    assert HEADER_TIMEOUT_S * 0.9 <= slowest < HEADER_TIMEOUT_S + 3, slowest


def test_a_silent_connection_is_closed_within_the_header_timeout(edge: Server) -> None:
    with connect(edge) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, 10) == b""  # closed, nothing said
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_stalled_body_is_408_within_the_body_timeout(edge: Server) -> None:
    with connect(edge) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\n"
            b"authorization: Bearer " + KEY.encode() + b"\r\n"
            b"content-type: application/json\r\ncontent-length: 100\r\n\r\n"
            b'{"model": "edge", '
        )
        started = time.monotonic()
        response = read_until_closed(sock, 10)
        elapsed = time.monotonic() - started
    assert status_of(response) == 408, response[:200]
    assert error_of(response)["code"] == "request_timeout"
    assert BODY_TIMEOUT_S * 0.9 <= elapsed < BODY_TIMEOUT_S + 3, elapsed


def test_a_trickled_body_is_408_within_the_overall_body_timeout(edge: Server) -> None:
    with connect(edge) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\n"
            b"authorization: Bearer " + KEY.encode() + b"\r\n"
            b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        sock.setblocking(False)
        response = b""
        while time.monotonic() - started < 10:
            try:
                sock.send(b" ")  # a byte every 0.3 s: never idle for the idle timeout
                chunk = sock.recv(65536)
                if chunk == b"":
                    break
                response += chunk
            except BlockingIOError:
                pass
            except OSError:
                break
            time.sleep(0.3)
        elapsed = time.monotonic() - started
    assert status_of(response) == 408, response[:200]
    assert BODY_TOTAL_TIMEOUT_S * 0.9 <= elapsed < BODY_TOTAL_TIMEOUT_S + 3, elapsed


def test_the_gateway_still_serves_after_the_abuse(edge: Server) -> None:
    response = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        json={"model": "edge", "messages": OK_MESSAGES},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert '"level":"error"' not in edge.log().replace(" ", "")


# --- JSON nesting and content parts ---------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [100, 255, 600, 1023])
@pytest.mark.parametrize("field", ["metadata_x", "response_format", "tools"])
def test_deep_nesting_in_passthrough_fields_is_400(
    edge: Server, mock: MockControl, depth: int, field: str
) -> None:
    body: dict[str, Any] = {"model": "edge", "messages": OK_MESSAGES, field: nested(depth)}
    raw = orjson.dumps(body) if depth < 250 else _dumps_deep(body, field, depth)
    response = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={**AUTH, "content-type": "application/json"},
        content=raw,
        timeout=10,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "json_too_deep" and error["param"] == field
    assert response.headers["x-flywheel-request-id"].startswith("req_")
    assert mock.requests("edge-mock") == []


def _dumps_deep(body: dict[str, Any], field: str, depth: int) -> bytes:
    """orjson will not write past 254 levels: build the nested value's text by hand."""
    inner = b"".join(b'{"k":' if i % 2 == 0 else b"[" for i in reversed(range(depth)))
    outer = b"".join(b"}" if i % 2 == 0 else b"]" for i in range(depth))
    value = inner + b'"deep"' + outer
    rest = orjson.dumps({k: v for k, v in body.items() if k != field})
    return rest[:-1] + b',"' + field.encode() + b'":' + value + b"}"


def test_nesting_within_the_limit_passes(edge: Server) -> None:
    body = {"model": "edge", "messages": OK_MESSAGES, "metadata_x": nested(40)}
    response = httpx.post(f"{edge.url}/v1/chat/completions", headers=AUTH, json=body, timeout=10)
    assert response.status_code == 200, response.text


ODD_TYPES: list[Any] = [None, 7, 1.5, True, {"a": 1}, ["text"]]


@pytest.mark.parametrize("odd", ODD_TYPES, ids=repr)
def test_odd_content_part_types_are_400_before_any_upstream_call(
    edge: Server, mock: MockControl, odd: Any
) -> None:
    content = [{"type": "text", "text": "hi"}, {"type": odd, "text": "x"}]
    cases = [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": content}]},
         "messages[0].content[1].type"),
        ("/v1/responses", {"input": [{"role": "user", "content": content}]},
         "input[0].content[1].type"),
    ]  # fmt: skip
    for path, fields, param in cases:
        response = httpx.post(
            f"{edge.url}{path}", headers=AUTH, json={"model": "edge", **fields}, timeout=10
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
        assert response.headers["x-flywheel-request-id"].startswith("req_")
    assert mock.requests("edge-mock") == []  # nothing reached, nothing billed


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": [5]}]},
         "messages[0].content[0]"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]},
         "messages[0].content"),
        ("/v1/chat/completions",
         {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
         "messages[0].content[0].text"),
        ("/v1/chat/completions",
         {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
         "messages[0].content[0].image_url"),
        ("/v1/responses", {"input": [{"type": 5}]}, "input[0].type"),
        ("/v1/responses", {"input": 5}, "input"),
        ("/v1/completions", {"prompt": [None]}, "prompt"),
        ("/v1/completions", {"prompt": ["a", 5]}, "prompt[1]"),
        ("/v1/embeddings", {"input": [[1], [True]]}, "input[1][0]"),
    ],
)  # fmt: skip
def test_other_odd_shapes_are_400_naming_the_param(
    edge: Server, mock: MockControl, path: str, fields: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        f"{edge.url}{path}", headers=AUTH, json={"model": "edge", **fields}, timeout=10
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert mock.requests() == []


def test_unknown_string_part_types_still_pass_through(edge: Server, mock: MockControl) -> None:
    content = [{"type": "text", "text": "hi"}, {"type": "x_custom", "x_custom": {"a": 1}}]
    body = {"model": "edge", "messages": [{"role": "user", "content": content}]}
    response = httpx.post(f"{edge.url}/v1/chat/completions", headers=AUTH, json=body, timeout=10)
    assert response.status_code == 200, response.text
    (sent,) = mock.requests("edge-mock")
    assert orjson.loads(sent["body"])["messages"][0]["content"][1] == content[1]


# --- a client that leaves while its upstream call runs --------------------------------


def test_a_non_stream_client_that_disconnects_cancels_the_upstream_call(
    edge: Server, mock: MockControl
) -> None:
    mock.configure("edge-slow", latency_ms=4000)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers=AUTH,
            json={"model": "edge-slow", "messages": OK_MESSAGES},
            timeout=httpx.Timeout(10, read=0.5),
        )
    line = _wait_log_line(edge, "edge-slow", 3.5)
    logged_after = time.monotonic() - started
    assert line["status"] == 499 and line["cost_usd"] == 0 and line["output_tokens"] == 0
    assert logged_after < 3.5, "the upstream call ran on after the client left"
    assert len(mock.requests("edge-slow")) == 1


def _wait_log_line(server: Server, model: str, timeout_s: float) -> dict[str, Any]:
    """The gateway's `request` log line for the first request naming `model`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if model in line:
                parsed: dict[str, Any] = orjson.loads(line)
                if parsed.get("event") == "request" and parsed.get("model") == model:
                    return parsed
        time.sleep(0.05)
    raise AssertionError(f"no request log line for {model} after {timeout_s}s")


# --- the event cannot fail the request ------------------------------------------------


class _BrokenSink:
    def publish(self, event: object) -> None:
        raise RuntimeError("the event sink is broken")

    async def written(self, request_id: str) -> bool:
        return True


def _broken_build(*args: object, **kwargs: object) -> None:
    raise ValueError("cannot build this event")


@pytest.mark.parametrize("break_what", ["build", "publish"])
def test_a_failing_event_still_answers_200(
    edge_config: Path, monkeypatch: pytest.MonkeyPatch, break_what: str
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    state = AppState.build(load_config(str(edge_config)))
    if break_what == "build":
        monkeypatch.setattr("gateway.serving.inference.build_event", _broken_build)
    else:
        state.inference.events = _BrokenSink()
    response = asyncio.run(_one_request(state))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    counted = state.metrics.internal_errors.labels("event")._value.get()
    assert counted == 1


async def _one_request(state: AppState) -> httpx.Response:
    from gateway.app import build_app

    app = build_app(state)
    await state.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return await client.post(
                "/v1/chat/completions",
                headers=AUTH,
                json={"model": "edge", "messages": OK_MESSAGES},
                timeout=10,
            )
    finally:
        await state.close()
