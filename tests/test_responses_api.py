"""The Responses API translation layer: requests, plain responses and streams.

Pure unit tests: every Response object and stream event is validated against the
openai SDK's own models, and the end-to-end cases drive the SDK's client and SSE parser
through `httpx.MockTransport`, with no network.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.responses import (
    FunctionToolParam,
    Response,
    ResponseCompletedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from pydantic import TypeAdapter

from gateway.errors import InvalidRequest
from gateway.responses_api import (
    ResponsesStreamTranslator,
    chat_request_from_responses,
    encode_sse,
    response_from_chat,
)

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER_TOOL: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


# --- requests -----------------------------------------------------------------------


def _req(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "x", **fields}


def _item(**item: Any) -> dict[str, Any]:
    return _req(input=[item])


def _user_part(**part: Any) -> dict[str, Any]:
    return _item(role="user", content=[part])


def _fc(call_id: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": "w", "arguments": arguments}


def _tool_call(call_id: str, arguments: str, name: str = "w") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_string_input_and_instructions() -> None:
    chat = chat_request_from_responses(_req(instructions="Be brief.", input="Hi"))
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    }


def test_message_items_and_content_parts() -> None:
    image = "data:image/png;base64,AA"
    audio = {"data": "UklG", "format": "wav"}
    user_parts = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://x/cat.png"},
        {"type": "input_image", "image_url": image, "detail": "low"},
        {"type": "input_audio", "input_audio": audio},
    ]
    chat = chat_request_from_responses(
        _req(
            input=[
                {"role": "developer", "content": "Rules."},
                {
                    "type": "message",
                    "role": "system",
                    "content": [{"type": "input_text", "text": "S"}],
                },
                {"type": "message", "role": "user", "content": user_parts},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "A cat.", "annotations": []}],
                },
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
            ]
        )
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "S"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "auto"}},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                {"type": "input_audio", "input_audio": audio},
            ],
        },
        {"role": "assistant", "content": "A cat."},
        {"role": "assistant", "content": None, "refusal": "No."},
    ]


def test_function_calls_merge_and_outputs_become_tool_messages() -> None:
    chat = chat_request_from_responses(
        _req(
            input=[
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "assistant", "content": "Checking."},
                _fc("c1", '{"city":"Paris"}'),
                _fc("c2", '{"city":"Rome"}'),
                {"type": "function_call_output", "call_id": "c1", "output": "18C"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "21C"}],
                },
                _fc("c3", "{}"),
            ]
        )
    )
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                _tool_call("c1", '{"city":"Paris"}'),
                _tool_call("c2", '{"city":"Rome"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "tool", "tool_call_id": "c2", "content": "21C"},
        {"role": "assistant", "content": None, "tool_calls": [_tool_call("c3", "{}")]},
    ]


def test_tools_tool_choice_and_settings() -> None:
    schema_format = {
        "type": "json_schema",
        "name": "w",
        "schema": {"type": "object"},
        "strict": True,
    }
    chat = chat_request_from_responses(
        _req(
            input="Hi",
            tools=[WEATHER_TOOL, {"type": "function", "name": "noop"}],
            tool_choice={"type": "function", "name": "get_weather"},
            parallel_tool_calls=False,
            max_output_tokens=64,
            temperature=0.2,
            top_p=0.9,
            user="u1",
            metadata={"k": "v"},
            seed=7,
            stream=True,
            reasoning={"effort": "low", "summary": "auto"},
            text={"format": schema_format},
            # Ignored, and unknown:
            store=True,
            include=["reasoning.encrypted_content"],
            truncation="auto",
            background=False,
            something_new=1,
        )
    )
    function = {k: v for k, v in WEATHER_TOOL.items() if k != "type"}
    assert chat == {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [
            {"type": "function", "function": function},
            {"type": "function", "function": {"name": "noop"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u1",
        "metadata": {"k": "v"},
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
        },
    }


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_strings_pass(choice: str) -> None:
    assert chat_request_from_responses(_req(tool_choice=choice))["tool_choice"] == choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "json_object"}}, {"type": "json_object"}),
        ({"format": {"type": "text"}}, None),
        ({"verbosity": "low"}, None),
    ],
)
def test_text_format(text: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert chat_request_from_responses(_req(text=text)).get("response_format") == expected


def test_stream_false_adds_no_stream_options() -> None:
    chat = chat_request_from_responses(_req(stream=False))
    assert chat["stream"] is False and "stream_options" not in chat


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_req(previous_response_id="resp_1"), "previous_response_id"),
        (_req(conversation="conv_1"), "conversation"),
        (_req(prompt={"id": "pmpt_1"}), "prompt"),
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        (_req(input=5), "input"),
        (_req(input=[]), "input"),
        (_req(input=["hi"]), "input[0]"),
        (
            _req(input=[{"role": "user", "content": "a"}] * 3 + [{"type": "web_search_call"}]),
            "input[3].type",
        ),
        (_item(type="item_reference", id="msg_1"), "input[0].type"),
        (_item(role="tool", content="x"), "input[0].role"),
        (_item(role="user", content=7), "input[0].content"),
        (
            _item(
                role="user",
                content=[
                    {"type": "input_text", "text": "a"},
                    {"type": "input_image", "file_id": "f"},
                ],
            ),
            "input[0].content[1].file_id",
        ),
        (_user_part(type="input_image"), "input[0].content[0].image_url"),
        (_user_part(type="input_file", file_id="f"), "input[0].content[0].type"),
        (_user_part(type="input_audio"), "input[0].content[0].input_audio"),
        (_user_part(type="input_text"), "input[0].content[0].text"),
        (
            _item(role="system", content=[{"type": "input_image", "image_url": "u"}]),
            "input[0].content[0].type",
        ),
        (_item(type="function_call", call_id="c", name="f"), "input[0].arguments"),
        (_item(type="function_call_output", call_id="c", output=3), "input[0].output"),
        (
            _item(type="function_call_output", call_id="c", output=[{"type": "input_image"}]),
            "input[0].output[0].type",
        ),
        (_req(tools=[WEATHER_TOOL, {"type": "web_search"}]), "tools[1].type"),
        (_req(tools=[{"type": "file_search", "vector_store_ids": []}]), "tools[0].type"),
        (_req(tools=[{"type": "function"}]), "tools[0].name"),
        (_req(tools={}), "tools"),
        (_req(tool_choice={"type": "web_search_preview"}), "tool_choice"),
        (_req(tool_choice="sometimes"), "tool_choice"),
        (_req(text={"format": {"type": "xml"}}), "text.format.type"),
        (_req(text={"format": {"type": "json_schema", "name": "n"}}), "text.format.schema"),
        (_req(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name"),
        (_req(stream="yes"), "stream"),
        (_req(reasoning="high"), "reasoning"),
    ],
)
def test_untranslatable_requests_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat_request_from_responses(body)
    assert caught.value.param == param
    assert caught.value.status == 400
    assert f"`{param}`" in caught.value.message
    assert caught.value.body()["error"]["param"] == param


def test_non_object_body_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        chat_request_from_responses([])  # type: ignore[arg-type]


# --- plain responses ----------------------------------------------------------------


def _chat(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", **message},
        "finish_reason": finish_reason,
    }
    usage: dict[str, Any] = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    usage |= {"prompt_tokens_details": {"cached_tokens": 4}}
    usage |= {"completion_tokens_details": {"reasoning_tokens": 2}}
    return {
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "up",
        "choices": [choice],
        "usage": usage,
    }


def test_text_completion_becomes_a_response() -> None:
    request = _req(instructions="Be brief.", tools=[WEATHER_TOOL], metadata={"a": "b"})
    body = response_from_chat(_chat({"content": "Hello!"}), request, response_id="resp_abc")
    response = Response.model_validate(body)
    assert response.id == "resp_abc"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.created_at == 1_700_000_000
    assert response.model == "up"
    assert response.output_text == "Hello!"
    assert response.error is None and response.incomplete_details is None
    assert response.instructions == "Be brief."
    assert response.tool_choice == "auto"
    assert response.tools[0].type == "function" and response.tools[0].name == "get_weather"
    assert response.parallel_tool_calls is True
    assert response.metadata == {"a": "b"}
    assert response.usage is not None
    assert response.usage.input_tokens == 12
    assert response.usage.output_tokens == 5
    assert response.usage.total_tokens == 17
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    [item] = body["output"]
    assert (
        item["type"] == "message"
        and item["id"].startswith("msg_")
        and item["status"] == "completed"
    )
    assert item["content"] == [
        {"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}
    ]
    assert orjson.loads(orjson.dumps(body)) == body


def test_tool_call_completion_becomes_function_call_items() -> None:
    calls = [_tool_call("call_1", '{"city":"Paris"}', "get_weather"), _tool_call("call_2", "{}")]
    body = response_from_chat(_chat({"content": None, "tool_calls": calls}, "tool_calls"), _req())
    response = Response.model_validate(body)
    assert body["id"].startswith("resp_")
    assert response.output_text == ""
    assert [item.type for item in response.output] == ["function_call", "function_call"]
    first = body["output"][0]
    assert first["id"].startswith("fc_")
    assert (first["call_id"], first["name"], first["arguments"], first["status"]) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
        "completed",
    )
    assert body["output"][1]["call_id"] == "call_2"


def test_text_and_tool_call_keep_the_message_first() -> None:
    message = {"content": "Let me check.", "tool_calls": [_tool_call("call_1", "{}")]}
    body = response_from_chat(_chat(message), _req())
    response = Response.model_validate(body)
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text == "Let me check."


def test_length_finish_is_incomplete() -> None:
    body = response_from_chat(
        _chat({"content": "Once upon a"}, "length"), _req(max_output_tokens=3)
    )
    response = Response.model_validate(body)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 3
    assert response.output_text == "Once upon a"
    assert body["output"][0]["status"] == "incomplete"


def test_refusal_and_missing_usage() -> None:
    chat = _chat({"content": None, "refusal": "I can't help with that."})
    del chat["usage"]
    body = response_from_chat(chat, _req())
    response = Response.model_validate(body)
    assert body["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't help with that."}
    ]
    assert response.usage is None
    assert response.output_text == ""


# --- streams ------------------------------------------------------------------------


def _chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"object": "chat.completion.chunk", "model": "up", "choices": choices, **extra}


def _tool_delta(
    index: int, arguments: str, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


TEXT = "Let me check the weather."
USAGE = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
TEXT_THEN_TOOL = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Let me "}),
    _chunk({"content": "check the "}),
    _chunk({"content": "weather."}),
    _chunk(_tool_delta(0, "", "call_1", "get_weather")),
    _chunk(_tool_delta(0, '{"ci')),
    _chunk(_tool_delta(0, 'ty": "Pa')),
    _chunk(_tool_delta(0, 'ris"}')),
    _chunk({}, "tool_calls"),
    _chunk(None, usage=USAGE),
]


def _translate(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = ResponsesStreamTranslator(_req(), response_id="resp_s", created_at=5)
    pairs = translator.start()
    for chunk in chunks:
        pairs += translator.feed(chunk)
    pairs += translator.finish()
    for event_type, data in pairs:
        assert data["type"] == event_type
        EVENTS.validate_python(data)
    return [data for _, data in pairs]


def test_stream_of_text_then_tool_call() -> None:
    events = _translate(TEXT_THEN_TOOL)
    expected = (
        "created in_progress output_item.added content_part.added"
        + " output_text.delta" * 3
        + " output_text.done content_part.done output_item.done output_item.added"
        + " function_call_arguments.delta" * 3
        + " function_call_arguments.done output_item.done completed"
    )
    assert [event["type"] for event in events] == ["response." + t for t in expected.split()]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )

    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(e["delta"] for e in deltas) == TEXT
    assert {(e["item_id"], e["output_index"], e["content_index"]) for e in deltas} == {
        (events[2]["item"]["id"], 0, 0)
    }
    arguments = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(e["delta"] for e in arguments) == '{"city": "Paris"}'
    assert all(e["output_index"] == 1 for e in arguments)

    final = Response.model_validate(events[-1]["response"])
    assert final.id == "resp_s" and final.created_at == 5 and final.status == "completed"
    assert final.model == "up"
    assert final.output_text == TEXT
    usage = final.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (20, 9, 29)
    message, call = events[-1]["response"]["output"]
    assert message == events[9]["item"]
    assert call == events[15]["item"]
    assert call["call_id"] == "call_1" and call["name"] == "get_weather"
    assert call["arguments"] == '{"city": "Paris"}' and call["status"] == "completed"


def test_interleaved_parallel_tool_calls_keep_their_arguments() -> None:
    events = _translate(
        [
            _chunk(_tool_delta(0, '{"city":', "call_a", "w")),
            _chunk(_tool_delta(1, '{"city":', "call_b", "w")),
            _chunk(_tool_delta(1, '"Rome"}')),
            _chunk(_tool_delta(0, '"Paris"}'), "tool_calls"),
        ]
    )
    output = events[-1]["response"]["output"]
    assert [(item["call_id"], item["arguments"]) for item in output] == [
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Rome"}'),
    ]
    assert events[-1]["response"]["usage"] is None


def test_length_finish_streams_response_incomplete() -> None:
    events = _translate([_chunk({"content": "Once upon"}, "length"), _chunk(None, usage=USAGE)])
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert events[-2]["item"]["status"] == "incomplete"


def test_refusal_stream() -> None:
    events = _translate([_chunk({"refusal": "I can't "}), _chunk({"refusal": "do that."}, "stop")])
    types = [event["type"] for event in events]
    assert types.count("response.refusal.delta") == 2 and "response.refusal.done" in types
    content = events[-1]["response"]["output"][0]["content"]
    assert content == [{"type": "refusal", "refusal": "I can't do that."}]


def test_empty_stream_answers_an_empty_message() -> None:
    events = _translate([_chunk({"role": "assistant", "content": ""}, "stop")])
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "" and len(final.output) == 1 and final.output[0].type == "message"


def test_fail_reports_response_failed() -> None:
    translator = ResponsesStreamTranslator(_req())
    pairs = translator.fail("upstream went away", "upstream_unavailable")
    assert [event_type for event_type, _ in pairs][1:] == [
        "response.in_progress",
        "response.failed",
    ]
    data = pairs[-1][1]
    EVENTS.validate_python(data)
    response = Response.model_validate(data["response"])
    assert response.status == "failed"
    assert response.error is not None
    assert (response.error.code, response.error.message) == ("server_error", "upstream went away")

    translator = ResponsesStreamTranslator(_req())
    pairs = translator.start() + translator.feed(_chunk({"content": "partial"}))
    pairs += translator.fail("slow down", "upstream_rate_limited")
    data = pairs[-1][1]
    EVENTS.validate_python(data)
    assert data["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert data["response"]["output"][0]["status"] == "incomplete"
    assert data["response"]["output"][0]["content"][0]["text"] == "partial"
    with pytest.raises(RuntimeError):
        translator.feed(_chunk({"content": "more"}))


def test_encode_sse() -> None:
    frame = encode_sse("response.output_text.delta", {"type": "x", "delta": "hé"})
    assert frame == b'event: response.output_text.delta\ndata: {"type":"x","delta":"h\xc3\xa9"}\n\n'


# --- end to end through the openai SDK ----------------------------------------------


def _gateway(chunks: list[dict[str, Any]], seen: list[dict[str, Any]]) -> httpx.MockTransport:
    """A fake gateway: translate the SDK's request, then answer from `chunks`."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/responses"
        body = json.loads(request.content)
        seen.append(chat_request_from_responses(body))
        if not body.get("stream"):
            return httpx.Response(200, json=response_from_chat(_chat({"content": TEXT}), body))
        translator = ResponsesStreamTranslator(body)
        pairs = translator.start()
        for chunk in chunks:
            pairs += translator.feed(chunk)
        pairs += translator.finish()
        content = b"".join(encode_sse(event_type, data) for event_type, data in pairs)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)

    return httpx.MockTransport(handle)


