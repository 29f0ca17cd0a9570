"""Apply a template to one request body: pick the variant, render, insert, cap tokens.

- Chat (`messages`): the rendered system message first, then the few-shot turns as
  user/assistant messages, then the caller's messages. A `locked` template drops every
  caller message with role system or developer; otherwise they stay where they were,
  after the template's.
- Responses: the rendered system text becomes `instructions` (locked: the caller's are
  replaced and `input` items with role system/developer are dropped; not locked: the
  caller's instructions follow the template's after a blank line). Few-shot turns are
  prepended to `input` as user/assistant items.
- Completions: the prompt (a string or a list of strings) is prefixed with the rendered
  system text and a blank line. Few-shot turns are not used: a raw prompt has no turns.
  Token-id prompts are left as they are.
- Embeddings: the body is unchanged.

Max tokens: a `max_tokens` / `max_completion_tokens` / `max_output_tokens` above the
template's cap is lowered to it; with none set, the endpoint's own field is set to the cap.

The variant is sticky: blake2b over (tenant, id, version, assignment key) gives a point
in [0, 1) that falls into one variant's share of the cumulative weights. Pass the
request's `user` as the key, or the request id when there is none (random per request,
but replayable); the variant's weight is returned as its propensity.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.prompting.library import LoadedTemplate
from gateway.prompting.render import CompiledVariant, Rendered

SYSTEM_ROLES = frozenset({"system", "developer"})
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_OWN_TOKEN_FIELD = {
    "chat/completions": "max_tokens",
    "completions": "max_tokens",
    "responses": "max_output_tokens",
}
_ENDPOINTS = frozenset({"chat/completions", "completions", "responses", "embeddings"})


@dataclass(frozen=True)
class Applied:
    body: dict[str, Any]  # a new dict; the input body is never changed
    template_id: str
    version: str
    variant: str
    propensity: float  # the probability this variant had of being chosen
    dropped_system_messages: int  # caller system/developer messages (or instructions) removed


def assignment_point(tenant: str, template_id: str, version: str, key: str) -> float:
    """A stable point in [0, 1) for this (tenant, template, assignment key)."""
    material = "\x1f".join((tenant, template_id, version, key)).encode()
    digest = hashlib.blake2b(material, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_variant(
    template: LoadedTemplate, tenant: str, assignment_key: str | None
) -> CompiledVariant:
    """The sticky variant for this key (a fresh random key when None)."""
    key = assignment_key if assignment_key is not None else secrets.token_hex(8)
    point = assignment_point(tenant, template.id, template.version, key)
    variants = template.compiled.variants
    cumulative = 0.0
    for variant in variants:
        cumulative += variant.weight
        if point < cumulative:
            return variant
    return variants[-1]  # rounding: the weights may sum to 0.9999999


def apply_template(
    endpoint: str,
    body: dict[str, Any],
    template: LoadedTemplate,
    *,
    variables: dict[str, str] | None,
    assignment_key: str | None,
    tenant: str,
    strict_variables: bool = False,
) -> Applied:
    """Render `template` into a copy of `body` for `endpoint` (e.g. "chat/completions").

    `variables` override the template's defaults; names the template does not declare
    are skipped (a tenant's variables serve all its templates) unless strict_variables.
    Raises TemplateError when a value is refused.
    """
    kind = endpoint.removeprefix("/").removeprefix("v1/")
    if kind not in _ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    compiled = template.compiled
    variant = choose_variant(template, tenant, assignment_key)
    rendered = compiled.render(variant, compiled.values(variables, strict=strict_variables))
    # Every change below replaces a top-level value, so a shallow copy leaves the caller's
    # body unchanged without walking (or recursing into) what the caller nested.
    out = dict(body)
    dropped = 0
    if kind == "chat/completions":
        dropped = _chat(out, rendered, template.spec.locked)
    elif kind == "responses":
        dropped = _responses(out, rendered, template.spec.locked)
    elif kind == "completions":
        _completions(out, rendered)
    if kind != "embeddings" and template.spec.max_tokens is not None:
        _cap(out, template.spec.max_tokens, _OWN_TOKEN_FIELD[kind])
    return Applied(out, template.id, template.version, variant.name, variant.weight, dropped)


def _turns(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        message
        for user, answer in rendered.few_shot
        for message in ({"role": "user", "content": user}, {"role": "assistant", "content": answer})
    ]


def _is_system(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") in SYSTEM_ROLES


def _chat(body: dict[str, Any], rendered: Rendered, locked: bool) -> int:
    messages = body.get("messages")
    caller = messages if isinstance(messages, list) else []
    kept = [m for m in caller if not (locked and _is_system(m))]
    body["messages"] = [{"role": "system", "content": rendered.system}, *_turns(rendered), *kept]
    return len(caller) - len(kept)


def _responses(body: dict[str, Any], rendered: Rendered, locked: bool) -> int:
    dropped = 0
    theirs = body.get("instructions")
    if locked:
        dropped += 1 if isinstance(theirs, str) and theirs.strip() else 0
        body["instructions"] = rendered.system
    elif isinstance(theirs, str) and theirs.strip():
        body["instructions"] = f"{rendered.system}\n\n{theirs}"
    else:
        body["instructions"] = rendered.system
    given = body.get("input")
    if isinstance(given, list):
        kept = [item for item in given if not (locked and _is_system(item))]
        dropped += len(given) - len(kept)
        body["input"] = [*_turns(rendered), *kept]
    elif isinstance(given, str) and rendered.few_shot:
        body["input"] = [*_turns(rendered), {"role": "user", "content": given}]
    return dropped


def _completions(body: dict[str, Any], rendered: Rendered) -> None:
    prompt = body.get("prompt")
    prefix = f"{rendered.system}\n\n"
    if isinstance(prompt, str):
        body["prompt"] = prefix + prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        body["prompt"] = [prefix + p for p in prompt]


def _cap(body: dict[str, Any], cap: int, own_field: str) -> None:
    present = [
        name
        for name in TOKEN_FIELDS
        if isinstance(body.get(name), int) and not isinstance(body.get(name), bool)
    ]
    for name in present:
        if body[name] > cap:
            body[name] = cap
    if not present:
        body[own_field] = cap
