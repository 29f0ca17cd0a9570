"""Turn a finished request into its `InteractionEvent` (one per request).

Context features are cheap reads of the validated body. Content (the request's
messages and the answer) is kept only when the tenant logs content; a streamed answer
is assembled from the chunks the relay captured, here, after the client has it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import GatewayError
from gateway.events import InteractionEvent, RequestContext, RoutingDecision, TemplateRef
from gateway.providers.base import Endpoint
from gateway.providers.sse import event_data

if TYPE_CHECKING:
    from gateway.policy.router import RoutePlan
    from gateway.serving.inference import Call
    from gateway.serving.relay import StreamEnd
    from gateway.serving.usage import Usage


def build_event(
    call: Call,
    usage: Usage,
    status: int,
    total_s: float,
    cost: float,
    error: GatewayError | None,
    stream_end: StreamEnd | None,
    content: dict[str, Any] | None,
) -> InteractionEvent:
    """The request's event; built from the gateway's own values, so not re-validated."""
    trace, route, plan = call.trace, call.trace.route, call.plan
    context = context_of(call.endpoint, call.body)
    routing = RoutingDecision()
    template = None
    if plan is not None:
        c = plan.classification
        context = context.model_copy(
            update={
                "intent": c.intent,
                "complexity": c.complexity,
                "complexity_tier": c.tier,
                "embedding": plan.embedding,  # the content vector the bandit scored
            }
        )
        routing = RoutingDecision(
            strategy=plan.strategy,
            rule=plan.rule,
            arm=plan.arm,
            propensity=plan.propensity,
            policy_version=plan.policy_version,
            pick=call.pick,
        )
        if plan.template is not None:
            template = TemplateRef(id=plan.template[0], version=plan.template[1])
    user = call.body.get("user")
    request = call.body if call.log_content else None
    response = content if call.log_content else None
    if call.pii is not None and call.log_content:
        request, response = call.pii.for_logs(request, response)
    return InteractionEvent.model_construct(
        request_id=call.request_id,
        tenant=call.principal.tenant,
        key_id=call.principal.key_id,
        user=user if isinstance(user, str) else None,
        ts=call.arrived,
        endpoint=call.endpoint.value,
        model=call.model,
        context=context,
        template=template,
        routing=routing,
        route=route.name if route else None,
        provider=route.provider.name if route else None,
        upstream_model=route.upstream_model if route else None,
        adapter=route.adapter if route else None,
        attempts=trace.attempts,
        fallbacks=trace.fallbacks,
        errors=trace.errors,
        stream=call.stream,
        stream_end=stream_end.value if stream_end else None,
        status=status,
        error=error.message if error else None,
        latency_ms=total_s * 1000,
        ttft_ms=call.ttft_s * 1000 if call.ttft_s is not None else None,
        upstream_ms=trace.upstream_s * 1000,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=cost,
        request=request,
        response=response,
        pii=dict(call.pii.vault.found) if call.pii is not None else {},
        guard=call.guard,
        schema_version=1,
    )


def plan_headers(plan: RoutePlan | None) -> dict[str, str]:
    """What the routing decided, for the response headers."""
    if plan is None:
        return {}
    headers = {"x-flywheel-intent": plan.classification.intent}
    if plan.template is not None:
        template_id, version, variant = plan.template
        headers["x-flywheel-template"] = f"{template_id}@{version}/{variant}"
    if plan.rule is not None:
        headers["x-flywheel-rule"] = plan.rule
        headers["x-flywheel-strategy"] = plan.strategy
    return headers


def context_of(endpoint: Endpoint, body: dict[str, Any]) -> RequestContext:
    texts: list[str] = []
    has_images = False
    messages = 0
    if endpoint is Endpoint.CHAT:
        items = body.get("messages") or []
        messages = len(items)
        for message in items:
            has_images |= _collect(message.get("content"), texts)
    elif endpoint is Endpoint.RESPONSES:
        if body.get("instructions"):
            texts.append(str(body["instructions"]))
        items = body.get("input")
        if isinstance(items, str):
            texts.append(items)
            messages = 1
        elif isinstance(items, list):
            messages = len(items)
            for item in items:
                if isinstance(item, dict):
                    has_images |= _collect(item.get("content"), texts)
    else:
        prompt = body.get("prompt", body.get("input"))
        has_images |= _collect(prompt, texts)
        messages = 1
    digest = hashlib.blake2b(digest_size=8)
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\x00")
    return RequestContext(
        prompt_hash=digest.hexdigest() if texts else None,
        input_chars=sum(len(t) for t in texts),
        messages=messages,
        has_tools=bool(body.get("tools")),
        has_images=has_images,
    )


def _collect(content: Any, texts: list[str]) -> bool:
    """Append the text in `content`; return whether it has an image or audio part."""
    if isinstance(content, str):
        texts.append(content)
        return False
    media = False
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type", "")
                if kind in ("text", "input_text", "output_text"):
                    texts.append(str(part.get("text", "")))
                elif "image" in kind or "audio" in kind:
                    media = True
    return media


def streamed_response(events: list[bytes]) -> dict[str, Any]:
    """The text (and tool calls) of a streamed chat/completions answer, reassembled."""
    text: list[str] = []
    tool_calls: dict[int, dict[str, str]] = {}
    finish_reason = None
    for event in events:
        data = event_data(event)
        if not data or data == b"[DONE]":
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or choice.get("text") or "")
            for call in delta.get("tool_calls") or []:
                slot = tool_calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
    answer: dict[str, Any] = {"content": "".join(text), "finish_reason": finish_reason}
    if tool_calls:
        answer["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
    return answer
