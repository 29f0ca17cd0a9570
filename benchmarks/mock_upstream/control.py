"""The control API tests use to steer the mock and read what it received (under /_mock).

POST /_mock/models/{name} merges a partial behaviour, POST /_mock/fail queues forced
failures, GET|DELETE /_mock/requests reads or clears the request log, GET /_mock/stats
reads per-model counters, POST /_mock/reset restores the startup state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiohttp import web

from benchmarks.mock_upstream.behaviour import BehaviourError
from benchmarks.mock_upstream.responses import error_body
from benchmarks.mock_upstream.state import STATE

JSON_HEADERS = {"Content-Type": "application/json"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=JSON_HEADERS)


def _refused(exc: BehaviourError) -> web.Response:
    return web.Response(
        body=error_body(str(exc), "invalid_request_error"), status=400, headers=JSON_HEADERS
    )


async def _control_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BehaviourError(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BehaviourError("the body must be a JSON object")
    return body


async def configure_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        behaviour = request.app[STATE].table.configure(name, await _control_body(request))
    except BehaviourError as exc:
        return _refused(exc)
    return _json({"model": name, "behaviour": behaviour.to_dict()})


async def show_models(request: web.Request) -> web.Response:
    table = request.app[STATE].table
    return _json(
        {
            "default": table.default.to_dict(),
            "models": {name: b.to_dict() for name, b in table.models.items()},
        }
    )


async def force_failure(request: web.Request) -> web.Response:
    table = request.app[STATE].table
    try:
        body = await _control_body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BehaviourError("'model' must be a non-empty string")
        table.force(model, body.get("kind"), body.get("count", 1))
    except BehaviourError as exc:
        return _refused(exc)
    return _json({"model": model, "pending": table.pending(model)})


async def get_requests(request: web.Request) -> web.Response:
    return _json(list(request.app[STATE].log or ()))


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].clear()
    return _json({"cleared": True})


async def get_stats(request: web.Request) -> web.Response:
    stats = request.app[STATE].stats
    return _json({model: dataclasses.asdict(s) for model, s in stats.items()})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.table.reset()
    state.clear()
    return _json({"reset": True})


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/_mock/models/{name}", configure_model)
    app.router.add_get("/_mock/models", show_models)
    app.router.add_post("/_mock/fail", force_failure)
    app.router.add_get("/_mock/requests", get_requests)
    app.router.add_delete("/_mock/requests", clear_requests)
    app.router.add_get("/_mock/stats", get_stats)
    app.router.add_post("/_mock/reset", reset)
