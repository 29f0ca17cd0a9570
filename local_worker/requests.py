"""From an OpenAI-shaped request to what the engine runs: prompt tokens and sampling.

Validation uses the gateway's wire models (gateway.protocol); what this worker cannot
honour (logprobs, penalties, images, echo) is refused with a 400 naming the parameter
rather than silently ignored, and a prompt that does not fit the context window is a 400
with code `context_length_exceeded`, which the gateway's context-window fallback reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.errors import ContextLengthExceeded, InvalidRequest
from gateway.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields
from local_worker.sampling import Sampling

MAX_CHOICES = 8
MAX_STOP = 4


@dataclass(frozen=True)
class Limits:
    max_model_len: int
    default_max_tokens: int


def chat_prompt(tokenizer: Any, wire: ChatCompletionRequest) -> list[int]:
    """The request's messages through the model's own chat template, as token ids."""
    if wire.logprobs or wire.top_logprobs:
        raise InvalidRequest("logprobs are not supported by the local worker", param="logprobs")
    messages = [_message(m.model_dump(exclude_none=True)) for m in wire.messages]
    tools = [t.model_dump(exclude_none=True) for t in wire.tools] if wire.tools else None
    text = tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    content = raw.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.get("type") not in ("text", "input_text"):
                raise InvalidRequest(
                    f"The local model accepts text only, not {part.get('type')!r} content",
                    param="messages",
                )
            parts.append(str(part.get("text", "")))
        content = "".join(parts)
    if content is None and raw.get("tool_calls"):
        content = json.dumps([c["function"] for c in raw["tool_calls"]])
    return {"role": raw["role"], "content": content or ""}


def completion_prompts(tokenizer: Any, wire: CompletionRequest) -> list[list[int]]:
    """Each prompt of a /v1/completions request as token ids (text or ids accepted)."""
    if wire.echo:
        raise InvalidRequest("echo is not supported by the local worker", param="echo")
    if wire.logprobs:
        raise InvalidRequest("logprobs are not supported by the local worker", param="logprobs")
    if wire.best_of not in (None, 1):
        raise InvalidRequest("best_of is not supported by the local worker", param="best_of")
    prompt = wire.prompt
    if isinstance(prompt, str):
        prompts: list[Any] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [prompt]
    else:
        prompts = list(prompt)
    if not prompts:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    vocab = len(tokenizer)
    out: list[list[int]] = []
    for p in prompts:
        if isinstance(p, str):
            out.append(list(tokenizer(p, add_special_tokens=False)["input_ids"]))
        elif all(isinstance(t, int) and 0 <= t < vocab for t in p):
            out.append(list(p))
        else:
            raise InvalidRequest(f"prompt token ids must lie in [0, {vocab})", param="prompt")
    return out


def sampling_for(
    wire: SamplingFields, max_tokens: int | None, prompt_tokens: int, limits: Limits
) -> list[Sampling]:
    """One `Sampling` per choice (n of them), after checking everything fits."""
    if wire.presence_penalty or wire.frequency_penalty:
        raise InvalidRequest(
            "presence_penalty and frequency_penalty are not supported by the local worker",
            param="presence_penalty" if wire.presence_penalty else "frequency_penalty",
        )
    n = wire.n or 1
    if n > MAX_CHOICES:
        raise InvalidRequest(f"n must be at most {MAX_CHOICES}", param="n")
    top_p = 1.0 if wire.top_p is None else wire.top_p
    if top_p <= 0:
        raise InvalidRequest("top_p must be greater than 0", param="top_p")
    stop = (wire.stop,) if isinstance(wire.stop, str) else tuple(wire.stop or ())
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise InvalidRequest(f"stop takes 1 to {MAX_STOP} non-empty strings", param="stop")
    room = limits.max_model_len - prompt_tokens
    if max_tokens is not None and max_tokens < 1:
        raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
    if max_tokens is None:
        max_tokens = min(limits.default_max_tokens, room)
    if prompt_tokens + max(max_tokens, 1) > limits.max_model_len:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {limits.max_model_len} tokens. However, "
            f"you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
            f"messages, {max_tokens} in the completion). Please reduce the length of the "
            "messages or completion.",
            param="messages",
        )
    temperature = 1.0 if wire.temperature is None else wire.temperature
    return [
        Sampling(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=None if wire.seed is None else wire.seed + i,
            stop=stop,
        )
        for i in range(n)
    ]
