"""Decide how to serve one request: classify it, find the tenant's rule, order the
candidate chain by the rule's strategy, apply the prompt template, set the budget and
the SLA deadline. `RoutePlan.explain` says why, step by step (`flywheel ctl policy
explain`).

A request naming a virtual model (`auto`, `fast`, ...) goes through the tenant's
policy; a concrete model from flywheel.yaml bypasses it when the policy allows.
A tenant with no policy is served by the concrete model's own chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.adapters.resolve import AdapterResolver
from gateway.catalog import ModelCatalog, ModelRoute
from gateway.classify import Classification, Classifier, request_text
from gateway.errors import InvalidRequest, ModelNotFound, PermissionDenied
from gateway.events import RequestContext
from gateway.flags import Flags
from gateway.policy import strategies
from gateway.policy.bandit_book import BanditBook
from gateway.policy.bandit_route import order_by_bandit
from gateway.policy.content import ContentEncoder, load_content_encoder
from gateway.policy.library import PolicyLibrary
from gateway.policy.model import EnsembleSpec, Policy, Rule, When
from gateway.prompting import TemplateLibrary, apply_template
from gateway.providers.base import Endpoint
from gateway.serving.event_builder import context_of
from gateway.transcript import render_prompt


@dataclass
class RoutePlan:
    chain: tuple[ModelRoute, ...]
    body: dict[str, Any]
    classification: Classification
    strategy: str = "direct"
    rule: str | None = None
    policy_version: str | None = None
    arm: str | None = None
    propensity: float | None = None
    template: tuple[str, str, str] | None = None  # id, version, variant
    template_propensity: float | None = None
    deadline_s: float | None = None
    ensemble: EnsembleSpec | None = None
    explain: list[str] = field(default_factory=list)
    embedding: str | None = None  # packed content vector (policy/content.py), bandit rules


class Router:
    def __init__(
        self,
        catalog: ModelCatalog,
        policies: PolicyLibrary,
        templates: TemplateLibrary,
        classifier: Classifier,
        flags: Flags,
        latency: strategies.LatencyTracker,
        adapters: AdapterResolver | None = None,
        bandits: BanditBook | None = None,
        content: ContentEncoder | None = None,
    ) -> None:
        self.content = content  # the prompt-content model of bandit contexts (warm loads it)
        self.catalog = catalog
        self.bandits = bandits  # the learner's published parameters, per (tenant, rule)
        self.adapters = adapters  # `<local model>:<adapter>` names, from the registry
        self.policies = policies
        self.templates = templates
        self.classifier = classifier
        self.flags = flags
        self.latency = latency

    def warm(self) -> None:
        """Learn every policy's own intents now (0.1-0.3 s each), not on a first request."""
        for loaded in self.policies.all().values():
            if loaded.policy.intents:
                self.classifier.for_tenant(loaded.policy.intents)
        if self.content is None:
            self.content = load_content_encoder()

    async def plan(
        self,
        tenant: str,
        endpoint: str,
        body: dict[str, Any],
        headers: Mapping[str, str],
        request_id: str,
        estimated_input_tokens: int,
        force_rule: str | None = None,
    ) -> RoutePlan:
        policy = self.policies.get(tenant)
        view = request_text(endpoint, body)
        model = str(body["model"])
        routed = policy is not None and (model in policy.virtual_models or bool(force_rule))
        classifier = self.classifier
        if policy is not None and policy.intents:
            classifier = classifier.for_tenant(policy.intents)
        # Requests that bypass the policy are classified for the record only: fast tier.
        tier = policy.classifier_tier if routed and policy is not None else "fast"
        classification = await classifier.aclassify(view, tier=tier)
        plan = RoutePlan((), body, classification)
        plan.explain.append(
            f"classified: intent {classification.intent} ({classification.confidence:.2f}, "
            f"{classification.source}), complexity {classification.complexity:.2f} "
            f"({classification.tier})"
        )
        if policy is None or not routed:
            if policy is not None and not policy.allow_concrete_models:
                raise PermissionDenied(
                    f"Tenant '{tenant}' routes by policy: use one of "
                    f"{', '.join(policy.virtual_models)}",
                    param="model",
                )
            if self.adapters is not None and self.adapters.handles(model):
                plan.chain, note = self.adapters.resolve(tenant, model, _key(body, request_id))
                plan.explain.append(note)
            else:
                plan.chain = self.catalog.resolve(tenant, model)
            plan.explain.append(
                f"concrete model {model}: its chain {' -> '.join(r.name for r in plan.chain)}"
            )
            return plan
        plan.policy_version = policy.version
        sla_name = headers.get(policy.sla.header) or policy.sla.default
        if force_rule is not None:
            rule = next((r for r in policy.rules if r.name == force_rule), None)
            plan.explain.append(f"guard: routed to the safer rule {force_rule}")
        else:
            rule = _match(policy, model, classification, view.has_tools, body, sla_name)
        if rule is None:
            raise InvalidRequest(
                f"No rule of tenant '{tenant}' policy v{policy.version} matches this request",
                code="no_matching_rule",
            )
        plan.rule, plan.strategy = rule.name, rule.route.strategy
        plan.explain.append(
            f"rule {rule.name} of policy {tenant} v{policy.version} "
            f"(strategy {rule.route.strategy})"
        )
        candidates = [
            route
            for name in rule.route.chain
            if (route := self._candidate(tenant, name, _key(body, request_id))) is not None
        ]
        if not candidates:
            raise ModelNotFound(f"Rule {rule.name} has no model tenant '{tenant}' may use")
        if sla_name and sla_name in policy.sla.tiers:
            plan.deadline_s = policy.sla.tiers[sla_name].timeout_ms / 1000
            plan.explain.append(f"SLA {sla_name}: {plan.deadline_s:.1f}s deadline")
        if rule.route.strategy == "bandit" and self.content is not None:
            plan.embedding = self.content.encode_turns(render_prompt(endpoint, body))
        output_tokens = _requested_output(body) or policy.budgets.expected_output_tokens
        ordered = self._order(
            rule,
            tenant,
            candidates,
            body,
            request_id,
            estimated_input_tokens,
            output_tokens,
            plan.deadline_s,
            plan.classification,
            endpoint,
            plan.embedding,
        )
        if ordered.version is not None:
            plan.policy_version = ordered.version
        chain = list(ordered.chain)
        if policy.budgets.max_cost_usd is not None:
            budget = policy.budgets.max_cost_usd
            chain = [
                r
                for r in chain
                if strategies.estimated_cost(r, estimated_input_tokens, output_tokens) <= budget
            ]
            if not chain:
                raise InvalidRequest(
                    f"Every model of rule {rule.name} would exceed the "
                    f"per-request budget of ${budget:g}",
                    code="budget_exceeded",
                )
            plan.explain.append(f"budget ${budget:g}: {len(chain)} of {len(ordered.chain)} fit")
        plan.chain = tuple(chain)
        plan.arm, plan.propensity = plan.chain[0].name, ordered.propensity
        plan.explain.append(f"chain {' -> '.join(r.name for r in plan.chain)}: {ordered.note}")
        if rule.route.strategy == "ensemble":
            plan.ensemble = rule.route.ensemble
        self._template(plan, policy, rule, tenant, endpoint, body, request_id)
        return plan

    def _candidate(self, tenant: str, name: str, key: str) -> ModelRoute | None:
        route = self.catalog.routes.get(name)
        if route is not None:
            return route if route.allows(tenant) else None
        if self.adapters is not None and self.adapters.handles(name):
            return self.adapters.candidate(tenant, name, key)
        return None

    def _order(
        self,
        rule: Rule,
        tenant: str,
        chain: list[ModelRoute],
        body: dict[str, Any],
        request_id: str,
        input_tokens: int,
        output_tokens: int,
        sla_s: float | None,
        classification: Classification | None = None,
        endpoint: str = "chat/completions",
        embedding: str | None = None,
    ) -> strategies.Ordered:
        route = rule.route
        user = body.get("user") if isinstance(body.get("user"), str) else None
        if route.strategy == "weighted" and route.weights is not None:
            weights = [
                w
                for name, w in zip(route.chain, route.weights, strict=True)
                if any(name in (r.name, r.alias) for r in chain)
            ]
            return strategies.weighted(
                chain, weights, f"{tenant}\x00{rule.name}\x00{user or request_id}"
            )
        if route.strategy == "lowest_latency":
            return strategies.lowest_latency(chain, self.latency)
        if route.strategy == "lowest_cost":
            return strategies.lowest_cost(chain, self.latency, input_tokens, output_tokens, sla_s)
        if route.strategy == "bandit":
            killed = self.flags.killed(tenant, job="bandit")
            params = None if killed or self.bandits is None else self.bandits.get(tenant, rule.name)
            if params is not None:
                context = bandit_context(endpoint, body, classification, embedding)
                decided = order_by_bandit(params, chain, context, request_id)
                if decided is not None:
                    return decided
            reason = "kill switch on or store unknown" if killed else "no parameters published"
            ordered = strategies.first(chain)
            return strategies.Ordered(ordered.chain, 1.0, f"static safeguard chain ({reason})")
        return strategies.first(chain)

    def _template(
        self,
        plan: RoutePlan,
        policy: Policy,
        rule: Rule,
        tenant: str,
        endpoint: str,
        body: dict[str, Any],
        request_id: str,
    ) -> None:
        ref = (
            rule.route.template
            or policy.templates.get(plan.classification.intent)
            or policy.templates.get("default")
        )
        if not ref:
            return
        template_id, _, version = ref.partition("@")
        template = self.templates.get(template_id, version or None)
        if template is None:
            plan.explain.append(f"template {ref} not loaded: request sent as is")
            return
        user = body.get("user") if isinstance(body.get("user"), str) else None
        applied = apply_template(
            endpoint,
            body,
            template,
            variables=policy.template_variables,
            assignment_key=user or request_id,
            tenant=tenant,
        )
        plan.body = applied.body
        plan.template = (applied.template_id, applied.version, applied.variant)
        plan.template_propensity = applied.propensity
        plan.explain.append(
            f"template {applied.template_id}@{applied.version} variant "
            f"{applied.variant}"
            + (
                f", dropped {applied.dropped_system_messages} caller system message(s)"
                if applied.dropped_system_messages
                else ""
            )
        )


