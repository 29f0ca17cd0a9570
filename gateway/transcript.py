"""How a request and its answer read as plain text: the one rendering shared by what
the learner trains on (`learner.datasets`), what the gates score, and what the gateway's
reward-picking ensemble sends to `/v1/score`. A reward model scores well only on prompts
rendered the way it was trained on, so there is exactly one `prompt_text`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str


Prompt = tuple[Turn, ...]


def render_prompt(endpoint: str, body: Mapping[str, Any] | None) -> Prompt:
    """The request's text turns: chat messages, a completions prompt, Responses input.
    Turns without text (an image alone, an empty message) are left out."""
    if body is None:
        return ()
    turns: list[Turn] = []
    if endpoint == "chat/completions":
        turns = list(chat_turns(body.get("messages") or []))
    elif endpoint == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, str):
            turns.append(Turn("user", prompt))
    elif endpoint == "responses":
        if isinstance(body.get("instructions"), str):
            turns.append(Turn("system", body["instructions"]))
        items = body.get("input")
        if isinstance(items, str):
            turns.append(Turn("user", items))
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                turns.append(Turn("tool", str(item.get("output", ""))))
            elif isinstance(item, dict) and "role" in item:
                turns.append(Turn(str(item["role"]), content_text(item.get("content"))))
    return tuple(t for t in turns if t.content.strip())


def chat_turns(messages: Sequence[Any]) -> Prompt:
    """Chat messages (`{"role", "content"}` dicts) as text turns; others are skipped."""
    turns = (
        Turn(str(m.get("role", "user")), content_text(m.get("content")))
        for m in messages
        if isinstance(m, Mapping)
    )
    return tuple(t for t in turns if t.content.strip())


def render_response(body: Mapping[str, Any] | None) -> str:
    """The answer's text: a chat or completions body, a streamed answer, a Response."""
    if body is None:
        return ""
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return content_text(message.get("content"))
        return str(choices[0].get("text") or "")
    if isinstance(body.get("output_text"), str):
        return str(body["output_text"])
    if isinstance(body.get("output"), list):
        return "\n".join(
            content_text(item.get("content"))
            for item in body["output"]
            if isinstance(item, dict) and item.get("type") == "message"
        )
    return content_text(body.get("content"))


def content_text(content: Any) -> str:
    """A message content's text: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str)
            or (
                isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text")
            )
        ]
        return "\n".join(parts)
    return ""


def prompt_text(prompt: Prompt) -> str:
    """What a reward model reads as the prompt: a lone user turn as is, else every turn
    as `role: text`, separated by blank lines."""
    if len(prompt) == 1 and prompt[0].role == "user":
        return prompt[0].content
    return "\n\n".join(f"{t.role}: {t.content}" for t in prompt)


def reward_prompt(prompt: str | Sequence[Mapping[str, Any]]) -> str:
    """`prompt_text` of a prompt given as a string (one user turn) or as chat messages:
    what RL rewards and the gates hand a reward model."""
    return prompt if isinstance(prompt, str) else prompt_text(chat_turns(prompt))
