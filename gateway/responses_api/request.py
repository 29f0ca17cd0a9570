"""Translate an OpenAI Responses API request into a Chat Completions request.

`chat_request_from_responses` turns a `POST /v1/responses` body into the body of an
equivalent `POST /v1/chat/completions`, for providers that only speak chat.

Translated: `model`; `instructions` (a leading system message); `input` as a string
(one user message) or a list of items - messages (`developer` becomes `system`),
`function_call` items (merged into the preceding assistant message, so a turn's text
and its tool calls travel together), `function_call_output` items (tool messages);
`reasoning` items are dropped. Function `tools`, `tool_choice`, `parallel_tool_calls`,
`max_output_tokens` (as `max_tokens`), `temperature`, `top_p`, `user`, `metadata`,
`seed`, `stream` (adding `stream_options.include_usage`), `text.format` (as
`response_format`) and `reasoning.effort` (as `reasoning_effort`).

Rejected with `InvalidRequest` naming the parameter: anything needing server-side state
(`previous_response_id`, `conversation`, `prompt`, `item_reference` items), built-in
tools (web_search, file_search, ...), `file_id` images and input files, and bad shapes.

Ignored: `store`, `include`, `truncation` and `background` (a chat provider keeps no
state and runs in the foreground), and any other top-level key chat has no use for.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest

_STATEFUL = ("previous_response_id", "conversation", "prompt")
_PASSTHROUGH = ("temperature", "top_p", "user", "metadata", "seed", "parallel_tool_calls")
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = ("input_text", "output_text")
_VIA_CHAT = "when this model is served through Chat Completions"
_STATEFUL_WHY = "needs server-side state this gateway lacks; send the whole conversation in `input`"
_FILE_ID_WHY = "needs the Files API, which this model's provider lacks; send `image_url` instead"
_BUILT_IN_WHY = "built-in tools cannot run on this model's provider, only `function` tools"
# Which chat content-part types each Responses role may carry.
_ALLOWED_PARTS = {
    "user": {"text", "image_url", "input_audio"},
    "assistant": {"text", "refusal"},
    "system": {"text"},
    "developer": {"text"},
}


def chat_request_from_responses(body: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions request equivalent to the Responses request `body`."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    for key in _STATEFUL:
        if body.get(key) is not None:
            raise _bad(key, _STATEFUL_WHY)
    chat: dict[str, Any] = {"model": _string(body, "model", ""), "messages": _messages(body)}
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    for key in _PASSTHROUGH:
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise _bad("stream", "must be a boolean")
        chat["stream"] = stream
        if stream:
            chat["stream_options"] = {"include_usage": True}
    if body.get("text") is not None:
        response_format = _response_format(body["text"])
        if response_format is not None:
            chat["response_format"] = response_format
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _bad("reasoning", "must be an object")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    return chat


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if body.get("instructions") is not None:
        messages.append({"role": "system", "content": _string(body, "instructions", "")})
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        for index, item in enumerate(raw):
            _append_item(messages, item, f"input[{index}]")
    else:
        raise _bad("input", "must be a string or a list of items")
    if not messages:
        raise _bad("input", "must contain at least one item")
    return messages


def _append_item(messages: list[dict[str, Any]], item: Any, path: str) -> None:
    if not isinstance(item, dict):
        raise _bad(path, "must be an object")
    kind = item.get("type") or "message"
    if kind == "message":
        messages.append(_message(item, path))
    elif kind == "function_call":
        _append_function_call(messages, item, path)
    elif kind == "function_call_output":
        messages.append(_tool_result(item, path))
    elif kind != "reasoning":
        raise _bad(f"{path}.type", f"{kind!r} is not supported {_VIA_CHAT}")


def _message(item: dict[str, Any], path: str) -> dict[str, Any]:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise _bad(f"{path}.role", "must be one of user, assistant, system, developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": _ROLES[role], "content": content}
    if not isinstance(content, list):
        raise _bad(f"{path}.content", "must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        part_path = f"{path}.content[{index}]"
        chat_part = _part(part, part_path)
        if chat_part["type"] not in _ALLOWED_PARTS[role]:
            raise _bad(f"{part_path}.type", f"{part['type']!r} is not allowed in a {role} message")
        parts.append(chat_part)
    if role == "user":
        return {"role": "user", "content": parts}
    # Assistant and system turns travel as plain strings, which every provider accepts.
    text = "".join(part["text"] for part in parts if part["type"] == "text")
    message: dict[str, Any] = {"role": _ROLES[role], "content": text}
    refusal = "".join(part["refusal"] for part in parts if part["type"] == "refusal")
    if refusal:
        message["refusal"] = refusal
        message["content"] = text or None
    return message


def _part(part: Any, path: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _bad(path, "must be an object")
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": _string(part, "text", path)}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(part, "refusal", path)}
    if kind == "input_image":
        if part.get("file_id") is not None:
            raise _bad(f"{path}.file_id", _FILE_ID_WHY)
        url = _string(part, "image_url", path)
        detail = part.get("detail") or "auto"
        return {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    if kind == "input_audio":
        audio, audio_path = part.get("input_audio"), f"{path}.input_audio"
        if not isinstance(audio, dict):
            raise _bad(audio_path, "must be an object with `data` and `format`")
        audio = {key: _string(audio, key, audio_path) for key in ("data", "format")}
        return {"type": "input_audio", "input_audio": audio}
    raise _bad(f"{path}.type", f"{kind!r} is not supported {_VIA_CHAT}")


def _append_function_call(messages: list[dict[str, Any]], item: dict[str, Any], path: str) -> None:
    function = {key: _string(item, key, path) for key in ("name", "arguments")}
    call = {"id": _string(item, "call_id", path), "type": "function", "function": function}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_result(item: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = _string(item, "call_id", path)
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for index, part in enumerate(output):
            part_path = f"{path}.output[{index}]"
            if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                raise _bad(f"{part_path}.type", "must be input_text: chat tool results are text")
            texts.append(_string(part, "text", part_path))
        output = "".join(texts)
    if not isinstance(output, str):
        raise _bad(f"{path}.output", "must be a string or a list of text parts")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _bad("tools", "must be a list")
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(raw):
        path = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise _bad(path, "must be an object")
        if tool.get("type") != "function":
            raise _bad(f"{path}.type", f"{tool.get('type')!r} is not supported: {_BUILT_IN_WHY}")
        function: dict[str, Any] = {"name": _string(tool, "name", path)}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> str | dict[str, Any]:
    if isinstance(raw, str) and raw in ("auto", "none", "required"):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function":
        return {"type": "function", "function": {"name": _string(raw, "name", "tool_choice")}}
    raise _bad("tool_choice", f"must be auto, none, required or a function: {_BUILT_IN_WHY}")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise _bad("text", "must be an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _bad("text.format", "must be an object")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise _bad("text.format.type", "must be text, json_object or json_schema")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad("text.format.schema", "must be an object")
    json_schema: dict[str, Any] = {"name": _string(fmt, "name", "text.format"), "schema": schema}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            json_schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": json_schema}


def _string(obj: dict[str, Any], key: str, path: str) -> str:
    """`obj[key]` when it is a string, else an error naming `path.key`."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise _bad(f"{path}.{key}" if path else key, "must be a string")
    return value


def _bad(param: str, problem: str) -> InvalidRequest:
    """The error for a parameter: "`param` <problem>.", naming it in `param`."""
    return InvalidRequest(f"`{param}` {problem}.", param=param)
