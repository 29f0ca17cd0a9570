"""From a wire request to a `Plan`: what the mock will produce for it.

A plan holds the prompt size (ceil(characters of text content / 4)), the output pieces
of one choice (one token each: `"<model> tok0", " tok1", ...`, or the pieces of a tool
call's arguments), the finish reason after `max_tokens` and `stop`, `n`, and the stream
options. Malformed fields raise `RequestError`, which the server answers with 400.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

TOOL_ARGUMENTS = '{"echo": true}'
TOOL_PIECES = ('{"ec', 'ho":', " tru", "e}")  # the arguments, one "token" per piece
JSON = dict[str, Any]
MAX_N = 128  # as OpenAI: more choices is a 400


class RequestError(ValueError):
    """A request the mock refuses with 400; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request will produce."""

    model: str
    prompt_tokens: int
    pieces: tuple[str, ...]  # one choice's output: text tokens, or tool-argument pieces
    finish_reason: str  # "stop" | "length" | "tool_calls"
    n: int = 1
    tool: str | None = None
    stream: bool = False
    include_usage: bool = False

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) * self.n

    def usage(self) -> JSON:
        c = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": c,
            "total_tokens": self.prompt_tokens + c,
        }


@lru_cache(maxsize=1024)
def text_pieces(model: str, count: int) -> tuple[str, ...]:
    """`"<model> tok0", " tok1", ...`: deterministic, `count` tokens."""
    return tuple(f"{model} tok0" if i == 0 else f" tok{i}" for i in range(count))


def reply_pieces(reply: str) -> tuple[str, ...]:
    """A fixed answer text as token pieces: one per word."""
    return tuple(w if i == 0 else f" {w}" for i, w in enumerate(reply.split(" ")))


def with_reply(plan: Plan, reply: str) -> Plan:
    """The plan (made for `len(reply_pieces(reply))` output tokens, so its length and
    finish reason already follow the request's cap) answering the fixed text instead."""
    return dataclasses.replace(plan, pieces=reply_pieces(reply)[: len(plan.pieces)])


def content_chars(value: Any) -> int:
    """Characters of text in a content value: a string, or a list of parts with text."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for part in value:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, int) and not isinstance(part, bool):
                total += 4  # a token id
            elif isinstance(part, dict):
                total += content_chars(part.get("text")) + content_chars(part.get("content"))
        return total
    return 0


def tokens_for(chars: int) -> int:
    return (chars + 3) // 4


def _int(body: JSON, name: str, default: int, minimum: int, maximum: int = 2**62) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise RequestError(f"'{name}' must be an integer in [{minimum}, {maximum}]", name)
    return value


def _stops(body: JSON) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(s for s in stop if s)
    raise RequestError("'stop' must be a string or a list of strings", "stop")


def tool_name(body: JSON) -> str | None:
    """The tool to call: the named one in tool_choice, else the first; None for no tools."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        named = choice.get("function", choice)
        if isinstance(named, dict) and isinstance(named.get("name"), str):
            return str(named["name"])
    first = tools[0] if isinstance(tools[0], dict) else {}
    function = first.get("function", first)
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else "tool"


def make_plan(
    body: JSON,
    model: str,
    prompt: int,
    output_tokens: int,
    cap: int | None,
    n: int = 1,
    tool: str | None = None,
) -> Plan:
    stream = body.get("stream") is True
    options = body.get("stream_options")
    usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    if tool is not None:
        return Plan(model, prompt, TOOL_PIECES, "tool_calls", n, tool, stream, usage)
    count = output_tokens if cap is None else min(cap, output_tokens)
    pieces = text_pieces(model, count)
    finish = "length" if count < output_tokens else "stop"
    stops = _stops(body)
    if stops:
        text = "".join(pieces)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            kept, pos = [], 0
            for piece in pieces:
                if pos >= cut:
                    break
                kept.append(piece[: cut - pos])
                pos += len(piece)
            pieces, finish = tuple(kept), "stop"
    return Plan(model, prompt, pieces, finish, n, None, stream, usage)


def token_cap(body: JSON, *names: str) -> int | None:
    for name in names:
        if body.get(name) is not None:
            return _int(body, name, 0, 0)
    return None


def plan_chat(body: JSON, model: str, output_tokens: int) -> Plan:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RequestError("'messages' must be a list", "messages")
    chars = sum(content_chars(m.get("content")) for m in messages if isinstance(m, dict))
    cap = token_cap(body, "max_completion_tokens", "max_tokens")
    n = _int(body, "n", 1, 1, MAX_N)
    plan = make_plan(body, model, tokens_for(chars), output_tokens, cap, n, tool_name(body))
    if model.startswith("echo") and plan.tool is None:
        # Echo models repeat the last user message in 3-character pieces: tests use them
        # to see what reached the upstream come back (split at awkward places).
        text = _last_user_text(messages)
        pieces = tuple(text[i : i + 3] for i in range(0, len(text), 3)) or ("",)
        plan = dataclasses.replace(plan, pieces=pieces, finish_reason="stop")
    return plan


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def plan_completion(body: JSON, model: str, output_tokens: int) -> Plan:
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list):
        raise RequestError("'prompt' must be a string or a list", "prompt")
    cap = token_cap(body, "max_tokens")
    return make_plan(
        body,
        model,
        tokens_for(content_chars(prompt)),
        output_tokens,
        cap,
        _int(body, "n", 1, 1, MAX_N),
    )


def plan_response(body: JSON, model: str, output_tokens: int) -> Plan:
    items = body.get("input")
    if not isinstance(items, str | list):
        raise RequestError("'input' must be a string or a list of items", "input")
    chars = content_chars(body.get("instructions")) + content_chars(items)
    if isinstance(items, list):
        chars += sum(content_chars(i.get("output")) for i in items if isinstance(i, dict))
    cap = token_cap(body, "max_output_tokens")
    return make_plan(body, model, tokens_for(chars), output_tokens, cap, 1, tool_name(body))
