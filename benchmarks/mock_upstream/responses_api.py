"""The OpenAI Responses API (`POST /v1/responses`) for the mock: the body and the SSE events.

A stream is response.created, response.in_progress, response.output_item.added,
(response.content_part.added,) one delta event per token, then the matching `.done`
events and response.completed - or response.incomplete when `max_output_tokens` capped
the output. Every event has an `event:` line and a `sequence_number`; there is no [DONE].
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson

from benchmarks.mock_upstream.plan import JSON, TOOL_ARGUMENTS, Plan, plan_response
from benchmarks.mock_upstream.responses import Endpoint, Frames


def _usage(plan: Plan) -> JSON:
    p, c = plan.prompt_tokens, plan.completion_tokens
    return {
        "input_tokens": p,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": c,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": p + c,
    }


def _status(plan: Plan) -> str:
    return "incomplete" if plan.finish_reason == "length" else "completed"


def _item(plan: Plan, seq: int, done: bool) -> JSON:
    status = _status(plan) if done else "in_progress"
    if plan.tool is not None:
        return {
            "type": "function_call",
            "id": f"fc_mock_{seq}",
            "call_id": f"call_mock_{seq}",
            "name": plan.tool,
            "arguments": TOOL_ARGUMENTS if done else "",
            "status": status,
        }
    content = [_part("".join(plan.pieces))] if done else []
    return {
        "type": "message",
        "id": f"msg_mock_{seq}",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(plan: Plan, seq: int, created: float, done: bool) -> JSON:
    capped = done and plan.finish_reason == "length"
    return {
        "id": f"resp_mock_{seq}",
        "object": "response",
        "created_at": created,
        "status": _status(plan) if done else "in_progress",
        "model": plan.model,
        "output": [_item(plan, seq, True)] if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if capped else None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": _usage(plan) if done else None,
    }


def response_body(plan: Plan, seq: int) -> JSON:
    return _response(plan, seq, float(int(time.time())), True)


def response_stream(plan: Plan, seq: int) -> Frames:
    numbers = itertools.count()
    created = float(int(time.time()))

    def event(kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": next(numbers), **fields})
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    item_id = _item(plan, seq, False)["id"]
    at = {"item_id": item_id, "output_index": 0}
    head = (
        event("response.created", response=_response(plan, seq, created, False))
        + event("response.in_progress", response=_response(plan, seq, created, False))
        + event("response.output_item.added", output_index=0, item=_item(plan, seq, False))
    )
    if plan.tool is not None:
        frames = [
            event("response.function_call_arguments.delta", **at, delta=piece)
            for piece in plan.pieces
        ]
        tail = event(
            "response.function_call_arguments.done", **at, name=plan.tool, arguments=TOOL_ARGUMENTS
        )
    else:
        head += event("response.content_part.added", **at, content_index=0, part=_part(""))
        frames = [
            event("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
            for piece in plan.pieces
        ]
        text = "".join(plan.pieces)
        tail = event(
            "response.output_text.done", **at, content_index=0, text=text, logprobs=[]
        ) + event("response.content_part.done", **at, content_index=0, part=_part(text))
    tail += event("response.output_item.done", output_index=0, item=_item(plan, seq, True))
    final = "response.incomplete" if _status(plan) == "incomplete" else "response.completed"
    tail += event(final, response=_response(plan, seq, created, True))
    if frames:
        frames[0] = head + frames[0]
    else:
        frames = [head]
    return frames, tail


RESPONSES = Endpoint("input", plan_response, response_body, response_stream)
