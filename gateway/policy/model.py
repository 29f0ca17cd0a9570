"""The shape of `policies/<tenant>.yaml`: a tenant's routing policy, strictly validated.

```yaml
tenant: acme
version: "4"
virtual_models: [auto, fast, precise]   # names this policy resolves
allow_concrete_models: true             # may a request name a model from flywheel.yaml?
intents: {billing: ["I was charged twice", ...]}   # extra intents, learned at load
templates: {default: general, code: code, billing: support}   # intent -> template id[@version]
template_variables: {company: Acme}
budgets: {max_cost_usd: 0.05}
sla: {header: x-flywheel-sla, default: standard,
      tiers: {interactive: {timeout_ms: 3000}, standard: {timeout_ms: 30000}}}
rules:                                   # matched top-down; the first match routes
  - name: quick
    when: {model: [auto, fast], intent: [chat, translate], complexity: {max: 0.4}}
    route: {strategy: lowest_latency, chain: [local-small, fast]}
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# How big a policy may be. A policy is read on every request and its intents are
# learned (about 10 ms per example on the semantic tier) whenever it is installed, so
# its size is bounded; the file's bytes and YAML aliases are bounded by the loader
# (gateway.yaml_load.POLICY_BUDGET).
MAX_RULES = 500
MAX_CHAIN = 32
MAX_NAMES = 64  # virtual models, when-lists, intents, templates, variables, SLA tiers
MAX_EXAMPLES_PER_INTENT = 100
MAX_EXAMPLES = 500  # over all intents
MAX_EXAMPLE_CHARS = 1000
MAX_PATTERNS = 32  # custom PII patterns
MAX_PATTERN_CHARS = 500
MAX_TEXT = 1000  # a template variable's value, a metadata value

Strategy = Literal["first", "weighted", "lowest_latency", "lowest_cost", "ensemble", "bandit"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Strict):
    min: float = 0.0
    max: float = 1.0


class When(Strict):
    """Every given condition must hold; an empty `when` matches everything."""

    model: list[str] | None = Field(None, max_length=MAX_NAMES)  # the model the request named
    intent: list[str] | None = Field(None, max_length=MAX_NAMES)
    complexity: Range | None = None
    tier: list[Literal["low", "medium", "high"]] | None = None
    multimodal: bool | None = None
    has_tools: bool | None = None
    # request `metadata` values that must equal
    metadata: dict[str, str] | None = Field(None, max_length=MAX_NAMES)
    sla: list[str] | None = Field(None, max_length=MAX_NAMES)


class EnsembleSpec(Strict):
    n: int = Field(2, ge=2, le=8)
    # first: hedge, the first success wins and the rest are cancelled; judge: a judge
    # model picks the best answer; consensus: the answer closest to the others wins;
    # reward: a reward model scores every answer (POST /v1/score) and the best wins.
    select: Literal["first", "judge", "consensus", "reward"] = "first"
    judge: str | None = None
    scorer: str | None = None  # select: reward: a model whose server answers /v1/score

    @model_validator(mode="after")
    def _picker_named(self) -> EnsembleSpec:
        if self.select == "judge" and not self.judge:
            raise ValueError("select: judge needs `judge: <model>`")
        if self.select == "reward" and not self.scorer:
            raise ValueError("select: reward needs `scorer: <model>` (a reward model's server)")
        return self

    @property
    def picker(self) -> str | None:
        """The model whose call picks the answer: the judge or the scorer."""
        if self.select == "judge":
            return self.judge
        return self.scorer if self.select == "reward" else None


class Objective(Strict):
    """A `bandit` rule's quality target (learner/quality_target.py): the cheapest routing whose
    expected quality stays >= `min_quality_ratio` x the `reference` model's, with confidence."""

    reference: str = Field(min_length=1)
    min_quality_ratio: float = Field(gt=0, le=1)


class Route(Strict):
    strategy: Strategy = "first"
    chain: list[str] = Field(min_length=1, max_length=MAX_CHAIN)
    weights: list[float] | None = Field(None, max_length=MAX_CHAIN)
    ensemble: EnsembleSpec | None = None
    template: str | None = None  # overrides the policy's intent -> template choice
    objective: Objective | None = None  # strategy bandit: a quality target, not the reward

    @model_validator(mode="after")
    def _consistent(self) -> Route:
        if self.objective is not None:
            if self.strategy != "bandit":
                raise ValueError("objective: only a strategy: bandit rule takes an objective")
            if self.objective.reference not in self.chain:
                raise ValueError(
                    f"objective.reference {self.objective.reference!r} is not in the chain"
                )
        if self.strategy == "weighted":
            if self.weights is None or len(self.weights) != len(self.chain):
                raise ValueError("strategy weighted needs one weight per chain entry")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be >= 0 and not all zero")
        if self.strategy == "ensemble" and self.ensemble is None:
            object.__setattr__(self, "ensemble", EnsembleSpec())
        return self


