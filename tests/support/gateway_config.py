"""The config the integration suite's gateway runs with: one model (or a small
chain) per behaviour under test, so tests do not share breakers or forced failures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

MAIN_KEY = "sk-test-main"
OTHER_KEY = "sk-test-other"
TIGHT_KEY = "sk-test-tight"
LIMITED_KEY = "sk-test-limited"
TOKENS_KEY = "sk-test-tokens"
BUDGET_KEY = "sk-test-budget"
ADMIN_KEY = "sk-test-admin"

ENV = {
    "T_MAIN_KEYS": MAIN_KEY,
    "T_OTHER_KEYS": OTHER_KEY,
    "T_TIGHT_KEY": TIGHT_KEY,
    "T_LIMITED_KEYS": LIMITED_KEY,
    "T_TOKENS_KEYS": TOKENS_KEY,
    "T_BUDGET_KEYS": BUDGET_KEY,
    "T_ADMIN_KEY": ADMIN_KEY,
    "T_MOCK_KEY": "sk-mock",
}


def gateway_yaml(mock_url: str, dead_url: str) -> str:
    return f"""
server: {{max_body_bytes: 65536}}
providers:
  up: {{kind: openai, base_url: "{mock_url}/v1", supports_responses: true, read_timeout_s: 5}}
  up-chat: {{kind: openai, base_url: "{mock_url}/v1", supports_responses: false}}
  lite: {{kind: litellm, litellm_provider: openai, base_url: "{mock_url}/v1",
          api_key_env: T_MOCK_KEY}}
  dead: {{kind: openai, base_url: "{dead_url}/v1", connect_timeout_s: 0.5}}
routing:
  retry: {{attempts: 1, backoff_base_ms: 10, backoff_max_ms: 50, retry_after_max_s: 2}}
  breaker: {{failure_threshold: 50, cooldown_s: 30}}
models:
  small: {{provider: up, model: mock-small, context_window: 8192,
           cost_per_mtok: {{input: 1.0, output: 2.0}}, fallbacks: [large]}}
  large: {{provider: up, model: mock-large, context_window: 100000,
           cost_per_mtok: {{input: 5.0, output: 10.0}}}}
  embed: {{provider: up, model: mock-embed}}
  chat-only: {{provider: up-chat, model: mock-chat-only}}
  lite: {{provider: lite, model: mock-lite}}
  private: {{provider: up, model: mock-private, tenants: [main]}}
  pricey: {{provider: up, model: mock-pricey, cost_per_mtok: {{input: 1000, output: 1000}}}}
  fb500: {{provider: up, model: fb500, fallbacks: [fb500-b]}}
  fb500-b: {{provider: up, model: fb500-b}}
  fb429: {{provider: up, model: fb429, fallbacks: [fb429-b]}}
  fb429-b: {{provider: up, model: fb429-b}}
  fbtimeout: {{provider: up, model: fbtimeout, timeout_s: 0.5,
               retry: {{attempts: 0}}, fallbacks: [fbtimeout-b]}}
  fbtimeout-b: {{provider: up, model: fbtimeout-b}}
  fbdrop: {{provider: up, model: fbdrop, fallbacks: [fbdrop-b]}}
  fbdrop-b: {{provider: up, model: fbdrop-b}}
  fbdead: {{provider: dead, model: x, fallbacks: [fbdead-b]}}
  fbdead-b: {{provider: up, model: fbdead-b}}
  brk: {{provider: up, model: brk, retry: {{attempts: 0}},
         breaker: {{failure_threshold: 2, cooldown_s: 1.0}}, fallbacks: [brk-b]}}
  brk-b: {{provider: up, model: brk-b}}
  ctx-small: {{provider: up, model: ctx-small, context_window: 50,
               fallbacks: [ctx-mid, ctx-big]}}
  ctx-mid: {{provider: up, model: ctx-mid, context_window: 40}}
  ctx-big: {{provider: up, model: ctx-big, context_window: 100000}}
  sfb: {{provider: up, model: sfb, fallbacks: [sfb-b]}}
  sfb-b: {{provider: up, model: sfb-b}}
  smid: {{provider: up, model: smid, fallbacks: [smid-b]}}
  smid-b: {{provider: up, model: smid-b}}
  reject: {{provider: up, model: reject, fallbacks: [reject-b]}}
  reject-b: {{provider: up, model: reject-b}}
  down-only: {{provider: up, model: down-only, retry: {{attempts: 0}}}}
tenants:
  main: {{api_keys_env: T_MAIN_KEYS}}
  other: {{api_keys_env: T_OTHER_KEYS}}
  acme:
    keys: [{{name: tight, key_env: T_TIGHT_KEY, limits: {{requests_per_minute: 2}}}}]
    limits: {{requests_per_minute: 100}}
  limited: {{api_keys_env: T_LIMITED_KEYS, limits: {{requests_per_minute: 3}}}}
  tokens: {{api_keys_env: T_TOKENS_KEYS, limits: {{tokens_per_minute: 300}}}}
  budget: {{api_keys_env: T_BUDGET_KEYS, limits: {{usd_per_day: 0.01}}}}
admin: {{api_key_env: T_ADMIN_KEY}}
"""


def one_tenant_config(
    work: Path,
    tenant: str,
    policy: str,
    providers: Mapping[str, str],
    models: Mapping[str, str],
    keys_env: str,
    admin_env: str,
) -> Path:
    """A gateway config under `work` for one tenant and its policy: a SQLite store, events
    flushed every 20 ms, and the `providers` and `models` given as name -> YAML flow mapping.
    Returns the config's path."""
    (work / "policies").mkdir(exist_ok=True)
    (work / "policies" / f"{tenant}.yaml").write_text(policy)
    config = work / "flywheel.yaml"
    config.write_text(
        f'store: "sqlite:///{work / "flywheel.db"}"\n'
        "events: {flush_interval_ms: 20}\n"
        f'policies_dir: "{work / "policies"}"\n'
        f"providers:\n{_entries(providers)}models:\n{_entries(models)}"
        f"tenants:\n  {tenant}: {{api_keys_env: {keys_env}}}\n"
        f"admin: {{api_key_env: {admin_env}}}\n"
    )
    return config


def _entries(entries: Mapping[str, str]) -> str:
    return "".join(f"  {name}: {value}\n" for name, value in entries.items())
