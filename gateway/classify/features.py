"""Extract the classifier's `RequestView` from an OpenAI request body, in microseconds.

Shapes understood (anything else degrades to empty text, never an exception):

- `/v1/chat/completions`: `messages`, each `content` a string or a list of content
  parts (`text`, `image_url`, `input_audio`, ...); tools, response_format, max_tokens /
  max_completion_tokens.
- `/v1/completions`: `prompt` as a string or a list of strings (token arrays are skipped).
- `/v1/responses`: `input` (a string or a list of items with `content` parts such as
  `input_text` / `input_image`) plus `instructions`; max_output_tokens, text.format.
- `/v1/embeddings`: `input` as a string or a list of strings.
"""

from __future__ import annotations

from typing import Any

from gateway.classify.types import RequestView

#: The last turn is capped here: the length feature saturates well before it.
MAX_TEXT_CHARS = 32_000
#: A last turn shorter than this borrows context from the previous user turn.
SHORT_TURN_CHARS = 48
CONTEXT_CHARS = 200

_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_AUDIO_PARTS = frozenset({"input_audio", "audio"})
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


class _Parts:
    """Accumulates text and media flags while walking content parts."""

    __slots__ = ("audio", "images")

    def __init__(self) -> None:
        self.images = False
        self.audio = False

    def text_of(self, content: Any) -> str:
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            return ""
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in _TEXT_PARTS:
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
            elif kind in _IMAGE_PARTS:
                self.images = True
            elif kind in _AUDIO_PARTS:
                self.audio = True
        return "\n".join(texts)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _conversation(
    messages: list[Any], parts: _Parts, default_role: str = "user"
) -> tuple[str, str, int]:
    """(last user text, context from the previous user turn, non-system turns)."""
    texts: list[tuple[str, str]] = []
    for message in messages:
        if isinstance(message, str):
            texts.append((default_role, message))
        elif isinstance(message, dict):
            role = message.get("role")
            if role is None:
                if message.get("type", "message") != "message":
                    continue  # tool calls and their outputs carry no user intent
                role = default_role
            if role in ("system", "developer"):
                parts.text_of(message.get("content"))
                continue
            texts.append((str(role), parts.text_of(message.get("content"))))
    user = [text for role, text in texts if role == "user"]
    if not user:
        last = texts[-1][1] if texts else ""
        return last, "", len(texts)
    context = user[-2][:CONTEXT_CHARS] if len(user) > 1 else ""
    return user[-1], context, len(texts)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _wants_json(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    text = body.get("text")
    if isinstance(text, dict):
        fmt = text.get("format", fmt)
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def request_text(endpoint: str, body: dict[str, Any]) -> RequestView:
    """Build the `RequestView` for `body` sent to `endpoint` (a path or a short name)."""
    parts = _Parts()
    context = ""
    turns = 1
    if "embeddings" in endpoint:
        strings = _strings(body.get("input"))
        text = "\n".join(strings[:4])
    elif "responses" in endpoint:
        raw = body.get("input")
        if isinstance(raw, list):
            text, context, turns = _conversation(raw, parts)
        else:
            text = raw if isinstance(raw, str) else ""
        instructions = body.get("instructions")
        if not text and isinstance(instructions, str):
            text = instructions
    elif "chat" in endpoint or "messages" in body:
        messages = body.get("messages")
        text, context, turns = _conversation(messages if isinstance(messages, list) else [], parts)
    else:
        strings = _strings(body.get("prompt"))
        text = strings[-1] if strings else ""
    text = text[:MAX_TEXT_CHARS]
    stripped = text.strip()
    intent_text = f"{context}\n{stripped}" if context and len(stripped) < SHORT_TURN_CHARS else text
    tools = body.get("tools") or body.get("functions")
    max_out = (
        _int_or_none(body.get("max_completion_tokens"))
        or _int_or_none(body.get("max_tokens"))
        or _int_or_none(body.get("max_output_tokens"))
    )
    return RequestView(
        endpoint=endpoint,
        text=text,
        intent_text=intent_text,
        turns=max(turns, 1),
        has_images=parts.images,
        has_audio=parts.audio,
        has_tools=isinstance(tools, list) and len(tools) > 0,
        wants_json=_wants_json(body),
        max_output_tokens=max_out,
    )


def text_view(text: str) -> RequestView:
    """A one-turn chat request holding `text` (for `flywheel ctl classify`, evaluation)."""
    return request_text("/v1/chat/completions", {"messages": [{"role": "user", "content": text}]})