class Rule(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    when: When = When()
    route: Route


class SLATier(Strict):
    timeout_ms: float = Field(gt=0)


class SLA(Strict):
    header: str = "x-flywheel-sla"
    default: str | None = None
    tiers: dict[str, SLATier] = Field(default_factory=dict, max_length=MAX_NAMES)

    @model_validator(mode="after")
    def _default_known(self) -> SLA:
        if self.default is not None and self.default not in self.tiers:
            raise ValueError(f"sla.default {self.default!r} is not one of the tiers")
        return self


class Budgets(Strict):
    max_cost_usd: float | None = Field(None, gt=0)
    # expected answer length for cost estimates when a request sets no max_tokens
    expected_output_tokens: int = Field(256, ge=1)


PIIAction = Literal["off", "mask", "redact", "hash", "block"]


class PIIPolicy(Strict):
    """What to do with personal data, per destination. Defaults: mask before external
    providers, leave local models alone, redact everything the store keeps."""

    external: PIIAction = "mask"
    local: PIIAction = "off"
    logs: Literal["off", "redact", "hash"] = "redact"
    types: list[str] | None = None  # entity types to act on (default: all)
    # TYPE -> regex (e.g. customer ids)
    custom: dict[str, str] = Field(default_factory=dict, max_length=MAX_PATTERNS)

    @model_validator(mode="after")
    def _patterns_compile(self) -> PIIPolicy:
        for name, pattern in self.custom.items():
            if not name.isupper() or not name.replace("_", "").isalnum():
                raise ValueError(f"custom type {name!r} must be UPPER_CASE")
            if len(pattern) > MAX_PATTERN_CHARS:
                raise ValueError(f"custom pattern {name}: longer than {MAX_PATTERN_CHARS} chars")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"custom pattern {name}: {exc}") from None
        return self


