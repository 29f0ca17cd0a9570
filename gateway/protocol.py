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


# Discriminator tags start with "#": they appear in an error's location, never in `param`.
_TAG = "#"


def _kind_of_content(value: Any) -> str | None:
    if isinstance(value, str):
        return "#text"
    return "#parts" if isinstance(value, list) else None


def _kind_of_input(value: Any) -> str | None:
    if isinstance(value, str):
        return "#text"
    return "#items" if isinstance(value, list) else None


def _part_kind(known: frozenset[str]) -> Any:
    """A discriminator for content parts: the part's own `type` when modelled, `#other`
    for any other string type (passed through as it is), None (refused) otherwise."""

    def kind(value: Any) -> str | None:
        part_type = value.get("type") if isinstance(value, dict) else None
        if not isinstance(part_type, str):
            return None
        return part_type if part_type in known else "#other"

    return kind


class ContentPart(Wire):
    """Any content part: an object whose `type` is a string."""

    type: str


class TextPart(ContentPart):
    type: Literal["text"]
    text: str


class ImageURL(Wire):
    url: str
    detail: str | None = None


class ImagePart(ContentPart):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(Wire):
    data: str
    format: str


class AudioPart(ContentPart):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(Wire):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(ContentPart):
    type: Literal["file"]
    file: FileRef


class RefusalPart(ContentPart):
    type: Literal["refusal"]
    refusal: str


_PART_ERROR = "a content part must be an object with a string `type` (text, image_url, ...)"
_CONTENT_ERROR = "content must be a string or a list of content parts"

ChatPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[AudioPart, Tag("input_audio")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[ContentPart, Tag("#other")],
    Discriminator(
        _part_kind(frozenset({"text", "image_url", "input_audio", "file", "refusal"})),
        custom_error_type="invalid_content_part",
        custom_error_message=_PART_ERROR,
    ),
]

TextContent = Annotated[
    Annotated[str, Tag("#text")] | Annotated[list[ChatPart], Tag("#parts")],
    Discriminator(
        _kind_of_content, custom_error_type="invalid_content", custom_error_message=_CONTENT_ERROR
    ),
]


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


def _kind_of_prompt(value: Any) -> str | None:
    """Which of the four prompt shapes `value` claims to be, by its first element."""
    if isinstance(value, str):
        return "#text"
    if not isinstance(value, list):
        return None
    first = value[0] if value else ""
    if isinstance(first, str):
        return "#texts"
    if isinstance(first, int) and not isinstance(first, bool):
        return "#tokens"
    return "#token-lists" if isinstance(first, list) else None


# A completion prompt or an embedding input: text, texts, token ids, or lists of them.
Prompt = Annotated[
    Annotated[str, Tag("#text")]
    | Annotated[list[str], Tag("#texts")]
    | Annotated[list[int], Tag("#tokens")]
    | Annotated[list[list[int]], Tag("#token-lists")],
    Discriminator(
        _kind_of_prompt,
        custom_error_type="invalid_prompt",
        custom_error_message="must be a string, a list of strings, or token ids (a list of "
        "integers or a list of such lists)",
    ),
]


class CompletionRequest(SamplingFields):
    prompt: Prompt
    max_tokens: int | None = Field(None, ge=0)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(None, ge=1)


class EmbeddingRequest(Wire):
    model: str = Field(min_length=1, max_length=256)
    input: Prompt
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class ResponsesTextPart(ContentPart):
    type: Literal["input_text", "output_text"]
    text: str


class ResponsesImagePart(ContentPart):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


ResponsesPart = Annotated[
    Annotated[ResponsesTextPart, Tag("input_text")]
    | Annotated[ResponsesTextPart, Tag("output_text")]
    | Annotated[ResponsesImagePart, Tag("input_image")]
    | Annotated[AudioPart, Tag("input_audio")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[ContentPart, Tag("#other")],
    Discriminator(
        _part_kind(
            frozenset({"input_text", "output_text", "input_image", "input_audio", "refusal"})
        ),
        custom_error_type="invalid_content_part",
        custom_error_message=_PART_ERROR,
    ),
]

ResponsesContent = Annotated[
    Annotated[str, Tag("#text")] | Annotated[list[ResponsesPart], Tag("#parts")],
    Discriminator(
        _kind_of_content, custom_error_type="invalid_content", custom_error_message=_CONTENT_ERROR
    ),
]


class ResponsesItem(Wire):
    """One `input` item: a message (`role` + `content`), a function call or its output,
    or another item type passed on as it is."""

    type: str | None = None
    role: str | None = None
    content: ResponsesContent | None = None
    output: ResponsesContent | None = None


ResponsesInput = Annotated[
    Annotated[str, Tag("#text")] | Annotated[list[ResponsesItem], Tag("#items")],
    Discriminator(
        _kind_of_input,
        custom_error_type="invalid_input",
        custom_error_message="input must be a string or a list of items",
    ),
]


class ResponsesRequest(Wire):
    model: str = Field(min_length=1, max_length=256)
    input: ResponsesInput
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
        if error["type"] == "invalid_content_part" and isinstance(error.get("input"), dict):
            param += ".type"  # an object whose `type` is missing or not a string
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
        elif part.startswith(_TAG) or (i >= 2 and loc[i - 2] == "#parts"):
            continue  # a content (or a content part's type) discriminator's tag
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


_ROLE_TAGS = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
