"""The learner's published bandit parameters, as every gateway replica holds them.

The learner writes one JSON document per (tenant, rule) into the store's `bandit_params`
hash; the store sync (change notices, or a poll within 1 s) hands the namespace here and
each document is parsed once, when it changes. A document that does not parse, or was
made for other features, is ignored with a log line: the rule then routes by its static
chain, as it does before anything is published.
"""

from __future__ import annotations

import logging

from gateway.logs import log_event
from gateway.policy.bandit_features import FEATURES
from gateway.policy.bandit_scorer import BanditParams

NAMESPACE = "bandit_params"
log = logging.getLogger("flywheel.gateway")


def field_name(tenant: str, rule: str) -> str:
    return f"{tenant}/{rule}"


class BanditBook:
    def __init__(self) -> None:
        self._raw: dict[str, str] = {}
        self._params: dict[str, BanditParams] = {}

    def get(self, tenant: str, rule: str) -> BanditParams | None:
        return self._params.get(field_name(tenant, rule))

    def on_store_change(self, namespace: str, values: dict[str, str]) -> None:
        if namespace != NAMESPACE:
            return
        parsed: dict[str, BanditParams] = {}
        for name, text in values.items():
            previous = self._params.get(name)
            if previous is not None and self._raw.get(name) == text:
                parsed[name] = previous
                continue
            try:
                params = BanditParams.from_json(text)
            except (ValueError, KeyError, TypeError) as exc:
                log_event(log, "bandit params ignored", logging.WARNING, rule=name, error=str(exc))
                continue
            if tuple(params.features) != tuple(FEATURES):
                log_event(log, "bandit params ignored", logging.WARNING, rule=name,
                          error="made for other features")  # fmt: skip
                continue
            parsed[name] = params
        self._raw, self._params = dict(values), parsed
