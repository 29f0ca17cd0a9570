"""Masking, restoring (streamed and not) and the text-field walkers: pure logic."""

from __future__ import annotations

import random
import re

from gateway.redaction.fields import map_answer_text, map_request_text
from gateway.redaction.rehydrate import StreamRehydrator
from gateway.redaction.vault import Action, Vault

EMAIL = re.compile(r"[\w.]+@[\w.]+\.\w+")


def mask_emails(vault: Vault):  # type: ignore[no-untyped-def]
    def fn(where: str, text: str) -> str:
        return EMAIL.sub(lambda m: vault.replace(Action.MASK, "EMAIL", m.group(0)), text)

    return fn


def test_same_value_same_placeholder_and_restore() -> None:
    vault = Vault()
    a = vault.replace(Action.MASK, "EMAIL", "ann@x.io")
    b = vault.replace(Action.MASK, "EMAIL", "bob@x.io")
    assert (a, b, vault.replace(Action.MASK, "EMAIL", "ann@x.io")) == (
        "<EMAIL_1>",
        "<EMAIL_2>",
        "<EMAIL_1>",
    )
    assert (
        vault.restore("write to <EMAIL_2> and <EMAIL_1>, not <EMAIL_9>")
        == "write to bob@x.io and ann@x.io, not <EMAIL_9>"
    )
    assert vault.replace(Action.REDACT, "PHONE", "+1 555") == "[PHONE]"
    hashed = vault.replace(Action.HASH, "SSN", "123-45-6789")
    assert hashed.startswith("<SSN:") and hashed == Vault().replace(
        Action.HASH, "SSN", "123-45-6789"
    )
    assert vault.found == {"EMAIL": 3, "PHONE": 1, "SSN": 1}


def test_stream_restores_placeholders_split_anywhere() -> None:
    vault = Vault()
    vault.replace(Action.MASK, "EMAIL", "ann@x.io")
    vault.replace(Action.MASK, "CREDIT_CARD", "4111 1111 1111 1111")
    answer = "Mail <EMAIL_1> about card <CREDIT_CARD_1>; a < b and <TAG> stay."
    expected = vault.restore(answer)
    rng = random.Random(3)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(answer)), 6))
        pieces = [answer[i:j] for i, j in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
        rehydrator = StreamRehydrator(vault)
        assert "".join(rehydrator.feed(p) for p in pieces) + rehydrator.flush() == expected


def test_stream_holds_back_only_a_possible_placeholder() -> None:
    vault = Vault()
    vault.replace(Action.MASK, "EMAIL", "ann@x.io")
    rehydrator = StreamRehydrator(vault)
    assert rehydrator.feed("Hello <EM") == "Hello "
    assert rehydrator.feed("AIL_1> bye") == "ann@x.io bye"
    assert rehydrator.feed("x < 3 and") == "x < 3 and"  # not a placeholder: no wait
    assert rehydrator.feed(" <notatag") == " <notatag"


def test_every_request_shape_is_walked() -> None:
    vault = Vault()
    fn = mask_emails(vault)
    chat = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "owner ann@x.io"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "mail bob@x.io"},
                    {"type": "image_url", "image_url": {"url": "u@x.io"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to": "cy@x.io"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "sent to cy@x.io"},
        ],
    }
    out = map_request_text("chat/completions", chat, fn)
    text = str(out)
    assert "ann@x.io" not in text and "bob@x.io" not in text and "cy@x.io" not in text
    assert out["messages"][1]["content"][1]["image_url"]["url"] == "u@x.io"  # not text
    assert chat["messages"][0]["content"] == "owner ann@x.io"  # input untouched
    assert "x.io" not in str(map_request_text("completions", {"prompt": ["a@x.io"]}, fn)["prompt"])
    responses = {
        "instructions": "from z@x.io",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "to q@x.io"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"e": "r@x.io"}'},
            {"type": "function_call_output", "call_id": "c", "output": "ok s@x.io"},
        ],
    }
    assert "@x.io" not in str(map_request_text("responses", responses, fn))
    assert "@x.io" not in str(map_request_text("embeddings", {"input": ["t@x.io", "u"]}, fn))


def test_answers_are_walked_for_restoring() -> None:
    vault = Vault()
    vault.replace(Action.MASK, "EMAIL", "ann@x.io")
    chat = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "to <EMAIL_1>",
                    "tool_calls": [
                        {"id": "1", "function": {"name": "f", "arguments": '{"to": "<EMAIL_1>"}'}}
                    ],
                },
            }
        ]
    }
    out = map_answer_text("chat/completions", chat, lambda w, t: vault.restore(t))
    assert "ann@x.io" in out["choices"][0]["message"]["content"]
    assert "ann@x.io" in out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    responses = {
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "hi <EMAIL_1>"}]}
        ]
    }
    assert "ann@x.io" in str(map_answer_text("responses", responses, lambda w, t: vault.restore(t)))


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    import orjson

    delta = {} if content is None else {"content": content}
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def test_streamed_chat_chunks_are_restored_across_chunk_boundaries() -> None:
    import orjson

    from gateway.redaction.stream import RehydratingTransform
    from gateway.serving.transforms import ChatPassthrough

    vault = Vault()
    vault.replace(Action.MASK, "EMAIL", "ann@x.io")
    transform = RehydratingTransform(
        ChatPassthrough(strip_usage_chunk=False), vault, "chat/completions"
    )
    events = [
        _chunk("Write to <EM"),
        _chunk("AIL_1> today"),
        _chunk(" or <EMAIL"),
        _chunk(None, "stop"),
        b"data: [DONE]\n\n",
    ]
    out = [e for event in events for e in transform.feed(event)]
    text = ""
    for event in out:
        if event.startswith(b"data: {"):
            choice = orjson.loads(event[6:])["choices"][0]
            text += choice["delta"].get("content") or ""
    assert text == "Write to ann@x.io today or <EMAIL"
    assert out[-1] == b"data: [DONE]\n\n"