def _client(transport: httpx.MockTransport) -> openai.AsyncOpenAI:
    # The SDK is typed for httpx2 but accepts a plain httpx client, as used here.
    http_client: Any = httpx.AsyncClient(transport=transport)
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://gateway.test/v1", http_client=http_client
    )


async def test_sdk_parses_the_translated_stream() -> None:
    seen: list[dict[str, Any]] = []
    client = _client(_gateway(TEXT_THEN_TOOL, seen))
    stream = await client.responses.create(
        model="m", input="Weather in Paris?", tools=[WEATHER_TOOL], stream=True
    )
    events = [event async for event in stream]
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)) == TEXT
    assert any(isinstance(e, ResponseFunctionCallArgumentsDeltaEvent) for e in events)
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert events[-1].response.output_text == TEXT
    assert events[-1].response.usage is not None and events[-1].response.usage.total_tokens == 29


async def test_sdk_stream_helper_accumulates_the_final_response() -> None:
    client = _client(_gateway(TEXT_THEN_TOOL, []))
    async with client.responses.stream(model="m", input="Weather?", tools=[WEATHER_TOOL]) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert final.output_text == TEXT
    call = final.output[1]
    assert call.type == "function_call" and call.arguments == '{"city": "Paris"}'


async def test_sdk_parses_a_plain_response() -> None:
    client = _client(_gateway(TEXT_THEN_TOOL, []))
    response = await client.responses.create(model="m", input="Hi")
    assert response.output_text == TEXT
    assert response.usage is not None and response.usage.input_tokens == 12
