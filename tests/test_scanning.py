"""The scanner's bounds (gateway/scanning.py) and the worker pool behind it: a request's
text is refused past the cap before any scanning, a scan past its deadline is refused
(never sent on unscanned), the worker computes exactly what the event loop would have,
and a refused request's admission is given back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.auth import Principal
from gateway.config import LimitsConfig, ScanConfig
from gateway.errors import RateLimited
from gateway.limits import Limiter
from gateway.pii import PIIDetector
from gateway.redaction.redactor import PIISettings, RequestPII
from gateway.redaction.vault import Action
from gateway.scanning import (
    ScanLimitExceeded,
    Scanner,
    ScanUnavailable,
    TooManyItems,
    count_items,
)
from tests.support.hostile import many_messages, pii_dense

SETTINGS = PIISettings(Action.MASK, Action.HASH, Action.REDACT)


def request_pii(body: dict[str, Any], detector: PIIDetector) -> RequestPII:
    return RequestPII("chat/completions", body, SETTINGS, detector, b"k" * 32)


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_items_past_the_limit_are_refused_naming_the_array() -> None:
    count_items("chat/completions", {"messages": many_messages(2048)}, 2048)
    with pytest.raises(TooManyItems) as refused:
        count_items("chat/completions", {"messages": many_messages(2049)}, 2048)
    assert refused.value.status == 400 and refused.value.param == "messages"
    parts = [{"role": "user", "content": [{"type": "text", "text": "x"}] * 40}] * 60
    with pytest.raises(TooManyItems):  # 60 messages, 2,400 parts
        count_items("chat/completions", {"messages": parts}, 2048)
    with pytest.raises(TooManyItems) as refused:
        count_items("embeddings", {"input": ["a"] * 3000}, 2048)
    assert refused.value.param == "input"
    count_items("chat/completions", ["not", "an", "object"], 1)  # validation's job


async def test_text_past_the_cap_is_refused_before_scanning() -> None:
    scanner = Scanner(ScanConfig(max_chars=1000))
    pii = request_pii(chat("x" * 1001), PIIDetector())
    loop = asyncio.get_running_loop()
    with pytest.raises(ScanLimitExceeded) as refused:
        await scanner.pii("t", pii, PIIDetector(), True, loop.time() + 10)
    assert refused.value.status == 413 and "scan.max_chars" in refused.value.message
    assert pii.vault.found == {}  # nothing was scanned
    scanner.close()


async def test_a_scan_past_its_deadline_is_refused_with_503() -> None:
    scanner = Scanner(ScanConfig(inline_chars=0, deadline_s=0.001, workers=1))
    pii = request_pii(chat(pii_dense(50_000)), PIIDetector())
    try:
        with pytest.raises(ScanUnavailable) as refused:
            await scanner.pii("t", pii, PIIDetector(), True, scanner.deadline())
        assert refused.value.status == 503
        assert refused.value.code == "scan_deadline_exceeded"
        assert pii._bodies == {}  # nothing to send on
    finally:
        scanner.close()


async def test_the_worker_computes_what_the_event_loop_would() -> None:
    detector = PIIDetector(custom={"CUSTOMER_ID": r"CUST-\d{6}"})
    text = pii_dense(30_000) + " customer CUST-123456"
    body = chat(text)
    here = request_pii(body, detector)
    here.prepare(log_content=True)
    scanner = Scanner(ScanConfig(inline_chars=0, deadline_s=120, workers=1))
    found: list[tuple[str, str, int]] = []
    there = RequestPII(
        "chat/completions", body, SETTINGS, detector, b"k" * 32, lambda *c: found.append(c)
    )
    try:
        await scanner.pii("t", there, detector, True, scanner.deadline())
    finally:
        scanner.close()
    for location in ("external", "local"):
        assert there.body_for(location) == here.body_for(location)
    assert there.for_logs(body, None) == here.for_logs(body, None)
    assert there.vault.by_placeholder == here.vault.by_placeholder
    assert "<CUSTOMER_ID_1>" in there.body_for("external")["messages"][0]["content"]
    assert ("EMAIL", "mask", here.vault.found["EMAIL"] // 2) in found  # mask, then hash
    restored = there.restore(b'{"choices": [{"message": {"content": "<EMAIL_1>"}}]}')
    assert b"@example.com" in restored


def test_release_gives_an_admission_back() -> None:
    now = [1000.0]
    limiter = Limiter(clock=lambda: now[0], wall=lambda: 1.7e9)
    limits = LimitsConfig(requests_per_minute=2, tokens_per_minute=100)
    principal = Principal("t", "k", limits, LimitsConfig())
    for _ in range(5):  # refused later (bad input): never counted
        limiter.release(limiter.admit(principal, 60))
        now[0] += 0.001
    limiter.admit(principal, 40)
    limiter.admit(principal, 40)
    with pytest.raises(RateLimited):
        limiter.admit(principal, 1)
