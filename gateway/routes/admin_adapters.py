"""Admin API over the LoRA adapter registry (`flywheel ctl adapters ...`).

    GET  /admin/adapters[?name=N]          every version (of one name)
    GET  /admin/adapters/{name-vN}         one version
    POST /admin/adapters                   register a new version (a candidate)
    POST /admin/adapters/{name}/promote    {"version"?, "canary_share"?}
    POST /admin/adapters/{name}/rollback   back to the previously active version
    POST /admin/adapters/{name-vN}/retire
    POST /admin/adapters/{name-vN}/approve an operator's approval of a trained candidate

Changes are audited under the `x-flywheel-actor` header (refused ones as
`adapter.<op>.refused`) and reach every replica's routing within a second. A new
version's references must resolve: `base_model` is the upstream model of a local model
in flywheel.yaml, and each of `tenants` a known tenant (or "*", all). Errors: 404
unknown adapter, 409 a transition its status does not allow (or a version that exists),
422 an invalid body or an unknown base model or tenant.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.adapters import registry
from gateway.adapters.registry import (
    NAME_PATTERN,
    AdapterExists,
    AdapterNotFound,
    AdapterRecord,
    RegistryError,
    TransitionError,
)
from gateway.errors import Conflict, GatewayError, InvalidRequest, NotFound, Unprocessable
from gateway.http import json_response, parse_json, read_body
from gateway.protocol import Wire, validate
from gateway.routes.admin_audit import AdminAudit
from gateway.routes.admin_guard import Handler, admin_only
from gateway.state import AppState
from gateway.store.base import Store


class AdminBody(Wire):
    model_config: ClassVar[ConfigDict] = ConfigDict(extra="forbid", strict=True)


class RegisterBody(AdminBody):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    base_model: str = Field(min_length=1, max_length=256)
    location: str = Field(min_length=1, max_length=4096)
    version: int | None = Field(None, ge=1)
    tenants: list[str] | None = None
    metrics: dict[str, float] | None = None
    created_by: str | None = Field(None, max_length=256)


class PromoteBody(AdminBody):
    version: int | None = Field(None, ge=1)
    canary_share: float | None = Field(None, gt=0, le=1)


class AdminAdapterRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._audit = AdminAudit(state)

    def routes(self) -> list[Route]:
        guard = self._guard
        return [
            Route("/admin/adapters", guard(self.list_all), methods=["GET"]),
            Route("/admin/adapters", guard(self.register, "adapter.register"), methods=["POST"]),
            Route("/admin/adapters/{ref}", guard(self.get), methods=["GET"]),
            Route(
                "/admin/adapters/{name}/promote",
                guard(self.promote, "adapter.promote"),
                methods=["POST"],
            ),
            Route(
                "/admin/adapters/{name}/rollback",
                guard(self.rollback, "adapter.rollback"),
                methods=["POST"],
            ),
            Route(
                "/admin/adapters/{ref}/retire",
                guard(self.retire, "adapter.retire"),
                methods=["POST"],
            ),
            Route(
                "/admin/adapters/{ref}/approve",
                guard(self.approve, "adapter.approve"),
                methods=["POST"],
            ),
        ]

    def _guard(self, handler: Handler, action: str | None = None) -> Handler:
        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except RegistryError as exc:
                raise _http_error(exc) from None

        return admin_only(self._state.keys, translated, self._audit, action)

    def _store(self) -> Store:
        if self._state.store is None:
            raise NotFound("No store is configured: set `store:` in flywheel.yaml")
        return self._state.store

    async def _body(self, request: Request, model: type[AdminBody]) -> Any:
        raw = await read_body(request, self._state.config.server.max_body_bytes)
        try:
            return validate(model, parse_json(raw) if raw.strip() else {})
        except InvalidRequest as exc:
            if exc.code == "invalid_json":
                raise
            raise Unprocessable(exc.message, param=exc.param) from None

    async def list_all(self, request: Request) -> Response:
        records = await registry.list_adapters(self._store(), request.query_params.get("name"))
        return json_response([_view(r) for r in records])

    async def get(self, request: Request) -> Response:
        return json_response(_view(await registry.get(self._store(), _ref(request))))

    async def register(self, request: Request) -> Response:
        body: RegisterBody = await self._body(request, RegisterBody)
        self._check_references(body)
        record = await registry.register(
            self._store(),
            name=body.name,
            base_model=body.base_model,
            location=body.location,
            actor=_actor(request),
            version=body.version,
            created_by=body.created_by,
            metrics=body.metrics,
            tenants=body.tenants,
        )
        return json_response(_view(record), 201)

    def _check_references(self, body: RegisterBody) -> None:
        local = {
            route.upstream_model
            for route in self._state.catalog.routes.values()
            if route.provider.location == "local"
        }
        if body.base_model not in local:
            known = ", ".join(sorted(local)) or "none"
            raise Unprocessable(
                f"base_model {body.base_model!r} is not a local model in flywheel.yaml "
                f"(known: {known})",
                param="base_model",
                code="unknown_base_model",
            )
        for tenant in body.tenants or ():
            if tenant != "*" and self._state.tenants.get(tenant) is None:
                raise Unprocessable(
                    f"unknown tenant {tenant!r}", param="tenants", code="unknown_tenant"
                )

    async def promote(self, request: Request) -> Response:
        body: PromoteBody = await self._body(request, PromoteBody)
        record = await registry.promote(
            self._store(),
            request.path_params["name"],
            body.version,
            body.canary_share,
            actor=_actor(request),
        )
        return json_response(_view(record))

    async def rollback(self, request: Request) -> Response:
        name = request.path_params["name"]
        record = await registry.rollback(self._store(), name, actor=_actor(request))
        return json_response(_view(record))

    async def approve(self, request: Request) -> Response:
        name, version = _id_parts(_ref(request))
        record = await registry.approve(self._store(), name, version, actor=_actor(request))
        return json_response(_view(record))

    async def retire(self, request: Request) -> Response:
        name, version = _id_parts(_ref(request))
        record = await registry.retire(self._store(), name, version, actor=_actor(request))
        return json_response(_view(record))


def _ref(request: Request) -> str:
    ref: str = request.path_params["ref"]
    _id_parts(ref)
    return ref


def _id_parts(ref: str) -> tuple[str, int]:
    parsed = registry.parse_id(ref)
    if parsed is None:
        raise AdapterNotFound(f"no adapter {ref!r}: name one version as NAME-vN")
    return parsed


def _actor(request: Request) -> str:
    return request.headers.get("x-flywheel-actor", "admin")[:128]


def _view(record: AdapterRecord) -> dict[str, Any]:
    return {"id": record.id, **record.model_dump()}


def _http_error(exc: RegistryError) -> GatewayError:
    if isinstance(exc, AdapterNotFound):
        return NotFound(str(exc), code="adapter_not_found")
    if isinstance(exc, AdapterExists):
        return Conflict(str(exc), code="adapter_exists")
    if isinstance(exc, TransitionError):
        return Conflict(str(exc), code="invalid_transition")
    return Unprocessable(str(exc))
