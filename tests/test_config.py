"""Config loading: the issue's example parses; a broken file names file, line, key, problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config_loader import ConfigError, load_config, parse_config

EXAMPLE = """
providers:
  upstream-a: {kind: openai, base_url: "http://127.0.0.1:9101/v1", api_key_env: UPSTREAM_A_KEY}
  anthropic:  {kind: litellm, api_key_env: ANTHROPIC_API_KEY}
models:
  fast:    {provider: upstream-a, model: mock-small, context_window: 8192,
            cost_per_mtok: {input: 0.15, output: 0.6}, fallbacks: [precise]}
  precise: {provider: upstream-a, model: mock-large, context_window: 32768,
            cost_per_mtok: {input: 2.5, output: 10.0}}
tenants:
  acme: {api_keys_env: ACME_API_KEYS}   # comma-separated keys, hashed at load
admin: {api_key_env: FLYWHEEL_ADMIN_KEY}
"""


def test_issue_example_parses() -> None:
    config = parse_config(EXAMPLE, "flywheel.yaml", {})
    assert config.models["fast"].fallbacks == ["precise"]
    assert config.models["precise"].cost_per_mtok.output == 10.0
    assert config.providers["anthropic"].kind == "litellm"
    assert config.models["fast"].tenants is None  # open to every tenant


def test_embedded_defaults_load() -> None:
    config = load_config(None, env={})
    assert "mock/small" in config.models and config.store is not None


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "flywheel.yaml"
    path.write_text(EXAMPLE.replace("context_window: 32768", "context_windw: 32768"))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert f"{path}:8" in message
    assert "models.precise.context_windw" in message
    assert "unknown key" in message


def test_bad_value_names_the_key() -> None:
    text = EXAMPLE.replace("input: 0.15", "input: -1")
    with pytest.raises(ConfigError, match=r"flywheel.yaml:7: models.fast.cost_per_mtok.input: "):
        parse_config(text, "flywheel.yaml", {})


def test_unknown_references_are_named() -> None:
    with pytest.raises(ConfigError, match=r"flywheel.yaml:7: models.fast.fallbacks: unknown model"):
        parse_config(EXAMPLE.replace("[precise]", "[precisee]"), "flywheel.yaml", {})
    with pytest.raises(ConfigError, match=r"models.fast.provider: unknown provider 'nope'"):
        parse_config(
            EXAMPLE.replace("provider: upstream-a, model: mock-small", "provider: nope, model: x"),
            "f.yaml",
            {},
        )


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"f.yaml:3: invalid YAML"):
        parse_config("a: 1\nb: [1,\nc: {", "f.yaml", {})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", env={})


def test_env_overrides_nested_keys_and_ignore_secrets() -> None:
    env = {
        "FLYWHEEL_SERVER__PORT": "9999",
        "FLYWHEEL_MODELS__FAST__CONTEXT_WINDOW": "4096",
        "FLYWHEEL_STORE": "redis://127.0.0.1:6379/3",
        "FLYWHEEL_ADMIN_KEY": "a secret, not a section",
    }
    config = parse_config(EXAMPLE, "flywheel.yaml", env)
    assert config.server.port == 9999
    assert config.models["fast"].context_window == 4096
    assert config.store == "redis://127.0.0.1:6379/3"


def test_bad_env_override_is_attributed_to_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"overridden by FLYWHEEL_SERVER__PORT"):
        parse_config(EXAMPLE, "flywheel.yaml", {"FLYWHEEL_SERVER__PORT": "not-a-port"})


def test_openai_provider_needs_base_url() -> None:
    with pytest.raises(ConfigError, match="needs base_url"):
        parse_config("providers:\n  p: {kind: openai}\n", "f.yaml", {})