def _key(body: dict[str, Any], request_id: str) -> str:
    """Sticky assignment key (canaries): the request's user, else its id."""
    user = body.get("user")
    return user if isinstance(user, str) and user else request_id


def _requested_output(body: dict[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _match(
    policy: Policy,
    model: str,
    c: Classification,
    has_tools: bool,
    body: dict[str, Any],
    sla: str | None,
) -> Rule | None:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    for rule in policy.rules:
        if _holds(rule.when, model, c, has_tools, metadata or {}, sla):
            return rule
    return None


def _holds(
    when: When,
    model: str,
    c: Classification,
    has_tools: bool,
    metadata: dict[str, Any],
    sla: str | None,
) -> bool:
    if when.model is not None and model not in when.model:
        return False
    if when.intent is not None and c.intent not in when.intent:
        return False
    if (
        when.complexity is not None
        and not when.complexity.min <= c.complexity <= when.complexity.max
    ):
        return False
    if when.tier is not None and c.tier not in when.tier:
        return False
    if when.multimodal is not None and (c.intent == "multimodal") != when.multimodal:
        return False
    if when.has_tools is not None and has_tools != when.has_tools:
        return False
    if when.metadata is not None and any(metadata.get(k) != v for k, v in when.metadata.items()):
        return False
    return when.sla is None or sla in when.sla


def bandit_context(
    endpoint: str,
    body: dict[str, Any],
    classification: Classification | None,
    embedding: str | None = None,
) -> RequestContext:
    """What the bandit sees of a request: exactly the context its event will carry, which
    is what the learner learns from."""
    context = context_of(Endpoint(endpoint), body)
    if embedding is not None:
        context = context.model_copy(update={"embedding": embedding})
    if classification is None:
        return context
    return context.model_copy(
        update={
            "intent": classification.intent,
            "complexity": classification.complexity,
            "complexity_tier": classification.tier,
        }
    )