class GuardPolicy(Strict):
    """Prompt-injection / system-prompt-exfiltration guard and token ceilings."""

    action: Literal["off", "flag", "block", "route"] = "flag"
    route_rule: str | None = None  # the safer rule for action: route
    threshold: float = Field(0.5, gt=0, le=1)
    max_input_tokens: int | None = Field(None, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _route_named(self) -> GuardPolicy:
        if self.action == "route" and not self.route_rule:
            raise ValueError("action: route needs `route_rule: <rule name>`")
        return self


class RewardPolicy(Strict):
    """How feedback becomes a reward in [0, 1] (learner/rewards.py).

    Explicit signals win over implicit ones: a thumb (value 1 up, 0 or -1 down), a score
    (mapped from `score_range` onto [0, 1]), a correction (the answer needed fixing). Without
    them, implicit signals: a click, dwell time (saturating at `dwell_full_s`), and a retry
    of the same prompt by the same user within `retry_window_s`, which counts against the
    first answer. Then `cost_weight` x cost (USD) and `latency_weight` x latency (s) are
    subtracted and the result clipped to [0, 1]. Events with no signal within `horizon_s`
    get `default`, or are left out when it is null.
    """

    thumbs_up: float = Field(1.0, ge=0, le=1)
    thumbs_down: float = Field(0.0, ge=0, le=1)
    score_range: tuple[float, float] = (0.0, 1.0)  # POST /v1/feedback takes scores in [0, 1]
    correction: float = Field(0.2, ge=0, le=1)
    click: float = Field(0.8, ge=0, le=1)
    dwell_full_s: float = Field(30.0, gt=0)
    retry: float = Field(0.1, ge=0, le=1)
    retry_window_s: float = Field(120.0, ge=0)
    default: float | None = Field(0.6, ge=0, le=1)
    horizon_s: float = Field(300.0, gt=0)
    cost_weight: float = Field(0.0, ge=0)  # per USD
    latency_weight: float = Field(0.0, ge=0)  # per second

    @model_validator(mode="after")
    def _range(self) -> RewardPolicy:
        if self.score_range[0] >= self.score_range[1]:
            raise ValueError("score_range must be (low, high) with low < high")
        return self


class JobSchedule(Strict):
    """When the learner starts a training run of one kind for this tenant."""

    min_new: int = Field(500, ge=1)  # new logged interactions since this kind's last run
    every_s: float = Field(3600.0, ge=0)  # and at least this long after it
    steps: int = Field(20, ge=1)
    needs_approval: bool = True  # False: the tenant waives the operator's approval
    intent: str | None = None  # train on this task's traffic only (one adapter per task)


class Canary(Strict):
    """How a trained adapter of this tenant is canaried, and judged by live traffic.

    It serves `share` of the tenant's requests for its adapter name. Once the canary and
    the active version each have `min_requests` rated requests, it is rolled back if its
    reward is lower by more than `reward_tolerance`, its error rate higher by more than
    `max_error_increase`, or its p95 latency above `max_latency_ratio` x the active one's;
    otherwise promoted. With no active version it needs mean reward >= `min_reward` and an
    error rate under `max_error_rate`.
    """

    share: float = Field(0.05, gt=0, le=1)
    min_requests: int = Field(50, ge=1)
    reward_tolerance: float = Field(0.02, ge=0)
    max_error_increase: float = Field(0.02, ge=0)
    max_latency_ratio: float = Field(1.5, ge=1)
    min_reward: float = Field(0.5, ge=0, le=1)
    max_error_rate: float = Field(0.05, ge=0, le=1)


class Learning(Strict):
    """The learner's settings for this tenant's `bandit` rules, and their safeguards."""

    algorithm: Literal["linucb", "lints", "egreedy"] = "linucb"
    exploration: float | None = Field(None, ge=0)  # alpha / posterior scale / epsilon
    # < 1 forgets old evidence so a model that degrades is noticed (routing-sim: without
    # it recovery took 7.5-9.3k requests, with 0.997 about 1k)
    discount: float = Field(0.997, gt=0, le=1)
    reward: RewardPolicy = RewardPolicy()
    min_explore: float = Field(0.05, ge=0, le=1)  # probability spread over every arm
    reward_floor: float = Field(0.0, ge=0, le=1)  # arms estimated below it are not chosen
    max_shift: float = Field(0.25, gt=0, le=1)  # most any arm's share may move per publication
    publish_every: int = Field(200, ge=1)  # new experiences per rule between publications
    ope_tolerance: float = Field(0.02, ge=0)  # how much worse than live a candidate may look
    min_ess: float = Field(30.0, ge=0)  # effective sample size the gate needs
    # before the first learned publication, this share of traffic is spread evenly over
    # the arms (the rest follows the static chain); 0: the static chain only
    initial_explore: float = Field(0.0, ge=0, le=1)
    # a candidate is published only when it moves at least this share of traffic
    min_change: float = Field(0.01, ge=0, le=1)
    # Training runs (reward_model, sft, rl) the scheduler starts; none unless listed.
    jobs: dict[Literal["reward_model", "sft", "rl"], JobSchedule] = Field(default_factory=dict)
    # The canary of this tenant's trained adapters; unset: the learner's own defaults
    # (`flywheel learner run --canary-share/--canary-min-requests`).
    canary: Canary | None = None


class Policy(Strict):
    tenant: str = Field(min_length=1, max_length=100)
    version: str = Field("1", max_length=40)
    virtual_models: list[str] = Field(default_factory=lambda: ["auto"], max_length=MAX_NAMES)
    allow_concrete_models: bool = True
    # fast: lexical only; auto: the semantic tier too when the lexical one is unsure
    # (about a fifth of requests, ~8 ms off the event loop); semantic: always both.
    classifier_tier: Literal["fast", "auto", "semantic"] = "auto"
    intents: dict[str, list[str]] = Field(default_factory=dict, max_length=MAX_NAMES)
    templates: dict[str, str] = Field(default_factory=dict, max_length=MAX_NAMES)
    template_variables: dict[str, str] = Field(default_factory=dict, max_length=MAX_NAMES)
    budgets: Budgets = Budgets()
    sla: SLA = SLA()
    pii: PIIPolicy = PIIPolicy()
    guard: GuardPolicy = GuardPolicy()
    learning: Learning = Learning()
    rules: list[Rule] = Field(min_length=1, max_length=MAX_RULES)

    @model_validator(mode="after")
    def _names_unique(self) -> Policy:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        if self.guard.route_rule and self.guard.route_rule not in names:
            raise ValueError(f"guard.route_rule {self.guard.route_rule!r} is not a rule")
        for intent, examples in self.intents.items():
            if len(examples) < 3:
                raise ValueError(f"intent {intent!r} needs at least 3 example utterances")
            if len(examples) > MAX_EXAMPLES_PER_INTENT:
                raise ValueError(
                    f"intent {intent!r} has {len(examples)} examples; at most "
                    f"{MAX_EXAMPLES_PER_INTENT}"
                )
            if any(len(example) > MAX_EXAMPLE_CHARS for example in examples):
                raise ValueError(
                    f"intent {intent!r}: examples are at most {MAX_EXAMPLE_CHARS} characters"
                )
        total = sum(len(examples) for examples in self.intents.values())
        if total > MAX_EXAMPLES:
            raise ValueError(f"{total} intent examples in all; at most {MAX_EXAMPLES}")
        for name, value in self.template_variables.items():
            if len(value) > MAX_TEXT:
                raise ValueError(f"template_variables.{name}: longer than {MAX_TEXT} characters")
        return self
