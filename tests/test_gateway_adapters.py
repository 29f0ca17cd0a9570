"""Routing to LoRA adapters through the registry, end to end: a real gateway on a SQLite
store, a `location: local` provider pointed at the mock upstream (standing in for the
local model worker), and `flywheel ctl adapters` / the admin API driving the registry."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest

from tests.conftest import make_client
from tests.support.processes import MockControl, Server, start_gateway, wait_event

T = TypeVar("T")
ADMIN = "sk-adapters-admin"
KEYS = {
    "A_MAIN_KEYS": "sk-adapters-main",
    "A_OTHER_KEYS": "sk-adapters-other",
    "A_ROUTED_KEYS": "sk-adapters-routed",
    "A_ADMIN": ADMIN,
}
ROOT = Path(__file__).resolve().parents[1]
BASE = "local/smollm2-135m"
USER = [{"role": "user", "content": "My order has not arrived"}]

POLICY = f"""tenant: routed
version: "1"
virtual_models: [auto]
rules:
  - name: adapted
    route: {{strategy: first, chain: ["{BASE}:routing", "{BASE}"]}}
"""


def config_yaml(mock_url: str, work: Path) -> str:
    return f"""
store: "sqlite:///{work / "flywheel.db"}"
events: {{flush_interval_ms: 50}}
policies_dir: "{work / "policies"}"
templates_dir: "{ROOT / "templates"}"
providers:
  local: {{kind: openai, base_url: "{mock_url}/v1", location: local}}
models:
  {BASE}: {{provider: local, model: smollm2-135m}}
tenants:
  main: {{api_keys_env: A_MAIN_KEYS}}
  other: {{api_keys_env: A_OTHER_KEYS}}
  routed: {{api_keys_env: A_ROUTED_KEYS}}
