"""Serve OpenAI's Responses API (`POST /v1/responses`) on Chat Completions providers.

Three translations, one module each: the request (`request`), a plain response
(`response`) and a stream (`stream`). The route owns the I/O; these are pure functions
of dicts, raising `gateway.errors.InvalidRequest` for what cannot be translated.
"""

from gateway.responses_api.request import chat_request_from_responses
from gateway.responses_api.response import response_from_chat
from gateway.responses_api.stream import ResponsesStreamTranslator, encode_sse

__all__ = [
    "ResponsesStreamTranslator",
    "chat_request_from_responses",
    "encode_sse",
    "response_from_chat",
]
