"""Cross-checks of a policy against the rest of the system, at load time: every model a
rule names exists (or names an adapter of a local model, `local/smollm2-135m:support`,
resolved by the registry per request) and is one the policy's tenant may use, every
template it names is loaded, an ensemble's judge or scorer is a known model, every intent
a rule or a job names is a built-in intent or one the policy teaches, every SLA tier a
rule names is declared, and every model a rule's `when` names is one of the policy's
virtual models (a concrete model bypasses the policy, so such a rule could never match)."""

from __future__ import annotations

from gateway.adapters.resolve import adapter_target
from gateway.catalog import ModelCatalog
from gateway.classify.types import BUILTIN_INTENTS, MULTIMODAL
from gateway.pii import ALL_TYPES
from gateway.policy.library import Checker
from gateway.policy.model import Policy
from gateway.prompting import TemplateLibrary


def policy_checker(catalog: ModelCatalog, templates: TemplateLibrary) -> Checker:
    def check(policy: Policy) -> list[tuple[tuple[str, ...], str]]:
        found: list[tuple[tuple[str, ...], str]] = []
        intents = {*BUILTIN_INTENTS, MULTIMODAL, *policy.intents}
        for i, rule in enumerate(policy.rules):
            when = ("rules", str(i), "when")
            for name in rule.when.intent or ():
                if name not in intents:
                    found.append(((*when, "intent"), f"unknown intent {name!r}"))
            for name in rule.when.sla or ():
                if name not in policy.sla.tiers:
                    found.append(((*when, "sla"), f"unknown SLA tier {name!r}"))
            for name in rule.when.model or ():
                if name not in policy.virtual_models:
                    found.append(((*when, "model"), f"{name!r} is not one of the virtual_models"))
            where = ("rules", str(i), "route")
            for name in rule.route.chain:
                target = adapter_target(catalog.routes, name)
                route = catalog.routes.get(name) or (target[0] if target else None)
                if route is None:
                    found.append(((*where, "chain"), f"unknown model {name!r}"))
                elif not route.allows(policy.tenant):
                    found.append(
                        ((*where, "chain"), f"model {name!r} is not available to {policy.tenant!r}")
                    )
            ensemble = rule.route.ensemble
            picker = ensemble.picker if ensemble is not None else None
            if ensemble is not None and picker is not None and picker not in catalog.routes:
                field = "judge" if ensemble.select == "judge" else "scorer"
                found.append(((*where, "ensemble", field), f"unknown model {picker!r}"))
            if rule.route.template and not _has(templates, rule.route.template):
                found.append(((*where, "template"), f"unknown template {rule.route.template!r}"))
        for intent, ref in policy.templates.items():
            if intent != "default" and intent not in intents:
                found.append((("templates", intent), f"unknown intent {intent!r}"))
            template_id, _, version = ref.partition("@")
            loaded = templates.get(template_id, version or None)
            if loaded is None:
                found.append((("templates", intent), f"unknown template {ref!r}"))
                continue
            for problem in loaded.variable_problems(policy.template_variables):
                found.append((("template_variables",), f"{ref}: {problem}"))
        for kind, job in policy.learning.jobs.items():
            if job.intent is not None and job.intent not in intents:
                found.append(
                    (("learning", "jobs", kind, "intent"), f"unknown intent {job.intent!r}")
                )
        unknown = sorted(set(policy.pii.types or ()) - ALL_TYPES)
        if unknown:
            found.append(
                (("pii", "types"), f"unknown PII types {unknown}; known: {sorted(ALL_TYPES)}")
            )
        for name in policy.virtual_models:
            if name in catalog.routes:
                found.append((("virtual_models",), f"{name!r} is also a model in flywheel.yaml"))
        return found

    return check


def _has(templates: TemplateLibrary, ref: str) -> bool:
    template_id, _, version = ref.partition("@")
    return templates.get(template_id, version or None) is not None
