"""No tenant stalls another (issue 13, finding 1): while tenant A sends a megabyte prompt
dense with personal data, megabytes of name-like text, or 100,000 short messages, tenant
B's ordinary request still completes in under a second. A gets either a correctly redacted
answer or a clear OpenAI-format error, never a 500, and no raw value reaches the upstream.
Limits are checked before any of that work, and a refused request gives its admission back.

Real processes on loopback: the session's mock upstream and a gateway of this module's own
(bodies up to 8 MiB; scan deadline raised so a slow CI machine finishes A's scan)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import make_client
from tests.support.hostile import many_messages, name_like, pii_dense
from tests.support.processes import MockControl, Server, free_port, start_server

ENV = {"ISO_A": "sk-iso-a", "ISO_B": "sk-iso-b", "ISO_C": "sk-iso-c", "ISO_ADMIN": "sk-iso-adm"}
CONFIG = """
server: {{max_body_bytes: 8388608}}
scan: {{deadline_s: 60, max_chars: {max_chars}}}
store: "sqlite:///{work}/f.db"
events: {{flush_interval_ms: 20}}
policies_dir: "{work}/policies"
templates_dir: "{work}/templates"
providers:
  up: {{kind: openai, base_url: "{mock}/v1", read_timeout_s: 60}}
models:
  iso-a: {{provider: up, model: iso-a}}
  iso-b: {{provider: up, model: iso-b}}
tenants:
  a: {{api_keys_env: ISO_A}}
  b: {{api_keys_env: ISO_B}}
  c: {{api_keys_env: ISO_C, limits: {{requests_per_minute: 2}}}}
admin: {{api_key_env: ISO_ADMIN}}
"""
# A's policy turns the injection guard on too, so it is scanned as well as PII.
POLICY_A = (
    "tenant: a\nguard: {action: flag}\nrules:\n  - name: default\n"
    "    when: {model: [auto]}\n    route: {strategy: first, chain: [iso-a]}\n"
)
B_LIMIT_S = 1.0
EMAIL = re.compile(r"[a-z]+\.[a-z]+\d+@example\.com")
SSN = re.compile(r"\b\d{3}-45-\d{4}\b")


def _gateway(mock_server: Server, work: Any, max_chars: int) -> Server:
    (work / "policies").mkdir()
    (work / "templates").mkdir()
    (work / "policies" / "a.yaml").write_text(POLICY_A)
    config = work / "flywheel.yaml"
    config.write_text(CONFIG.format(work=work, mock=mock_server.url, max_chars=max_chars))
    port = free_port()  # `start_gateway`, with room for a slow start on a busy machine
    args = ["-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    return start_server(args, port, work / f"gateway-{port}.log", "/readyz", ENV, 120)


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Scans up to 4 MiB of text, so A's largest inputs are really scanned (in workers)."""
    server = _gateway(mock_server, tmp_path_factory.mktemp("iso"), 4 * 1024 * 1024)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw_default(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default scan cap (1 MiB of text)."""
    server = _gateway(mock_server, tmp_path_factory.mktemp("iso-default"), 1_048_576)
    yield server
    server.stop()


@dataclass
class Race:
    a: httpx.Response
    a_seconds: float
    b_latencies: list[float]  # every B request of the race, in order
    b_during_a: int  # how many of them completed while A was in flight


def race(gw: Server, a_body: dict[str, Any]) -> Race:
    """B (the official SDK) sends small requests back to back, from before A's request
    starts until after it ends. A's body is serialised beforehand and sent as bytes, so
    A's client does no work in this process while B is measured."""
    client_b = make_client(gw, "sk-iso-b")
    client_b.chat.completions.create(model="iso-b", messages=[{"role": "user", "content": "hi"}])
    payload = orjson.dumps(a_body)
    stop = threading.Event()
    done: list[tuple[float, float]] = []  # (finished at, latency)

    def loop_b() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            client_b.chat.completions.create(
                model="iso-b", messages=[{"role": "user", "content": "What is 2 + 2?"}]
            )
            done.append((time.perf_counter(), time.perf_counter() - started))
            time.sleep(0.02)

    b = threading.Thread(target=loop_b, daemon=True)
    b.start()
    time.sleep(0.2)
    a_started = time.perf_counter()
    a = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=payload,
        headers={"authorization": "Bearer sk-iso-a", "content-type": "application/json"},
        timeout=120,
    )
    a_ended = time.perf_counter()
    time.sleep(0.1)
    stop.set()
    b.join(timeout=30)
    return Race(
        a,
        a_ended - a_started,
        [latency for _, latency in done],
        sum(1 for at, latency in done if at - latency >= a_started and at <= a_ended),
    )


