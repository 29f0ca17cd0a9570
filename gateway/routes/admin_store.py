"""Admin API over the store: flags, kill switches, tenants and keys, inspection,
audit and data governance. Every change is written to the audit log (who, when, old
value, new value), and so is every refused change (`<action>.refused`, see
admin_audit); `flywheel ctl` is the command line over these routes.

A change is checked whole before anything is written: a flag override or a kill switch
for a tenant names a known tenant (else 404), a new tenant's name is a plain name.
The actor is the `x-flywheel-actor` header (ctl sends the operator's user name).
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, Literal

import orjson
from pydantic import Field, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import hash_key
from gateway.config import LimitsConfig
from gateway.errors import InvalidRequest, NotFound
from gateway.flags import FLAGS, KILL, FlagSpec, kill_field
from gateway.http import json_response, parse_json, read_body
from gateway.protocol import Wire, validate
from gateway.routes.admin_audit import AdminAudit
from gateway.routes.admin_guard import Handler, admin_only
from gateway.state import AppState
from gateway.store.base import AuditEntry, Store
from gateway.tenants import KEYS, TENANTS


class FlagBody(Wire):
    value: StrictBool | str
    rollout_percent: float | None = Field(None, ge=0, le=100)
    tenant: str | None = None  # set the override for this tenant only


class KillBody(Wire):
    scope: Literal["global", "tenant", "job"]
    target: str | None = None
    on: StrictBool


class TenantBody(Wire):
    limits: LimitsConfig = LimitsConfig()
    content_logging: StrictBool = True
    retention_days: float | None = Field(None, gt=0)


class KeyBody(Wire):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


TENANT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class DeleteUserBody(Wire):
    tenant: str = Field(min_length=1)
    user: str = Field(min_length=1)


class AdminStoreRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._audit_log = AdminAudit(state)

    def routes(self) -> list[Route]:
        guard = self._guard
        keys = "/admin/tenants/{tenant}/keys"
        return [
            Route("/admin/flags", guard(self.list_flags), methods=["GET"]),
            Route("/admin/flags/{name}", guard(self.get_flag), methods=["GET"]),
            Route("/admin/flags/{name}", guard(self.set_flag, "flag.set"), methods=["PUT"]),
            Route(
                "/admin/flags/{name}", guard(self.delete_flag, "flag.delete"), methods=["DELETE"]
            ),
            Route("/admin/kill", guard(self.kill_status), methods=["GET"]),
            Route("/admin/kill", guard(self.set_kill, "kill"), methods=["POST"]),
            Route("/admin/tenants", guard(self.list_tenants), methods=["GET"]),
            Route("/admin/tenants/{tenant}", guard(self.put_tenant, "tenant.put"), methods=["PUT"]),
            Route(keys, guard(self.list_keys), methods=["GET"]),
            Route(keys, guard(self.create_key, "key.create"), methods=["POST"]),
            Route(keys + "/{key_id}", guard(self.revoke_key, "key.revoke"), methods=["DELETE"]),
            Route("/admin/events/{request_id}", guard(self.inspect), methods=["GET"]),
            Route("/admin/audit", guard(self.read_audit), methods=["GET"]),
            Route(
                "/admin/data/delete-user",
                guard(self.delete_user, "data.delete_user"),
                methods=["POST"],
            ),
        ]

    def _guard(self, handler: Handler, action: str | None = None) -> Handler:
        return admin_only(self._state.keys, handler, self._audit_log, action)

    def _store(self) -> Store:
        if self._state.store is None:
            raise NotFound("No store is configured: set `store:` in flywheel.yaml")
        return self._state.store

    async def _body(self, request: Request, model: type[Wire]) -> Any:
        raw = await read_body(request, self._state.config.server.max_body_bytes)
        return validate(model, parse_json(raw))

    async def _audit(
        self, request: Request, action: str, target: str, old: str | None, new: str | None
    ) -> None:
        await self._audit_log.record(request, action, target, old, new)

    # --- flags ---------------------------------------------------------------------

    async def list_flags(self, request: Request) -> Response:
        raw = await self._store().hgetall(FLAGS)
        return json_response({name: orjson.loads(v) for name, v in sorted(raw.items())})

    async def get_flag(self, request: Request) -> Response:
        name = request.path_params["name"]
        raw = await self._store().hget(FLAGS, name)
        if raw is None:
            raise NotFound(f"No flag '{name}'")
        spec = FlagSpec.parse(raw)
        tenant, key = request.query_params.get("tenant"), request.query_params.get("key")
        return json_response(
            {"name": name, **orjson.loads(raw), "evaluated": spec.evaluate(name, tenant, key)}
        )

    async def set_flag(self, request: Request) -> Response:
        name = request.path_params["name"]
        body: FlagBody = await self._body(request, FlagBody)
        if body.tenant is not None and self._state.tenants.get(body.tenant) is None:
            raise NotFound(f"No tenant '{body.tenant}'", param="tenant")
        store = self._store()
        old = await store.hget(FLAGS, name)
        if body.tenant is not None:
            if old is None:
                raise NotFound(f"No flag '{name}' to override: set its default first")
            spec = FlagSpec.parse(old)
            spec = FlagSpec(
                spec.value, spec.rollout_percent, {**(spec.tenants or {}), body.tenant: body.value}
            )
        else:
            tenants = FlagSpec.parse(old).tenants if old else None
            spec = FlagSpec(body.value, body.rollout_percent, tenants)
        new = spec.dump()
        await store.hset(FLAGS, name, new)
        await self._audit(request, "flag.set", name, old, new)
        return json_response({"name": name, **orjson.loads(new)})

    async def delete_flag(self, request: Request) -> Response:
        name = request.path_params["name"]
        old = await self._store().hdel(FLAGS, name)
        if old is None:
            raise NotFound(f"No flag '{name}'")
        await self._audit(request, "flag.delete", name, old, None)
        return json_response({"name": name, "deleted": True})

    # --- kill switches -------------------------------------------------------------

    async def kill_status(self, request: Request) -> Response:
        stored = await self._store().hgetall(KILL)
        return json_response(
            {
                "store": {k: v for k, v in sorted(stored.items()) if v == "on"},
                # what this process acts on (its replica of the store)
                "process": self._state.flags.switches(),
                "synced_ago_s": self._synced_ago(),
            }
        )

    async def set_kill(self, request: Request) -> Response:
        body: KillBody = await self._body(request, KillBody)
        try:
            field = kill_field(body.scope, body.target)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="target") from None
        if body.scope == "tenant" and self._state.tenants.get(body.target or "") is None:
            raise NotFound(f"No tenant '{body.target}'", param="target")
        store = self._store()
        if body.on:
            old = await store.hset(KILL, field, "on")
        else:
            old = await store.hdel(KILL, field)
        new = "on" if body.on else None
        await self._audit(request, "kill.on" if body.on else "kill.off", field, old, new)
        return json_response({"switch": field, "on": body.on})

    def _synced_ago(self) -> float | None:
        sync = self._state.sync
        if sync is None or sync.last_sync is None:
            return None
        return round(time.monotonic() - sync.last_sync, 3)

    # --- tenants and keys ----------------------------------------------------------

    async def list_tenants(self, request: Request) -> Response:
        tenants = self._state.tenants
        return json_response(
            [
                {
                    "name": name,
                    "source": "config" if tenants.is_static(name) else "store",
                    **(tenants.get(name) or TenantBody()).model_dump(
                        include={"limits", "content_logging", "retention_days"}
                    ),
                }
                for name in tenants.names()
            ]
        )

    async def put_tenant(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not TENANT_NAME.match(tenant):
            raise InvalidRequest(
                "a tenant name is 1-64 letters, digits, '_', '.' or '-'", param="tenant"
            )
        if self._state.tenants.is_static(tenant):
            raise InvalidRequest(f"Tenant '{tenant}' is defined in flywheel.yaml; change it there")
        body: TenantBody = await self._body(request, TenantBody)
        new = body.model_dump_json(include={"limits", "content_logging", "retention_days"})
        old = await self._store().hset(TENANTS, tenant, new)
        await self._audit(request, "tenant.put", tenant, old, new)
        return json_response({"name": tenant, **orjson.loads(new)})

    async def list_keys(self, request: Request) -> Response:
        tenant = self._known_tenant(request)
        stored = await self._store().hgetall(KEYS)
        keys = []
        for digest, raw in stored.items():
            record = orjson.loads(raw)
            if record.get("tenant") == tenant:
                keys.append(
                    {
                        "id": digest[:12],
                        "name": record.get("name"),
                        "created_at": record.get("created_at"),
                    }
                )
        return json_response(sorted(keys, key=lambda k: k["created_at"] or 0))

    async def create_key(self, request: Request) -> Response:
        tenant = self._known_tenant(request)
        body: KeyBody = await self._body(request, KeyBody)
        key = "sk-fw-" + secrets.token_urlsafe(32)
        digest = hash_key(key)
        record = orjson.dumps(
            {"tenant": tenant, "name": body.name, "created_at": time.time()}
        ).decode()
        await self._store().hset(KEYS, digest, record)
        await self._audit(request, "key.create", f"{tenant}/{body.name}", None, digest[:12])
        # The only time the key itself is ever shown: the store keeps its hash.
        return json_response(
            {"tenant": tenant, "name": body.name, "id": digest[:12], "key": key}, 201
        )

    async def revoke_key(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        key_id = request.path_params["key_id"]
        store = self._store()
        for digest, raw in (await store.hgetall(KEYS)).items():
            record = orjson.loads(raw)
            if record.get("tenant") == tenant and key_id in (digest[:12], record.get("name")):
                await store.hdel(KEYS, digest)
                await self._audit(
                    request, "key.revoke", f"{tenant}/{record.get('name')}", digest[:12], None
                )
                return json_response({"tenant": tenant, "id": digest[:12], "revoked": True})
        raise NotFound(f"No key '{key_id}' for tenant '{tenant}'")

    def _known_tenant(self, request: Request) -> str:
        tenant: str = request.path_params["tenant"]
        if self._state.tenants.get(tenant) is None:
            raise NotFound(f"No tenant '{tenant}'")
        return tenant

    # --- inspection, audit, governance ---------------------------------------------

    async def inspect(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        store = self._store()
        event = await store.get_event(request_id)
        feedback = await store.feedback_for(request_id)
        if event is None and not feedback:
            raise NotFound(f"No event or feedback for request '{request_id}'")
        return json_response(
            {
                "event": event.model_dump() if event else None,
                "feedback": [f.model_dump() for f in feedback],
            }
        )

    async def read_audit(self, request: Request) -> Response:
        try:
            limit = max(1, min(1000, int(request.query_params.get("limit", "100"))))
        except ValueError:
            raise InvalidRequest("limit must be a number", param="limit") from None
        entries = await self._store().read_audit(limit)
        return json_response([_audit_dict(entry) for entry in entries])

    async def delete_user(self, request: Request) -> Response:
        body: DeleteUserBody = await self._body(request, DeleteUserBody)
        deleted = await self._store().delete_user(body.tenant, body.user)
        await self._audit(
            request,
            "data.delete_user",
            f"{body.tenant}/{body.user}",
            None,
            f"{deleted} records deleted",
        )
        return json_response({"tenant": body.tenant, "user": body.user, "deleted": deleted})


def _audit_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "ts": entry.ts,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "old": entry.old,
        "new": entry.new,
    }
