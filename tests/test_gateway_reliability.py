"""Retries, fallbacks, circuit breakers and streaming failures, through real servers.

Each test drives its own models (see tests/support/gateway_config.py), forcing failures
on the mock upstream and reading the mock's request log to prove what reached it.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.processes import MockControl, Server

USER = [{"role": "user", "content": "hi"}]


def ask(client: openai.OpenAI, model: str, **kwargs: object) -> tuple[str, dict[str, str]]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=USER, **kwargs)
    completion = raw.parse()
    return completion.choices[0].message.content or "", dict(raw.headers)


def test_retry_same_model_on_500(client: openai.OpenAI, mock: MockControl) -> None:
    mock.fail("fb500", "500", count=1)
    _, headers = ask(client, "fb500")
    assert headers["x-flywheel-route"] == "fb500"
    assert headers["x-flywheel-attempts"] == "2" and headers["x-flywheel-fallbacks"] == "0"


def test_fallback_after_retries_on_500(client: openai.OpenAI, mock: MockControl) -> None:
    mock.fail("fb500", "500", count=2)  # first try and its one retry
    _, headers = ask(client, "fb500")
    assert headers["x-flywheel-route"] == "fb500-b" and headers["x-flywheel-fallbacks"] == "1"
    assert len(mock.requests("fb500")) == 2 and len(mock.requests("fb500-b")) == 1


def test_429_retry_after_is_honoured(client: openai.OpenAI, mock: MockControl) -> None:
    mock.configure("fb429", retry_after_s=1)
    mock.fail("fb429", "429", count=1)
    started = time.monotonic()
    _, headers = ask(client, "fb429")
    assert time.monotonic() - started >= 0.9  # waited as the upstream asked
    assert headers["x-flywheel-route"] == "fb429" and headers["x-flywheel-attempts"] == "2"


def test_429_with_a_long_retry_after_falls_back_at_once(
    client: openai.OpenAI, mock: MockControl
) -> None:
    mock.configure("fb429", retry_after_s=60)
    mock.fail("fb429", "429", count=1)
    started = time.monotonic()
    _, headers = ask(client, "fb429")
    assert time.monotonic() - started < 5
    assert headers["x-flywheel-route"] == "fb429-b"


def test_timeout_falls_back(client: openai.OpenAI, mock: MockControl) -> None:
    mock.configure("fbtimeout", hang_s=5)
    mock.fail("fbtimeout", "timeout", count=1)
    started = time.monotonic()
    _, headers = ask(client, "fbtimeout")
    assert time.monotonic() - started < 3  # the model's 0.5 s timeout, not the 5 s hang
    assert headers["x-flywheel-route"] == "fbtimeout-b"


def test_connection_drop_is_retried_then_falls_back(
    client: openai.OpenAI, mock: MockControl
) -> None:
    mock.fail("fbdrop", "drop", count=2)
    _, headers = ask(client, "fbdrop")
    assert headers["x-flywheel-route"] == "fbdrop-b" and headers["x-flywheel-attempts"] == "3"


def test_unreachable_provider_falls_back(client: openai.OpenAI) -> None:
    _, headers = ask(client, "fbdead")
    assert headers["x-flywheel-route"] == "fbdead-b"


def test_client_errors_are_not_retried_nor_fallen_back(
    client: openai.OpenAI, mock: MockControl
) -> None:
    mock.fail("reject", "400", count=1)
    with pytest.raises(openai.BadRequestError):
        ask(client, "reject")
    assert len(mock.requests("reject")) == 1 and not mock.requests("reject-b")


def test_circuit_breaker_opens_skips_and_closes(
    client: openai.OpenAI, mock: MockControl, gateway: Server
) -> None:
    mock.fail("brk", "500", count=2)
    for _ in range(2):  # two failures: the breaker (threshold 2) opens
        assert ask(client, "brk")[1]["x-flywheel-route"] == "brk-b"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'flywheel_circuit_breaker_state{route="brk"} 2.0' in metrics
    for _ in range(3):  # open: skipped without being called
        assert ask(client, "brk")[1]["x-flywheel-route"] == "brk-b"
    assert len(mock.requests("brk")) == 2
    time.sleep(1.1)  # cooldown over: one probe goes through, succeeds, and closes it
    assert ask(client, "brk")[1]["x-flywheel-route"] == "brk"
    assert ask(client, "brk")[1]["x-flywheel-route"] == "brk"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'flywheel_circuit_breaker_state{route="brk"} 0.0' in metrics


def test_context_window_fallback_skips_models_no_larger(
    client: openai.OpenAI, mock: MockControl
) -> None:
    mock.configure("ctx-small", context_window=50)
    long = [{"role": "user", "content": "word " * 400}]
    raw = client.chat.completions.with_raw_response.create(model="ctx-small", messages=long)
    assert raw.headers["x-flywheel-route"] == "ctx-big"
    assert len(mock.requests("ctx-small")) == 1
    assert not mock.requests("ctx-mid")  # its window (40) is smaller than the one that failed


def test_context_too_long_for_every_model_is_a_400(
    client: openai.OpenAI, mock: MockControl
) -> None:
    mock.configure("down-only", context_window=10)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="down-only", messages=[{"role": "user", "content": "word " * 100}]
        )
    assert info.value.code == "context_length_exceeded"


def test_everything_down_is_a_clear_error(client: openai.OpenAI, mock: MockControl) -> None:
    mock.fail("down-only", "500", count=1)
    with pytest.raises(openai.APIStatusError) as info:
        ask(client, "down-only")
    assert info.value.status_code == 502
    assert info.value.response.json()["error"]["type"] == "upstream_error"


def test_stream_failure_before_first_chunk_falls_back(
    client: openai.OpenAI, mock: MockControl
) -> None:
    mock.fail("sfb", "500", count=2)
    with client.chat.completions.with_streaming_response.create(
        model="sfb", messages=USER, stream=True
    ) as response:
        assert response.headers["x-flywheel-route"] == "sfb-b"
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_stream_failure_after_first_chunk_ends_with_an_error_event(
    client: openai.OpenAI, mock: MockControl, gateway_log: object
) -> None:
    mock.configure("smid", fail_after_chunks=3)
    mock.fail("smid", "drop_mid_stream", count=1)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="smid", messages=USER, stream=True):
            received.append(chunk)
    assert len(received) == 3
    assert "dropped" in str(info.value.message)
    assert not mock.requests("smid-b")  # too late to fall back: the client had data


def test_client_disconnect_cancels_the_upstream(gateway: Server, mock: MockControl) -> None:
    mock.configure("mock-large", tokens_per_s=20, output_tokens=200)
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": "Bearer sk-test-main"},
        json={"model": "large", "messages": USER, "stream": True},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if mock.stats().get("mock-large", {}).get("streams_cancelled") == 1:
            break
        time.sleep(0.05)
    assert mock.stats()["mock-large"]["streams_cancelled"] == 1