def assert_isolated(outcome: Race) -> None:
    assert len(outcome.b_latencies) >= 2
    assert max(outcome.b_latencies) < B_LIMIT_S, (
        f"B waited {max(outcome.b_latencies):.2f}s while A's request took {outcome.a_seconds:.2f}s"
    )
    if outcome.a_seconds > 2 * B_LIMIT_S:
        assert outcome.b_during_a >= 1  # B really ran while A's request was being worked on


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    return error


def chat(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def sent_upstream(mock: MockControl, model: str) -> str:
    bodies = [entry["body"] for entry in mock.requests(model)]
    assert len(bodies) == 1
    return str(json.loads(bodies[0])["messages"][0]["content"])


def test_pii_dense_megabyte_is_masked_without_stalling_others(
    gw: Server, mock: MockControl
) -> None:
    prompt = pii_dense(1_000_000)
    outcome = race(gw, chat("iso-a", prompt))
    assert_isolated(outcome)
    assert outcome.a.status_code == 200, outcome.a.text[:500]
    assert outcome.a.json()["choices"][0]["message"]["content"]
    sent = sent_upstream(mock, "iso-a")
    assert EMAIL.search(prompt) and SSN.search(prompt)
    assert EMAIL.search(sent) is None and SSN.search(sent) is None
    assert "<EMAIL_1>" in sent and "<US_SSN_1>" in sent and "<PERSON_1>" in sent


def test_megabytes_of_names_are_masked_without_stalling_others(
    gw: Server, mock: MockControl
) -> None:
    outcome = race(gw, chat("iso-a", name_like(3_500_000)))
    assert_isolated(outcome)
    if outcome.a.status_code != 200:  # past the deadline on a slow machine
        assert_openai_error(outcome.a, 503, "scan_deadline_exceeded")
        assert mock.requests("iso-a") == []
        return
    sent = sent_upstream(mock, "iso-a")
    # Every name the detector finds in the text (123,446 runs of names) is masked.
    assert len(re.findall(r"<PERSON_\d+>", sent)) > 120_000


def test_hundred_thousand_messages_are_refused_without_stalling_others(
    gw: Server, mock: MockControl
) -> None:
    outcome = race(gw, {"model": "iso-a", "messages": many_messages(100_000)})
    assert_isolated(outcome)
    error = assert_openai_error(outcome.a, 400, "array_above_max_length")
    assert error["param"] == "messages"
    assert mock.requests("iso-a") == []


def test_messages_up_to_the_item_limit_are_served(gw: Server, mock: MockControl) -> None:
    messages = many_messages(2000, "my email is ann.lee@example.com")
    answer = make_client(gw, "sk-iso-a").chat.completions.create(
        model="iso-a",
        messages=messages,  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content
    [entry] = mock.requests("iso-a")
    assert "ann.lee@example.com" not in entry["body"] and "<EMAIL_1>" in entry["body"]


def test_text_past_the_default_cap_is_refused_before_scanning(
    gw_default: Server, mock: MockControl
) -> None:
    outcome = race(gw_default, chat("iso-a", name_like(3_500_000)))
    assert_isolated(outcome)
    error = assert_openai_error(outcome.a, 413, "scan_limit_exceeded")
    assert "scan.max_chars" in error["message"]
    assert outcome.a_seconds < 5  # refused up front, not after scanning 3.5 MB
    assert mock.requests("iso-a") == []


def test_limits_are_checked_before_the_input_is_worked_on(gw: Server, mock: MockControl) -> None:
    """Tenant c may send 2 requests a minute: refusals for bad input give their admission
    back; past the limit a megabyte of personal data is refused at once, unscanned."""
    client = make_client(gw, "sk-iso-c")
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="iso-a", messages=many_messages(3000))
    for _ in range(2):
        client.chat.completions.create(model="iso-a", messages=[{"role": "user", "content": "hi"}])
    started = time.perf_counter()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="iso-a", messages=[{"role": "user", "content": pii_dense(1_000_000)}]
        )
    assert time.perf_counter() - started < 2.0
    assert refused.value.response.json()["error"]["code"] == "requests_per_minute"
    assert len(mock.requests("iso-a")) == 2
