"""`flywheel ctl adapters ...`: the LoRA adapter registry over the admin API.

adapters list [NAME]
adapters show NAME-vN
adapters register NAME --path P --base smollm2-135m [--version N] [--tenants a,b|*]
                  [--metrics '{"reward": 0.7}'] [--by JOBID]
adapters promote NAME[:VERSION | -vN] [--canary SHARE]
adapters retire NAME-vN
adapters rollback NAME
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any
from urllib.parse import quote


def add_parser(sub: Any) -> None:
    adapters = sub.add_parser("adapters", help="LoRA adapter registry").add_subparsers(
        dest="op", required=True
    )
    listing = adapters.add_parser("list", help="every version, as a table")
    listing.add_argument("name", nargs="?")
    listing.set_defaults(call=_list, show=table)
    show = adapters.add_parser("show", help="one version")
    show.add_argument("ref", metavar="NAME-vN")
    show.set_defaults(call=lambda a: ("GET", f"/admin/adapters/{_id(a.ref)}", None))

    register = adapters.add_parser("register", help="register a new version (a candidate)")
    register.add_argument("name")
    register.add_argument("--path", required=True, help="the PEFT adapter directory or URL")
    register.add_argument("--base", required=True, help="the base model, e.g. smollm2-135m")
    register.add_argument("--version", type=int, help="default: the newest version + 1")
    register.add_argument("--tenants", default="*", help="comma-separated, or * for all")
    register.add_argument("--metrics", help='JSON object of numbers, e.g. {"reward": 0.7}')
    register.add_argument("--by", help="the job id that made it (default: the actor)")
    register.set_defaults(call=_register)

    promote = adapters.add_parser("promote", help="make a version active, or a canary")
    promote.add_argument("ref", metavar="NAME[:VERSION|-vN]")
    promote.add_argument("--canary", type=float, metavar="SHARE", help="share of traffic, 0-1")
    promote.set_defaults(call=_promote)

    retire = adapters.add_parser("retire", help="take a version out of service")
    retire.add_argument("ref", metavar="NAME-vN")
    retire.set_defaults(call=lambda a: ("POST", f"/admin/adapters/{_id(a.ref)}/retire", None))

    approve = adapters.add_parser(
        "approve",
        help="approve a trained candidate (prints its gate report; review first with show)",
    )
    approve.add_argument("ref", metavar="NAME-vN")
    approve.set_defaults(
        call=lambda a: ("POST", f"/admin/adapters/{_id(a.ref)}/approve", None), show=approval
    )

    rollback = adapters.add_parser("rollback", help="back to the previously active version")
    rollback.add_argument("name")
    rollback.set_defaults(call=lambda a: ("POST", f"/admin/adapters/{a.name}/rollback", None))


def _list(a: argparse.Namespace) -> tuple[str, str, None]:
    query = f"?name={quote(a.name)}" if a.name else ""
    return "GET", f"/admin/adapters{query}", None


def _register(a: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    tenants = [t.strip() for t in a.tenants.split(",") if t.strip()]
    body: dict[str, Any] = {
        "name": a.name,
        "base_model": a.base,
        "location": a.path,
        "tenants": tenants,
    }
    if a.version is not None:
        body["version"] = a.version
    if a.by:
        body["created_by"] = a.by
    if a.metrics:
        try:
            metrics = json.loads(a.metrics)
        except ValueError as exc:
            raise ValueError(f"--metrics is not JSON: {exc}") from None
        if not isinstance(metrics, dict):
            raise ValueError('--metrics must be a JSON object, e.g. {"reward": 0.7}')
        body["metrics"] = metrics
    return "POST", "/admin/adapters", body


def _promote(a: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    name, version = split_ref(a.ref)
    body: dict[str, Any] = {}
    if version is not None:
        body["version"] = version
    if a.canary is not None:
        body["canary_share"] = a.canary
    return "POST", f"/admin/adapters/{name}/promote", body


def split_ref(ref: str) -> tuple[str, int | None]:
    """`support` -> (support, None); `support:3` and `support-v3` -> (support, 3)."""
    name, colon, version = ref.partition(":")
    if colon:
        if not version.isdigit():
            raise ValueError(f"{ref!r}: the version after ':' must be a number")
        return name, int(version)
    head, dash_v, number = ref.rpartition("-v")
    if dash_v and head and number.isdigit():
        return head, int(number)
    return ref, None


def _id(ref: str) -> str:
    name, version = split_ref(ref)
    if version is None:
        raise ValueError(f"{ref!r}: name one version, e.g. {ref}-v1")
    return f"{name}-v{version}"


COLUMNS = ("ID", "STATUS", "BASE", "TENANTS", "METRICS", "ACTIVATED", "BY", "LOCATION")


def table(payload: Any) -> str:
    """The records of `GET /admin/adapters` as an aligned text table."""
    records = payload if isinstance(payload, list) else [payload]
    rows = [COLUMNS, *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    if not records:
        lines.append("(no adapters)")
    return "\n".join(line.rstrip() for line in lines)


def approval(record: dict[str, Any]) -> str:
    """An approved record: who approved it and the gate report they approved."""
    report = record.get("gate_report")
    lines = [f"{record.get('id')} approved by {record.get('approved_by')}", "gate report:"]
    lines.append(json.dumps(report, indent=2, sort_keys=True) if report else "  (none recorded)")
    return "\n".join(lines)


def _row(record: dict[str, Any]) -> tuple[str, ...]:
    status = str(record.get("status", ""))
    if record.get("needs_approval") and not record.get("approved_by"):
        status += " (needs approval)"
    if status == "canary":
        status += f" {record.get('canary_share', 0):.0%}"
    metrics = record.get("metrics") or {}
    activated = record.get("activated_at")
    return (
        str(record.get("id", "")),
        status,
        str(record.get("base_model", "")),
        ",".join(record.get("tenants") or []),
        " ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())) or "-",
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(activated)) if activated else "-",
        str(record.get("created_by", "")),
        str(record.get("location", "")),
    )
