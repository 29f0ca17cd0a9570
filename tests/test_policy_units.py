"""Pure logic of routing policies: parsing with located errors, strategies, the example
policy that ships with the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.catalog import build_catalog
from gateway.config_loader import load_config
from gateway.policy import strategies
from gateway.policy.checks import policy_checker
from gateway.policy.library import PolicyError, parse_policy
from gateway.prompting import TemplateLibrary
from gateway.providers.factory import build_provider
from gateway.serving.ensemble import scores_of

ROOT = Path(__file__).resolve().parent.parent

GOOD = """tenant: acme
version: "2"
rules:
  - name: default
    route: {strategy: first, chain: [a]}
"""


def test_parse_errors_name_file_line_and_key() -> None:
    with pytest.raises(PolicyError, match=r"acme.yaml:5: rules.0.route.strategy: "):
        parse_policy(GOOD.replace("strategy: first", "strategy: fastest"), "acme.yaml")
    with pytest.raises(PolicyError, match=r"acme.yaml:2: versoin: unknown key"):
        parse_policy(GOOD.replace("version", "versoin"), "acme.yaml")
    with pytest.raises(PolicyError, match=r"acme.yaml:3: invalid YAML"):
        parse_policy("tenant: acme\nrules: [\n  - {", "acme.yaml")
    weighted = GOOD.replace(
        "{strategy: first, chain: [a]}", "{strategy: weighted, chain: [a, b], weights: [1]}"
    )
    with pytest.raises(PolicyError, match="one weight per chain entry"):
        parse_policy(weighted, "acme.yaml")

    reward = GOOD.replace("{strategy: first, chain: [a]}", "{strategy: ensemble, chain: [a, b],"
                          " ensemble: {select: reward}}")  # fmt: skip
    with pytest.raises(PolicyError, match="select: reward needs `scorer: <model>`"):
        parse_policy(reward, "acme.yaml")


def test_an_ensemble_scorer_must_be_a_known_model() -> None:
    check = policy_checker(_catalog(), TemplateLibrary.load_dir(ROOT / "templates"))
    text = GOOD.replace(
        "{strategy: first, chain: [a]}",
        "{strategy: ensemble, chain: [mock/small, mock/large],"
        " ensemble: {select: reward, scorer: mock/nope}}",
    )
    with pytest.raises(PolicyError, match=r"rules.0.route.ensemble.scorer: unknown model"):
        parse_policy(text, "acme.yaml", check)


def _catalog():  # type: ignore[no-untyped-def]
    config = load_config(None, env={})
    providers = {n: build_provider(n, p) for n, p in config.providers.items()}
    return build_catalog(config, providers)


def test_shipped_example_policy_is_valid_against_the_default_config() -> None:
    catalog = _catalog()
    templates = TemplateLibrary.load_dir(ROOT / "templates")
    check = policy_checker(catalog, templates)
    policy = parse_policy((ROOT / "policies" / "dev.yaml").read_text(), "dev.yaml", check)
    assert policy.rules[0].name == "multimedia"
    broken = (ROOT / "policies" / "dev.yaml").read_text().replace("mock/vision", "mock/vizion")
    with pytest.raises(PolicyError, match=r"dev.yaml:\d+: rules.0.route.chain: unknown model"):
        parse_policy(broken, "dev.yaml", check)


def test_weighted_follows_weights_and_reports_propensity() -> None:
    catalog = _catalog()
    chain = [catalog.routes["mock/small"], catalog.routes["mock/large"]]
    picks = [strategies.weighted(chain, [3, 1], f"user-{i}") for i in range(4000)]
    share = sum(p.chain[0].name == "mock/small" for p in picks) / len(picks)
    assert abs(share - 0.75) < 0.03
    assert {round(p.propensity, 2) for p in picks} == {0.75, 0.25}
    assert strategies.weighted(chain, [3, 1], "user-7").chain == picks[7].chain  # sticky


def test_lowest_latency_tries_unmeasured_first_then_fastest() -> None:
    catalog = _catalog()
    chain = [catalog.routes["mock/small"], catalog.routes["mock/large"]]
    tracker = strategies.LatencyTracker(alpha=0.5)
    assert [r.name for r in strategies.lowest_latency(chain, tracker).chain] == [
        "mock/small",
        "mock/large",
    ]
    tracker.observe("mock/small", 0.3)
    assert strategies.lowest_latency(chain, tracker).chain[0].name == "mock/large"
    tracker.observe("mock/large", 0.5)
    assert strategies.lowest_latency(chain, tracker).chain[0].name == "mock/small"
    for _ in range(5):
        tracker.observe("mock/small", 1.0)  # it slowed down: the EWMA follows
    assert strategies.lowest_latency(chain, tracker).chain[0].name == "mock/large"


def test_lowest_cost_respects_the_sla() -> None:
    catalog = _catalog()
    chain = [catalog.routes["mock/large"], catalog.routes["mock/small"]]
    tracker = strategies.LatencyTracker()
    assert strategies.lowest_cost(chain, tracker, 100, 100, None).chain[0].name == "mock/small"
    tracker.observe("mock/small", 9.0)
    ordered = strategies.lowest_cost(chain, tracker, 100, 100, sla_s=2.0)
    assert [r.name for r in ordered.chain] == ["mock/large", "mock/small"]  # misses SLA: last


def test_sticky_unit_is_uniform_enough() -> None:
    values = [strategies.sticky_unit("t", str(i)) for i in range(5000)]
    assert abs(sum(v < 0.5 for v in values) / 5000 - 0.5) < 0.03


def test_score_replies_are_read_in_answer_order_or_refused() -> None:
    def reply(*pairs: tuple[int, float]) -> bytes:
        return json.dumps({"data": [{"index": i, "score": s} for i, s in pairs]}).encode()

    assert scores_of(reply((1, 0.5), (0, -1.0)), 2) == [-1.0, 0.5]
    assert scores_of(reply((0, 0.5)), 2) is None  # one missing
    assert scores_of(reply((0, 0.5), (1, 1.0), (2, 0.0)), 2) is None  # one extra
    assert scores_of(reply((0, float("nan")), (1, 1.0)), 2) is None
    assert scores_of(b"<html>", 2) is None
    assert scores_of(b'{"data": [{"index": "x", "score": 1}]}', 1) is None
