"""Every place text goes in, and comes out, on every endpoint.

`map_request_text(endpoint, body, fn)` returns a copy of the request with `fn(where,
text)` applied to each text field: chat messages (string content and text parts), tool
call arguments and tool results; /v1/completions prompts; /v1/responses input (strings,
text parts, function call arguments and outputs) and instructions; /v1/embeddings
input. Containers are copied only where something changed; the input is never mutated.

`map_answer_text(endpoint, answer, fn)` does the same for a non-streamed answer: chat
message content and tool call arguments, completion texts, Responses output text and
function call arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TextFn = Callable[[str, str], str]


def _text_parts(parts: list[Any], where: str, fn: TextFn, kinds: tuple[str, ...]) -> list[Any]:
    out: list[Any] = []
    for i, part in enumerate(parts):
        if isinstance(part, str):
            out.append(fn(f"{where}[{i}]", part))
        elif (
            isinstance(part, dict)
            and part.get("type") in kinds
            and isinstance(part.get("text"), str)
        ):
            out.append({**part, "text": fn(f"{where}[{i}].text", part["text"])})
        else:
            out.append(part)
    return out


def _content(value: Any, where: str, fn: TextFn, kinds: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return fn(where, value)
    if isinstance(value, list):
        return _text_parts(value, where, fn, kinds)
    return value


def _tool_calls(calls: Any, where: str, fn: TextFn) -> Any:
    if not isinstance(calls, list):
        return calls
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            arguments = fn(f"{where}[{i}].function.arguments", function["arguments"])
            out.append({**call, "function": {**function, "arguments": arguments}})
        else:
            out.append(call)
    return out


def _chat_messages(messages: list[Any], fn: TextFn) -> list[Any]:
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)
            continue
        where = f"messages[{i}]"
        changed = {**message}
        if "content" in message:
            changed["content"] = _content(
                message["content"], f"{where}.content", fn, ("text", "input_text")
            )
        if "tool_calls" in message:
            changed["tool_calls"] = _tool_calls(message["tool_calls"], f"{where}.tool_calls", fn)
        out.append(changed)
    return out


def _responses_input(items: list[Any], fn: TextFn) -> list[Any]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            out.append(_content(item, f"input[{i}]", fn, ()))
            continue
        where = f"input[{i}]"
        changed = {**item}
        if "content" in item:
            changed["content"] = _content(
                item["content"], f"{where}.content", fn, ("input_text", "output_text", "text")
            )
        for key in ("arguments", "output"):
            if isinstance(item.get(key), str):
                changed[key] = fn(f"{where}.{key}", item[key])
        out.append(changed)
    return out


def map_request_text(endpoint: str, body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    out = dict(body)
    if endpoint == "chat/completions" and isinstance(body.get("messages"), list):
        out["messages"] = _chat_messages(body["messages"], fn)
    elif endpoint == "completions":
        out["prompt"] = _content(body.get("prompt"), "prompt", fn, ())
    elif endpoint == "responses":
        if isinstance(body.get("instructions"), str):
            out["instructions"] = fn("instructions", body["instructions"])
        value = body.get("input")
        out["input"] = (
            fn("input", value)
            if isinstance(value, str)
            else (_responses_input(value, fn) if isinstance(value, list) else value)
        )
    elif endpoint == "embeddings":
        out["input"] = _content(body.get("input"), "input", fn, ())
    return out


def map_answer_text(endpoint: str, answer: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    out = dict(answer)
    if endpoint in ("chat/completions", "completions") and isinstance(answer.get("choices"), list):
        choices = []
        for i, choice in enumerate(answer["choices"]):
            if not isinstance(choice, dict):
                choices.append(choice)
                continue
            changed = {**choice}
            if isinstance(choice.get("text"), str):
                changed["text"] = fn(f"choices[{i}].text", choice["text"])
            message = choice.get("message")
            if isinstance(message, dict):
                changed["message"] = _chat_messages([message], fn)[0]
            choices.append(changed)
        out["choices"] = choices
    elif endpoint == "responses" and isinstance(answer.get("output"), list):
        out["output"] = _responses_input(answer["output"], fn)
    return out
