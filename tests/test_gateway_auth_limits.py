"""Tenants, keys, admin key, rate limits and budgets against a real gateway."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import make_client
from tests.support.gateway_config import (
    ADMIN_KEY,
    BUDGET_KEY,
    LIMITED_KEY,
    MAIN_KEY,
    OTHER_KEY,
    TIGHT_KEY,
    TOKENS_KEY,
)
from tests.support.processes import Server

USER = [{"role": "user", "content": "hi"}]


def test_missing_and_wrong_keys_are_401(gateway: Server) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "small"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError):
        make_client(gateway, "sk-wrong").chat.completions.create(model="small", messages=USER)
    bad_scheme = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Basic {MAIN_KEY}"},
        json={},
    )
    assert bad_scheme.status_code == 401


def test_a_model_the_tenant_may_not_use_is_404_like_an_unknown_one(gateway: Server) -> None:
    make_client(gateway, MAIN_KEY).chat.completions.create(model="private", messages=USER)
    with pytest.raises(openai.NotFoundError) as info:
        make_client(gateway, OTHER_KEY).chat.completions.create(model="private", messages=USER)
    assert info.value.code == "model_not_found"

    def refused(model: str) -> tuple[int, dict[str, object]]:
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {OTHER_KEY}"},
            json={"model": model, "messages": USER},
        )
        return response.status_code, response.json()

    # Reserved and unknown read the same but for the name asked for: no existence oracle.
    (status, reserved), (unknown_status, unknown) = refused("private"), refused("missing")
    assert status == unknown_status == 404
    assert str(reserved).replace("private", "X") == str(unknown).replace("missing", "X")
    listed = make_client(gateway, OTHER_KEY).models.list()
    assert "private" not in {m.id for m in listed.data}


def test_requests_per_minute_exact_at_the_boundary(gateway: Server) -> None:
    client = make_client(gateway, LIMITED_KEY)
    for _ in range(3):
        client.chat.completions.create(model="small", messages=USER)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="small", messages=USER)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.code == "requests_per_minute"


def test_key_limit_tighter_than_tenant_limit_applies(gateway: Server) -> None:
    client = make_client(gateway, TIGHT_KEY)
    for _ in range(2):
        client.chat.completions.create(model="small", messages=USER)
    with pytest.raises(openai.RateLimitError, match="key 'acme/tight'"):
        client.chat.completions.create(model="small", messages=USER)


def test_tokens_per_minute(gateway: Server) -> None:
    client = make_client(gateway, TOKENS_KEY)
    big = [{"role": "user", "content": "x" * 800}]  # ~200 tokens reserved, ~200 used
    client.chat.completions.create(model="small", messages=big)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="small", messages=big)
    assert info.value.code == "tokens_per_minute"


def test_daily_spend_budget(gateway: Server) -> None:
    client = make_client(gateway, BUDGET_KEY)
    # mock-pricey costs $1000 per million tokens: one call of ~10 tokens spends ~$0.01
    for _ in range(5):
        try:
            client.chat.completions.create(model="pricey", messages=USER)
        except openai.RateLimitError as exc:
            assert exc.code == "budget_exceeded"
            assert int(exc.response.headers["retry-after"]) <= 86400
            break
    else:
        pytest.fail("the daily budget was never enforced")


def test_admin_api_needs_the_admin_key(gateway: Server) -> None:
    url = f"{gateway.url}/admin/status"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {MAIN_KEY}"}).status_code == 401
    status = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert status.status_code == 200
    assert status.json()["models"]["small"]["chain"] == ["small", "large"]
