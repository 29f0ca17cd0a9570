"""`flywheel ctl`: the operator's command line over the admin API.

Talks to a running gateway (`--url`, or $FLYWHEEL_URL, default http://127.0.0.1:8080)
with the admin key (`--admin-key`, or $FLYWHEEL_ADMIN_KEY); every change it makes is
audited under the operator's name ($USER, or `--actor`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import httpx

from gateway.cli import ctl_adapters


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("ctl", help="operate a running gateway (admin API)")
    parser.add_argument("--url", default=os.environ.get("FLYWHEEL_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--admin-key", default=os.environ.get("FLYWHEEL_ADMIN_KEY"))
    parser.add_argument("--actor", default=os.environ.get("USER") or _user())
    sub = parser.add_subparsers(dest="ctl_command", required=True, metavar="WHAT")

    flags = sub.add_parser("flags", help="feature flags").add_subparsers(dest="op", required=True)
    flags.add_parser("list").set_defaults(call=lambda a: ("GET", "/admin/flags", None))
    get = flags.add_parser("get")
    get.add_argument("name")
    get.add_argument("--tenant")
    get.add_argument("--key", help="user or request key, to evaluate a rollout")
    get.set_defaults(call=_flag_get)
    set_ = flags.add_parser("set")
    set_.add_argument("name")
    set_.add_argument("value", help="true, false or a string")
    set_.add_argument("--rollout", type=float, help="percentage of keys that get the value")
    set_.add_argument("--tenant", help="set this tenant's override only")
    set_.set_defaults(call=_flag_set)
    delete = flags.add_parser("delete")
    delete.add_argument("name")
    delete.set_defaults(call=lambda a: ("DELETE", f"/admin/flags/{a.name}", None))

    kill = sub.add_parser("kill", help="kill switches")
    kill.add_argument("op", choices=["on", "off", "status"])
    kill.add_argument("scope", nargs="?", choices=["global", "tenant", "job"])
    kill.add_argument("target", nargs="?", help="tenant name or job kind")
    kill.set_defaults(call=_kill)

    tenants = sub.add_parser("tenants", help="tenants").add_subparsers(dest="op", required=True)
    tenants.add_parser("list").set_defaults(call=lambda a: ("GET", "/admin/tenants", None))
    create = tenants.add_parser("create", help="create or update a store tenant")
    create.add_argument("name")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--usd-per-day", type=float)
    create.add_argument("--usd-per-month", type=float)
    create.add_argument("--no-content-logging", action="store_true")
    create.add_argument("--retention-days", type=float)
    create.set_defaults(call=_tenant_create)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="op", required=True)
    klist = keys.add_parser("list")
    klist.add_argument("tenant")
    klist.set_defaults(call=lambda a: ("GET", f"/admin/tenants/{a.tenant}/keys", None))
    kcreate = keys.add_parser("create", help="create a key; it is shown once")
    kcreate.add_argument("tenant")
    kcreate.add_argument("name")
    kcreate.set_defaults(
        call=lambda a: ("POST", f"/admin/tenants/{a.tenant}/keys", {"name": a.name})
    )
    krevoke = keys.add_parser("revoke")
    krevoke.add_argument("tenant")
    krevoke.add_argument("key_id", help="the key's id or name")
    krevoke.set_defaults(
        call=lambda a: ("DELETE", f"/admin/tenants/{a.tenant}/keys/{a.key_id}", None)
    )

    events = sub.add_parser("events", help="inspect a request's event and feedback")
    events.add_argument("op", choices=["show"])
    events.add_argument("request_id")
    events.set_defaults(call=lambda a: ("GET", f"/admin/events/{a.request_id}", None))

    audit = sub.add_parser("audit", help="who changed what")
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(call=lambda a: ("GET", f"/admin/audit?limit={a.limit}", None))

    data = sub.add_parser("data", help="data governance")
    data.add_argument("op", choices=["delete"])
    data.add_argument("--tenant", required=True)
    data.add_argument("--user", required=True)
    data.set_defaults(
        call=lambda a: ("POST", "/admin/data/delete-user", {"tenant": a.tenant, "user": a.user})
    )

    classify = sub.add_parser("classify", help="show how a text is classified")
    classify.add_argument("text")
    classify.add_argument("--tenant", help="include this tenant's own intents")
    classify.add_argument("--tier", choices=["fast", "auto", "semantic"], default="auto")
    classify.set_defaults(
        call=lambda a: (
            "POST",
            "/admin/classify",
            {"text": a.text, "tenant": a.tenant, "tier": a.tier},
        )
    )

    policy = sub.add_parser("policy", help="routing policies").add_subparsers(
        dest="op", required=True
    )
    policy.add_parser("list").set_defaults(call=lambda a: ("GET", "/admin/policies", None))
    policy.add_parser("reload").set_defaults(
        call=lambda a: ("POST", "/admin/policies/reload", None)
    )
    explain = policy.add_parser("explain", help="the whole decision for a text")
    explain.add_argument("text")
    explain.add_argument("--tenant", required=True)
    explain.add_argument("--model", default="auto", help="the (virtual) model requested")
    explain.add_argument("--sla", help="the SLA header's value")
    explain.add_argument("--user")
    explain.set_defaults(call=_explain)
    put = policy.add_parser("put", help="upload a policy file (kept in memory)")
    put.add_argument("tenant")
    put.add_argument("file")
    put.set_defaults(call=_put_policy)

    ctl_adapters.add_parser(sub)
    learner = sub.add_parser("learner", help="the learning sidecar").add_subparsers(
        dest="op", required=True
    )
    learner.add_parser(
        "status", help="lag, versions, last gate decisions, per-arm traffic and reward"
    ).set_defaults(call=lambda a: ("GET", "/admin/learner", None))

    sub.add_parser("status", help="breakers, chains, usage").set_defaults(
        call=lambda a: ("GET", "/admin/status", None)
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, rest: list[str]) -> int:
    if not args.admin_key:
        print(
            "flywheel ctl: no admin key: pass --admin-key or set FLYWHEEL_ADMIN_KEY",
            file=sys.stderr,
        )
        return 2
    try:
        method, path, body = args.call(args)
    except ValueError as exc:
        print(f"flywheel ctl: {exc}", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {args.admin_key}", "x-flywheel-actor": args.actor}
    try:
        response = httpx.request(
            method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=10
        )
    except httpx.HTTPError as exc:
        print(f"flywheel ctl: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        payload = response.json()
    except ValueError:
        payload = response.text
    if response.status_code >= 400:
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        print(f"flywheel ctl: {response.status_code}: {message or payload}", file=sys.stderr)
        return 1
    show = getattr(args, "show", None)  # a command's own rendering (tables)
    print(show(payload) if show else json.dumps(payload, indent=2, sort_keys=True))
    return 0


def _explain(a: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    body: dict[str, Any] = {"tenant": a.tenant, "text": a.text, "model": a.model}
    if a.sla:
        body["headers"] = {"x-flywheel-sla": a.sla}
    if a.user:
        body["user"] = a.user
    return "POST", "/admin/policies/explain", body


def _put_policy(a: argparse.Namespace) -> tuple[str, str, bytes]:
    try:
        with open(a.file, "rb") as handle:
            return "PUT", f"/admin/policies/{a.tenant}", handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read {a.file}: {exc}") from None


def _flag_get(a: argparse.Namespace) -> tuple[str, str, None]:
    query = "&".join(f"{k}={v}" for k, v in (("tenant", a.tenant), ("key", a.key)) if v)
    return "GET", f"/admin/flags/{a.name}" + (f"?{query}" if query else ""), None


def _flag_set(a: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    value: bool | str = {"true": True, "false": False}.get(a.value.lower(), a.value)
    body: dict[str, Any] = {"value": value, "rollout_percent": a.rollout}
    if a.tenant:
        body["tenant"] = a.tenant
    return "PUT", f"/admin/flags/{a.name}", body


def _kill(a: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    if a.op == "status":
        return "GET", "/admin/kill", None
    if a.scope is None:
        raise ValueError("kill on|off needs a scope: global, tenant NAME or job KIND")
    return "POST", "/admin/kill", {"scope": a.scope, "target": a.target, "on": a.op == "on"}


def _tenant_create(a: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    limits = {
        "requests_per_minute": a.rpm,
        "tokens_per_minute": a.tpm,
        "usd_per_day": a.usd_per_day,
        "usd_per_month": a.usd_per_month,
    }
    body = {
        "limits": {k: v for k, v in limits.items() if v is not None},
        "content_logging": not a.no_content_logging,
        "retention_days": a.retention_days,
    }
    return "PUT", f"/admin/tenants/{a.name}", body


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
