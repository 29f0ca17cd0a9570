"""Wire models of the OpenAI API, used to validate requests at the edge.

They check what a provider would refuse (types, ranges, roles, required fields) so
the caller gets a clear 400 naming the parameter. Unknown fields are allowed and the
original body is forwarded untouched: validation never rewrites what the app sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from gateway.errors import InvalidRequest


class Wire(BaseModel):
    """One extra-fields policy for every wire model: allowed, kept, forwarded."""

    model_config = ConfigDict(extra="allow", strict=True)


TextContent = str | list[dict[str, Any]]


class SystemMessage(Wire):
    role: Literal["system", "developer"]
    content: TextContent


class UserMessage(Wire):
    role: Literal["user"]
    content: TextContent


class FunctionCall(Wire):
    name: str
    arguments: str


class ToolCall(Wire):
    id: str
    type: str = "function"
    function: FunctionCall


class AssistantMessage(Wire):
    role: Literal["assistant"]
    content: TextContent | None = None
    tool_calls: list[ToolCall] | None = None


class ToolMessage(Wire):
    role: Literal["tool"]
    content: TextContent
    tool_call_id: str


class FunctionMessage(Wire):
    role: Literal["function"]
    name: str
    content: str | None


def _role_of(value: Any) -> str | None:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return role if isinstance(role, str) else None


Message = Annotated[
    Annotated[SystemMessage, Tag("system")]
    | Annotated[SystemMessage, Tag("developer")]
    | Annotated[UserMessage, Tag("user")]
    | Annotated[AssistantMessage, Tag("assistant")]
    | Annotated[ToolMessage, Tag("tool")]
    | Annotated[FunctionMessage, Tag("function")],
    Discriminator(
        _role_of,
        custom_error_type="invalid_role",
        custom_error_message="role must be one of system, developer, user, assistant, tool",
    ),
]


class FunctionDefinition(Wire):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(Wire):
    type: str = "function"
    function: FunctionDefinition


class StreamOptions(Wire):
    include_usage: bool | None = None


class SamplingFields(Wire):
    model: str = Field(min_length=1, max_length=256)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    user: str | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    metadata: dict[str, str] | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(None, ge=0)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(None, ge=1)


class EmbeddingRequest(Wire):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class ResponsesRequest(Wire):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    stream: bool | None = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


def validate(model: type[Wire], body: Any) -> Wire:
    """Validate a parsed body, turning the first problem into a 400 naming the parameter."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        param = _param(error["loc"])
        if error["type"] == "missing":
            message = f"Missing required parameter: '{param}'"
        else:
            message = f"Invalid value for '{param}': {error['msg']}"
        raise InvalidRequest(message, param=param, code="invalid_value") from None


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif loc[0] == "messages" and i == 2 and part in _ROLE_TAGS:
            continue  # the discriminator's tag (messages[i].<role>), not part of the path
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


_ROLE_TAGS = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
