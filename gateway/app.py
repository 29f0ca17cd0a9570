"""The gateway's ASGI application: routes, lifespan and edge error handling."""

from __future__ import annotations

import gc
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.config import FlywheelConfig
from gateway.config_loader import load_config
from gateway.errors import GatewayError, InvalidRequest, NotFound, error_body
from gateway.http import error_response, json_response
from gateway.routes.admin import AdminRoutes
from gateway.routes.admin_adapters import AdminAdapterRoutes
from gateway.routes.admin_policy import AdminPolicyRoutes
from gateway.routes.admin_store import AdminStoreRoutes
from gateway.routes.feedback import FeedbackRoutes
from gateway.routes.openai_api import OpenAIRoutes
from gateway.routes.ops import OpsRoutes
from gateway.state import AppState

log = logging.getLogger("flywheel.gateway")

CONFIG_ENV = "FLYWHEEL_CONFIG"


def build_app(state: AppState) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        # Everything built at start-up lives as long as the process: move it out of the
        # collector's way so full collections only walk per-request garbage.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await state.close()

    routes = [
        *OpenAIRoutes(state).routes(),
        *OpsRoutes(state).routes(),
        *FeedbackRoutes(state).routes(),
        *AdminRoutes(state).routes(),
        *AdminStoreRoutes(state).routes(),
        *AdminPolicyRoutes(state).routes(),
        *AdminAdapterRoutes(state).routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_exception,
            GatewayError: _gateway_error,
            Exception: _unexpected,
        },
    )
    app.state.flywheel = state
    return app


def create_app(config: FlywheelConfig | None = None) -> Starlette:
    """uvicorn factory: the config comes from $FLYWHEEL_CONFIG (or embedded defaults)."""
    if config is None:
        config = load_config(os.environ.get(CONFIG_ENV) or None)
    return build_app(AppState.build(config))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"Unknown path {request.url.path}", code="unknown_url")
        return error_response(error)
    if exc.status_code == 405:
        body = error_body(
            f"Method {request.method} not allowed on {request.url.path}",
            "invalid_request_error",
            None,
            "method_not_allowed",
        )
        return json_response(body, 405, dict(exc.headers or {}))
    return error_response(InvalidRequest(str(exc.detail)))


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = "req_" + secrets.token_hex(12)  # a 500 still names a line in the log
    fields = {"path": request.url.path, "request_id": request_id}
    log.exception("unhandled error", extra={"fields": fields})
    body = error_body("The gateway hit an internal error", "server_error", None, "internal_error")
    return json_response(body, 500, {"x-flywheel-request-id": request_id})
