"""Hostile and malformed input: always OpenAI's error body with the right status,
never a 500, and the gateway keeps serving."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.gateway_config import MAIN_KEY
from tests.support.processes import Server

AUTH = {"authorization": f"Bearer {MAIN_KEY}", "content-type": "application/json"}
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def post(
    gateway: Server,
    body: bytes | dict[str, object],
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return httpx.post(f"{gateway.url}{path}", content=content, headers=headers or AUTH, timeout=10)


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    assert response.headers["x-flywheel-request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b'{"model": "small", "messages": [', 400, None),
        (b"not json at all", 400, None),
        (b"", 400, None),
        (b"[1, 2, 3]", 400, None),
        (b'{"model": "small", "messages": "hello"}', 400, "messages"),
        ({"model": "small"}, 400, "messages"),
        ({"model": "small", "messages": []}, 400, "messages"),
        ({"model": 42, "messages": OK_MESSAGES}, 400, "model"),
        ({"model": "small", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0]"),
        ({"model": "small", "messages": [{"content": "x"}]}, 400, "messages[0]"),
        ({"model": "small", "messages": [{"role": "user"}]}, 400, "messages[0].content"),
        (
            {"model": "small", "messages": [{"role": "tool", "content": "x"}]},
            400,
            "messages[0].tool_call_id",
        ),
        ({"model": "small", "messages": OK_MESSAGES, "max_tokens": -5}, 400, "max_tokens"),
        ({"model": "small", "messages": OK_MESSAGES, "temperature": 9}, 400, "temperature"),
        ({"model": "small", "messages": OK_MESSAGES, "n": 0}, 400, "n"),
        ({"model": "small", "messages": OK_MESSAGES, "stream": "yes"}, 400, "stream"),
        (
            {"model": "small", "messages": OK_MESSAGES, "tools": [{"type": "function"}]},
            400,
            "tools[0].function",
        ),
        ({"model": "nope", "messages": OK_MESSAGES}, 404, "model"),
    ],
)
def test_bad_chat_requests(
    gateway: Server, body: bytes | dict[str, object], status: int, param: str | None
) -> None:
    assert_error(post(gateway, body), status, param)


def test_invalid_utf8_is_400(gateway: Server) -> None:
    assert_error(
        post(gateway, b'{"model": "small", "messages": [{"role": "user", "content": "\xff\xfe"}]}'),
        400,
    )


def test_body_over_the_limit_is_413(gateway: Server) -> None:
    huge = {"model": "small", "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_error(post(gateway, huge), 413)


def test_chunked_body_over_the_limit_is_413(gateway: Server) -> None:
    def chunks():  # no content-length: the limit is enforced while reading
        yield b'{"model": "small", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=chunks(), headers=AUTH)
    assert_error(response, 413)


def test_other_endpoints_validate_too(gateway: Server) -> None:
    assert_error(post(gateway, {"model": "small"}, "/v1/completions"), 400, "prompt")
    assert_error(post(gateway, {"model": "embed"}, "/v1/embeddings"), 400, "input")
    assert_error(post(gateway, {"model": "small"}, "/v1/responses"), 400, "input")
    assert_error(
        post(
            gateway, {"model": "chat-only", "input": [{"type": "web_search_call"}]}, "/v1/responses"
        ),
        400,
    )


def test_unknown_path_and_method(gateway: Server) -> None:
    response = httpx.get(f"{gateway.url}/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
    response = httpx.get(f"{gateway.url}/v1/chat/completions", headers=AUTH)
    assert response.status_code == 405 and "error" in response.json()


def test_very_long_header_values(gateway: Server) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={**AUTH, "authorization": "Bearer " + "k" * 60_000},
        json={"model": "small", "messages": OK_MESSAGES},
    )
    assert response.status_code in (400, 401, 431)
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={**AUTH, "x-junk": "j" * 60_000},
        json={"model": "small", "messages": OK_MESSAGES},
    )
    assert response.status_code in (200, 400, 431)


def test_garbage_bytes_on_the_socket_do_not_hurt(gateway: Server) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00garbage\r\n\r\n")
        sock.recv(1024)
    assert post(gateway, {"model": "small", "messages": OK_MESSAGES}).status_code == 200


def test_gateway_keeps_serving_and_never_500s(gateway: Server) -> None:
    assert post(gateway, {"model": "small", "messages": OK_MESSAGES}).status_code == 200
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'status="500"' not in metrics
    assert '"level": "error"' not in gateway.log() and '"level":"error"' not in gateway.log()
