"""Build Responses API objects, and translate a `chat.completion` into one.

`response_from_chat` answers a non-streaming `POST /v1/responses` from the chat
completion a provider returned. The builders beside it (`response_object`, the output
items and parts, `usage_from_chat`, `outcome`) are shared with the streaming translator,
so a streamed `response.completed` carries exactly the object a plain call returns.

Only the first choice is used. Its text and refusal become one assistant `message` item;
each tool call becomes a `function_call` item. `finish_reason` "length" (or
"content_filter") makes the response `incomplete`. Fields the request set are echoed the
way OpenAI echoes them (`instructions`, `tools`, `tool_choice`, `text`, ...).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any


def new_id(prefix: str) -> str:
    """A fresh object id in OpenAI's style: `resp_...`, `msg_...`, `fc_...`."""
    return f"{prefix}_{uuid.uuid4().hex}"


def outcome(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """The response `status` and `incomplete_details` a chat `finish_reason` maps to."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def usage_from_chat(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat `usage` in the Responses shape, or None when the provider sent none."""
    if not usage:
        return None
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)
    total = usage.get("total_tokens")
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": _detail(usage, "prompt_tokens_details", "cached_tokens"),
            "cache_write_tokens": 0,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {
            "reasoning_tokens": _detail(usage, "completion_tokens_details", "reasoning_tokens"),
        },
        "total_tokens": int(total) if total is not None else input_tokens + output_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_object(
    request: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object, echoing the settings of the Responses `request`."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": int(time.time()) if status == "completed" else None,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": request.get("reasoning"),
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def response_from_chat(
    chat: dict[str, Any], request: dict[str, Any], *, response_id: str | None = None
) -> dict[str, Any]:
    """The Response object for the Responses `request` that `chat` completed."""
    choices = chat.get("choices") or []
    choice: dict[str, Any] = choices[0] if choices else {}
    message: dict[str, Any] = choice.get("message") or {}
    status, incomplete_details = outcome(choice.get("finish_reason"))
    item_status = "completed" if status == "completed" else "incomplete"

    content: list[dict[str, Any]] = []
    text = _text_of(message.get("content"))
    if text:
        content.append(text_part(text))
    if message.get("refusal"):
        content.append(refusal_part(str(message["refusal"])))
    tool_calls: list[dict[str, Any]] = message.get("tool_calls") or []
    output: list[dict[str, Any]] = []
    if content or not tool_calls:
        output.append(message_item(new_id("msg"), content or [text_part("")], item_status))
    for call in tool_calls:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name") or "",
                function.get("arguments") or "",
                item_status,
            )
        )
    created = chat.get("created")
    return response_object(
        request,
        response_id=response_id or new_id("resp"),
        created_at=int(created) if isinstance(created, int | float) else int(time.time()),
        model=chat.get("model") or request.get("model") or "",
        status=status,
        output=output,
        usage=usage_from_chat(chat.get("usage")),
        incomplete_details=incomplete_details,
    )


def _text_of(content: Any) -> str:
    """A chat message's content as text: a string, or the text of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _detail(usage: Mapping[str, Any], details_key: str, key: str) -> int:
    details = usage.get(details_key)
    if isinstance(details, Mapping):
        return int(details.get(key) or 0)
    return 0
