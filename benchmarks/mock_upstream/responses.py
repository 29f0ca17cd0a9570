"""OpenAI-shaped bodies and SSE frames: chat completions, completions, embeddings, models.

An `Endpoint` turns a `Plan` into a JSON body or into stream frames. Frames are bytes:
`frames[i]` carries token i of every choice, `tail` the finish/usage chunks and
`[DONE]`, so the server only paces and writes. The Responses API is in responses_api.py.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from benchmarks.mock_upstream.plan import (
    JSON,
    TOOL_ARGUMENTS,
    Plan,
    RequestError,
    plan_chat,
    plan_completion,
    tokens_for,
)

EMBEDDING_DIM = 8


Frames = tuple[list[bytes], bytes]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One generation API: how to plan a request and render the plan."""

    prompt_param: str
    plan: Callable[[JSON, str, int], Plan]  # body, model, output_tokens
    body: Callable[[Plan, int], JSON]  # plan, sequence number
    stream: Callable[[Plan, int], Frames]


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


# --- chat completions / completions ---------------------------------------------------


def sse(obj: JSON) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chat_body(plan: Plan, seq: int) -> JSON:
    if plan.tool is None:
        message: JSON = {"role": "assistant", "content": "".join(plan.pieces), "refusal": None}
    else:
        call = {"name": plan.tool, "arguments": TOOL_ARGUMENTS}
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [{"id": f"call_mock_{seq}", "type": "function", "function": call}],
        }
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
        for i in range(plan.n)
    ]
    return {
        "id": f"chatcmpl-mock-{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage(),
        "system_fingerprint": None,
    }


def _chat_delta(plan: Plan, i: int, piece: str, seq: int) -> JSON:
    if plan.tool is None:
        return {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
    if i > 0:
        return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
    call = {
        "index": 0,
        "id": f"call_mock_{seq}",
        "type": "function",
        "function": {"name": plan.tool, "arguments": piece},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def chat_stream(plan: Plan, seq: int) -> Frames:
    head = {
        "id": f"chatcmpl-mock-{seq}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": plan.model,
        "system_fingerprint": None,
    }
    frames = []
    for i, piece in enumerate(plan.pieces or ("",)):
        delta = _chat_delta(plan, i, piece, seq)
        frames.append(
            b"".join(
                sse(
                    {
                        **head,
                        "choices": [
                            {"index": c, "delta": delta, "logprobs": None, "finish_reason": None}
                        ],
                    }
                )
                for c in range(plan.n)
            )
        )
    tail = [
        sse(
            {
                **head,
                "choices": [
                    {"index": c, "delta": {}, "logprobs": None, "finish_reason": plan.finish_reason}
                ],
            }
        )
        for c in range(plan.n)
    ]
    if plan.include_usage:
        tail.append(sse({**head, "choices": [], "usage": plan.usage()}))
    return frames, b"".join(tail) + DONE


def completion_body(plan: Plan, seq: int) -> JSON:
    text = "".join(plan.pieces)
    choices = [
        {"text": text, "index": i, "logprobs": None, "finish_reason": plan.finish_reason}
        for i in range(plan.n)
    ]
    return {
        "id": f"cmpl-mock-{seq}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage(),
    }


def completion_stream(plan: Plan, seq: int) -> Frames:
    head = {
        "id": f"cmpl-mock-{seq}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": plan.model,
    }

    def chunk(text: str, finish: str | None) -> bytes:
        return b"".join(
            sse(
                {
                    **head,
                    "choices": [
                        {"text": text, "index": c, "logprobs": None, "finish_reason": finish}
                    ],
                }
            )
            for c in range(plan.n)
        )

    frames = [chunk(piece, None) for piece in plan.pieces or ("",)]
    tail = chunk("", plan.finish_reason)
    if plan.include_usage:
        tail += sse({**head, "choices": [], "usage": plan.usage()})
    return frames, tail + DONE


CHAT = Endpoint("messages", plan_chat, chat_body, chat_stream)
COMPLETIONS = Endpoint("prompt", plan_completion, completion_body, completion_stream)


# --- embeddings and model list ---------------------------------------------------------


@lru_cache(maxsize=4096)
def embedding(text: str) -> tuple[float, ...]:
    """A deterministic unit-range vector of EMBEDDING_DIM floats for `text`."""
    digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=EMBEDDING_DIM).digest()
    return tuple(round(b / 127.5 - 1.0, 6) for b in digest)


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [repr(value)]  # one input given as token ids
        if all(isinstance(v, str | list) for v in value):
            return [v if isinstance(v, str) else repr(v) for v in value]
    raise RequestError("'input' must be a string, a list of strings or token arrays", "input")


def embeddings_body(body: JSON, model: str) -> JSON:
    inputs = _embedding_inputs(body.get("input"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(inputs):
        vector = embedding(text)
        value: Any = (
            base64.b64encode(struct.pack(f"<{EMBEDDING_DIM}f", *vector)).decode()
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    prompt = tokens_for(sum(len(t) for t in inputs))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def models_body(names: Iterable[str]) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "mock"} for name in names
            ],
        }
    )