admin: {{api_key_env: A_ADMIN}}
"""


@pytest.fixture(scope="module")
def gateway(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("adapters")
    (work / "policies").mkdir()
    (work / "policies" / "routed.yaml").write_text(POLICY)
    config = work / "flywheel.yaml"
    config.write_text(config_yaml(mock_server.url, work))
    server = start_gateway(config, KEYS)
    yield server
    server.stop()


def ctl(server: Server, *args: str) -> str:
    command = ["ctl", "--url", server.url, "--admin-key", ADMIN, "--actor", "test-operator"]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *command, "adapters", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def admin(server: Server, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN}"}
    return httpx.request(
        method, f"{server.url}{path}", json=body, headers=headers, timeout=10, **kw
    )


def route_of(server: Server, model: str, key: str = "sk-adapters-main") -> str:
    raw = make_client(server, key).chat.completions.with_raw_response.create(
        model=model, messages=USER
    )
    return raw.headers["x-flywheel-route"]


def within(seconds: float, probe: Callable[[], T], want: T) -> float:
    """Poll `probe` until it returns `want`; how long that took (fails after `seconds`)."""
    started = time.monotonic()
    seen: Any = None
    while time.monotonic() - started < seconds:
        try:
            seen = probe()
        except openai.NotFoundError as exc:  # not synced yet
            seen = exc.code
        if seen == want:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"still {seen!r} after {seconds}s, wanted {want!r}")


def test_promote_rollback_and_canary_reach_routing_within_a_second(
    gateway: Server, mock: MockControl
) -> None:
    model = f"{BASE}:support"
    for version in (1, 2):
        out = ctl(
            gateway,
            *("register", "support", "--path", f"/adapters/support-v{version}"),
            *("--base", "smollm2-135m", "--tenants", "main,routed"),
            *("--metrics", '{"reward": 0.7}', "--by", "sft-job-1"),
        )
        assert f'"id": "support-v{version}"' in out
    client = make_client(gateway, "sk-adapters-main")
    with pytest.raises(openai.NotFoundError) as none_active:
        client.chat.completions.create(model=model, messages=USER)
    assert none_active.value.code == "model_not_found"

    ctl(gateway, "promote", "support:1")
    within(1.5, lambda: route_of(gateway, model), f"{model}-v1")
    assert mock.requests("smollm2-135m:support-v1"), "the upstream is asked for the adapter"

    ctl(gateway, "promote", "support-v2")
    assert within(1.5, lambda: route_of(gateway, model), f"{model}-v2") < 1.2
    assert mock.requests("smollm2-135m:support-v2")

    ctl(gateway, "rollback", "support")
    assert within(1.5, lambda: route_of(gateway, model), f"{model}-v1") < 1.2
    assert route_of(gateway, f"{model}-v1") == f"{model}-v1"  # an exact version
    with pytest.raises(openai.NotFoundError):  # retired by the rollback
        client.chat.completions.create(model=f"{model}-v2", messages=USER)

    ctl(gateway, "promote", "support-v2", "--canary", "1.0")
    within(1.5, lambda: route_of(gateway, model), f"{model}-v2")
    assert {route_of(gateway, model) for _ in range(5)} == {f"{model}-v2"}

    table = ctl(gateway, "list", "support")
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "BASE"]
    assert "support-v1  active" in table and "canary 100%" in table and "reward=0.7" in table
    audit = admin(gateway, "GET", "/admin/audit?limit=20").json()
    assert {e["actor"] for e in audit if e["action"].startswith("adapter.")} == {"test-operator"}


def test_tenants_outside_an_adapters_list_get_404(gateway: Server) -> None:
    ctl(
        gateway,
        "register",
        "private",
        "--path",
        "/a/p",
        "--base",
        "smollm2-135m",
        "--tenants",
        "main",
    )
    ctl(gateway, "promote", "private")
    model = f"{BASE}:private"
    within(1.5, lambda: route_of(gateway, model), f"{model}-v1")
    other = make_client(gateway, "sk-adapters-other")
    for name in (model, f"{model}-v1", f"{BASE}:never-registered"):
        with pytest.raises(openai.NotFoundError) as refused:
            other.chat.completions.create(model=name, messages=USER)
        assert refused.value.code == "model_not_found"
        assert "does not exist" in str(refused.value.message)
    models = {m.id for m in make_client(gateway, "sk-adapters-main").models.list()}
    assert {BASE, model} <= models
    assert model not in {m.id for m in other.models.list()}


def test_a_policy_rule_can_target_an_adapter(gateway: Server) -> None:
    routed = make_client(gateway, "sk-adapters-routed")
    raw = routed.chat.completions.with_raw_response.create(model="auto", messages=USER)
    assert raw.headers["x-flywheel-route"] == BASE  # no `routing` adapter yet: skipped
    ctl(gateway, "register", "routing", "--path", "/a/r", "--base", "smollm2-135m")
    ctl(gateway, "promote", "routing")
    within(1.5, lambda: route_of(gateway, "auto", "sk-adapters-routed"), f"{BASE}:routing-v1")
    raw = routed.chat.completions.with_raw_response.create(model="auto", messages=USER)
    request_id = raw.headers["x-flywheel-request-id"]
    event = wait_event(gateway, ADMIN, request_id)
    assert (event["route"], event["adapter"]) == (f"{BASE}:routing-v1", "routing-v1")
    assert event["upstream_model"] == "smollm2-135m:routing-v1"


def test_admin_api_errors(gateway: Server) -> None:
    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    assert error(admin(gateway, "GET", "/admin/adapters/nothing-v1")) == (404, "adapter_not_found")
    assert error(admin(gateway, "GET", "/admin/adapters/nothing")) == (404, "adapter_not_found")
    assert error(admin(gateway, "POST", "/admin/adapters/nothing/promote")) == (
        404,
        "adapter_not_found",
    )
    body = {"name": "errs", "base_model": "smollm2-135m", "location": "/a/e"}
    assert admin(gateway, "POST", "/admin/adapters", body).status_code == 201
    assert error(admin(gateway, "POST", "/admin/adapters", {**body, "version": 1})) == (
        409,
        "adapter_exists",
    )
    assert error(admin(gateway, "POST", "/admin/adapters/errs/rollback")) == (
        409,
        "invalid_transition",
    )
    assert admin(gateway, "POST", "/admin/adapters/errs/promote", {}).status_code == 200
    assert error(admin(gateway, "POST", "/admin/adapters/errs/promote", {"version": 1})) == (
        409,
        "invalid_transition",
    )
    for bad in (
        {**body, "name": "Errs"},
        {**body, "name": "errs-v2"},
        {"name": "errs", "base_model": "smollm2-135m"},
        {**body, "metrics": {"reward": "high"}},
        {**body, "colour": "blue"},
    ):
        response = admin(gateway, "POST", "/admin/adapters", bad)
        assert response.status_code == 422, (bad, response.text)
    response = admin(gateway, "POST", "/admin/adapters/errs/promote", {"canary_share": 2})
    assert error(response) == (422, "invalid_value")
    assert response.json()["error"]["param"] == "canary_share"
    response = admin(gateway, "POST", "/admin/adapters", content=b"{not json")
    assert response.status_code == 400
    assert admin(gateway, "POST", "/admin/adapters/errs-v1/retire").json()["status"] == "retired"
    assert [r["id"] for r in admin(gateway, "GET", "/admin/adapters?name=errs").json()] == [
        "errs-v1"
    ]
    unauthorized = httpx.get(f"{gateway.url}/admin/adapters", timeout=5)
    assert unauthorized.status_code == 401
