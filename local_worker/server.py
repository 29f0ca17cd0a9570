"""The worker's HTTP face: OpenAI's endpoints plus vLLM's adapter load/unload endpoints.

`POST /v1/chat/completions` and `/v1/completions` (streaming and not), `/v1/embeddings`
(when an embedding model is served), `GET /v1/models`, `POST /v1/load_lora_adapter`,
`POST /v1/unload_lora_adapter`, `POST /v1/score` (when a reward model is served: see
`local_worker/scoring.py`), `GET /healthz`, `GET /metrics`. A request names the base
model (`smollm2-135m`), an adapter as `<base>:<adapter>`, or the adapter alone (as vLLM
does). Loading and unloading adapters needs the admin token (`local_worker/admin_auth.py`).
Errors use OpenAI's error body; a failure of the worker itself is a 503, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.errors import Conflict, GatewayError, InvalidRequest, ModelNotFound, NotFound
from gateway.http import error_response, json_response, parse_json, read_body
from gateway.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, validate
from local_worker.adapters import AdapterBusy, AdapterError, Adapters, UnknownAdapter
from local_worker.admin_auth import AdminToken
from local_worker.embeddings import Embedder
from local_worker.engine import Engine, Job, Step
from local_worker.metrics import WorkerMetrics
from local_worker.requests import Limits, chat_prompt, completion_prompts, sampling_for
from local_worker.sampling import Sampling
from local_worker.scoring import Scorer

log = logging.getLogger("flywheel.local_worker")
MAX_BODY = 4 * 1024 * 1024


@dataclass
class Worker:
    name: str  # the base model's served name
    engine: Engine
    adapters: Adapters
    limits: Limits
    embedder: Embedder | None = None
    metrics: WorkerMetrics | None = None
    scorer: Scorer | None = None  # the reward model behind /v1/score
    admin: AdminToken = field(default_factory=lambda: AdminToken(None))  # None: admin off


class WorkerFailed(GatewayError):
    """The worker itself failed on a request (503: the caller may try elsewhere)."""

    status = 503
    error_type = "server_error"
    default_code = "worker_failed"


def build_app(worker: Worker) -> Starlette:
    metrics = worker.metrics or WorkerMetrics(worker)
    api = _Api(worker, metrics)
    routes = [
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
        Route("/v1/score", api.score, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/load_lora_adapter", api.load_adapter, methods=["POST"]),
        Route("/v1/unload_lora_adapter", api.unload_adapter, methods=["POST"]),
        Route("/healthz", lambda _: PlainTextResponse("ok"), methods=["GET"]),
        Route("/metrics", api.prometheus, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker.engine.start()
        yield
        worker.engine.stop()

    return Starlette(routes=routes, lifespan=lifespan)


class _Api:
    def __init__(self, worker: Worker, metrics: WorkerMetrics) -> None:
        self.w = worker
        self.metrics = metrics

    # --- generation --------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        try:
            wire = validate(ChatCompletionRequest, await _body(request))
            assert isinstance(wire, ChatCompletionRequest)
            adapter = await self._adapter(wire.model)
            prompt = chat_prompt(self.w.engine.tokenizer, wire)
            choices = sampling_for(
                wire, wire.max_completion_tokens or wire.max_tokens, len(prompt), self.w.limits
            )
        except GatewayError as exc:
            return self._error("chat", exc)
        jobs = self._submit([prompt] * len(choices), choices, adapter)
        shape = _Shape("chat.completion", wire.model, len(prompt))
        if wire.stream:
            usage = bool(wire.stream_options and wire.stream_options.include_usage)
            return self._stream(jobs, shape, usage)
        return await self._collect(jobs, shape)

    async def completions(self, request: Request) -> Response:
        try:
            wire = validate(CompletionRequest, await _body(request))
            assert isinstance(wire, CompletionRequest)
            adapter = await self._adapter(wire.model)
            prompts = completion_prompts(self.w.engine.tokenizer, wire)
            plans = [sampling_for(wire, wire.max_tokens, len(p), self.w.limits) for p in prompts]
        except GatewayError as exc:
            return self._error("completions", exc)
        flat = [(p, s) for p, plan in zip(prompts, plans, strict=True) for s in plan]
        jobs = self._submit([p for p, _ in flat], [s for _, s in flat], adapter)
        shape = _Shape("text_completion", wire.model, sum(len(p) for p in prompts))
        if wire.stream:
            usage = bool(wire.stream_options and wire.stream_options.include_usage)
            return self._stream(jobs, shape, usage)
        return await self._collect(jobs, shape)

    async def _adapter(self, model: str) -> str | None:
        if model == self.w.name:
            return None
        base, sep, adapter = model.partition(":")
        if sep and base != self.w.name:
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        name = adapter if sep else model
        try:
            await self.w.adapters.resolve(name)
        except UnknownAdapter:
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model") from None
        except AdapterError as exc:  # registered, but where the worker may not read
            raise InvalidRequest(str(exc), param="model", code="invalid_adapter") from None
        return name

    def _submit(self, prompts: list[list[int]], plans: list[Sampling], adapter: str | None) -> Any:
        loop = asyncio.get_running_loop()
        shared: asyncio.Queue[Step | BaseException] = asyncio.Queue()
        jobs = [
            Job(p, s, adapter, loop, queue=shared, index=i)
            for i, (p, s) in enumerate(zip(prompts, plans, strict=True))
        ]
        for job in jobs:
            self.w.engine.submit(job)
        return jobs

    async def _steps(self, jobs: list[Job]) -> AsyncIterator[Step]:
        """Every step of every choice as it comes; cancels the jobs if the caller goes away."""
        left = len(jobs)
        started = time.perf_counter()
        first = True
        try:
            while left:
                item = await jobs[0].queue.get()
                if isinstance(item, BaseException):
                    raise item
                if first:
                    self.metrics.ttft.observe(time.perf_counter() - started)
                    first = False
                if item.finish_reason is not None:
                    left -= 1
                    self.metrics.completion_tokens.inc(item.completion_tokens)
                yield item
        finally:
            for job in jobs:
                job.cancelled = True

    async def _collect(self, jobs: list[Job], shape: _Shape) -> Response:
        texts = [""] * len(jobs)
        finish: list[str | None] = [None] * len(jobs)
        tokens = [0] * len(jobs)
        try:
            async for step in self._steps(jobs):
                texts[step.index] += step.text
                tokens[step.index] = step.completion_tokens
                finish[step.index] = step.finish_reason or finish[step.index]
        except Exception as exc:  # an adapter that cannot load, or generation failed
            return self._error(shape.kind, _as_gateway_error(exc))
        self.metrics.requests.labels(shape.kind, "200").inc()
        return json_response(shape.full(texts, finish, sum(tokens)))

    def _stream(self, jobs: list[Job], shape: _Shape, usage: bool) -> Response:
        async def events() -> AsyncIterator[bytes]:
            tokens = [0] * len(jobs)
            if shape.kind == "chat.completion":
                for i in range(len(jobs)):
                    yield _sse(shape.chunk(i, "", None, role=True))
            try:
                async for step in self._steps(jobs):
                    tokens[step.index] = step.completion_tokens
                    if step.text:
                        yield _sse(shape.chunk(step.index, step.text, None))
                    if step.finish_reason:
                        yield _sse(shape.chunk(step.index, "", step.finish_reason))
            except Exception as exc:
                error = _as_gateway_error(exc)
                yield _sse(error.body())
                self.metrics.requests.labels(shape.kind, str(error.status)).inc()
                return
            if usage:
                yield _sse(shape.usage_chunk(sum(tokens)))
            yield b"data: [DONE]\n\n"
            self.metrics.requests.labels(shape.kind, "200").inc()

        return StreamingResponse(events(), media_type="text/event-stream")

    # --- embeddings, models, adapters ----------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        try:
            wire = validate(EmbeddingRequest, await _body(request))
            assert isinstance(wire, EmbeddingRequest)
            embedder = self.w.embedder
            if embedder is None or wire.model != embedder.name:
                raise ModelNotFound(f"The model '{wire.model}' does not exist.", param="model")
            payload = await embedder.respond(wire)
        except GatewayError as exc:
            return self._error("embeddings", exc)
        self.metrics.requests.labels("embeddings", "200").inc()
        return json_response(payload)

    async def score(self, request: Request) -> Response:
        try:
            if self.w.scorer is None:
                raise NotFound("No reward model is loaded (start with --reward-model DIR)")
            payload = await self.w.scorer.respond(await _body(request))
        except GatewayError as exc:
            return self._error("score", exc)
        self.metrics.requests.labels("score", "200").inc()
        return json_response(payload)

    async def models(self, request: Request) -> Response:
        created = int(time.time())
        data = [{"id": self.w.name, "object": "model", "created": created, "owned_by": "flywheel"}]
        for name in self.w.adapters.names():
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "flywheel",
                    "parent": self.w.name,
                }
            )
        if self.w.embedder is not None:
            data.append(
                {
                    "id": self.w.embedder.name,
                    "object": "model",
                    "created": created,
                    "owned_by": "flywheel",
                }
            )
        return json_response({"object": "list", "data": data})

    async def load_adapter(self, request: Request) -> Response:
        try:
            self.w.admin.check(request)
            body = await _body(request)
            name, path = _field(body, "lora_name"), _field(body, "lora_path")
            seconds = await self.w.adapters.load(name, path)
        except (GatewayError, AdapterError, AdapterBusy, UnknownAdapter) as exc:
            return self._error("load_lora_adapter", _as_gateway_error(exc))
        self.metrics.adapter_load.observe(seconds)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_adapter(self, request: Request) -> Response:
        try:
            self.w.admin.check(request)
            name = _field(await _body(request), "lora_name")
            await self.w.adapters.unload(name)
        except (GatewayError, AdapterError, AdapterBusy, UnknownAdapter) as exc:
            return self._error("unload_lora_adapter", _as_gateway_error(exc))
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _error(self, endpoint: str, exc: GatewayError) -> Response:
        self.metrics.requests.labels(endpoint, str(exc.status)).inc()
        log.info("rejected endpoint=%s status=%d error=%s", endpoint, exc.status, exc.message)
        return error_response(exc)


@dataclass
class _Shape:
    """OpenAI's response and chunk shapes for one request."""

    kind: str  # "chat.completion" | "text_completion"
    model: str
    prompt_tokens: int

    def __post_init__(self) -> None:
        prefix = "chatcmpl" if self.kind == "chat.completion" else "cmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _usage(self, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def full(self, texts: list[str], finish: list[str | None], completion: int) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        for i, (text, reason) in enumerate(zip(texts, finish, strict=True)):
            choice: dict[str, Any] = {"index": i, "finish_reason": reason, "logprobs": None}
            if self.kind == "chat.completion":
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        return {
            "id": self.id,
            "object": self.kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self._usage(completion),
        }

    def chunk(
        self, index: int, text: str, reason: str | None, role: bool = False
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "finish_reason": reason, "logprobs": None}
        if self.kind == "chat.completion":
            choice["delta"] = (
                {"role": "assistant", "content": ""}
                if role
                else ({"content": text} if text else {})
            )
            kind = "chat.completion.chunk"
        else:
            choice["text"] = text
            kind = "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def usage_chunk(self, completion: int) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.kind == "chat.completion" else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self._usage(completion),
        }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _body(request: Request) -> Any:
    return parse_json(await read_body(request, MAX_BODY))


def _field(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"Missing required parameter: '{name}'", param=name)
    return value


def _as_gateway_error(exc: BaseException) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, UnknownAdapter):
        return ModelNotFound(str(exc), param="model")
    if isinstance(exc, AdapterError):
        return InvalidRequest(str(exc), param="lora_path", code="invalid_adapter")
    if isinstance(exc, AdapterBusy):
        return Conflict(str(exc), param="lora_name", code="adapter_busy")
    log.error("generation failed: %r", exc)
    return WorkerFailed(f"The local model failed: {type(exc).__name__}")
