"""The store at scale: Redis Streams with consumer groups, hashes and pub/sub.

Keys (standalone Redis; the Lua scripts name keys they compute, so Redis Cluster would
need hash tags first):
- `fw:stream:events`, `fw:stream:feedback`: the streams; each entry has one field `d`,
  the record's JSON. Consumer groups are created at id 0 (MKSTREAM) on first read.
- `fw:event:<request_id>`: hash {id: stream entry id, tenant, tidx, uidx: the index keys
  it is in}. Its existence is what makes `put_events` idempotent (checked in a Lua script,
  so a retried batch never appends twice); the JSON is read back from the stream.
- `fw:fb:<feedback_id>`: hash {id, rid, tenant, uidx}; `fw:fbreq:<request_id>`: sorted
  set of feedback ids by ts; `fw:orphans`: sorted set of feedback ids whose event was
  absent. Feedback joins only its own tenant's event: `put_feedback` refuses it when the
  stored event is another tenant's, and `put_events` deletes another tenant's feedback
  left on the id before the event came (both in Lua, so no interleaving slips past).
- `fw:idx:t:<tenant>` (request ids by ts) and `fw:idx:u:<tenant>:<user>` (`e:<rid>` and
  `f:<fid>` by ts): what retention and per-user deletion walk. Deletion XDELs the
  stream entries and removes every key and index member, in Lua, 500 at a time.
- `fw:h:<namespace>`: hashes; every write PUBLISHes `namespace\\0field` on `fw:changes`.
- `fw:audit`: a list, newest first, capped at `audit_cap` entries.

Every Redis error is translated to `StoreUnavailable` here, scrubbed of the URL and its
credentials (gateway/store/scrub.py). Timeouts are short (1 s)
and a failed command is retried once at once (a pooled connection may predate a
server restart), so an outage surfaces in milliseconds, not after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from gateway.events import Feedback, InteractionEvent
from gateway.store.base import (
    AuditEntry,
    Change,
    FeedbackStatus,
    StoreUnavailable,
    StreamEntry,
    StreamName,
)
from gateway.store.joins import feedback_status, foreign_feedback_dropped
from gateway.store.scrub import describe

STREAMS: dict[str, str] = {"events": "fw:stream:events", "feedback": "fw:stream:feedback"}
CHANNEL = "fw:changes"
AUDIT = "fw:audit"
BATCH = 500  # deletions per Lua call, so a big purge never blocks Redis for long
BLOCK_SLICE_MS = 400  # a blocking read waits in slices shorter than the socket timeout

_PRELUDE = """
local ES, FS, ORPH = 'fw:stream:events', 'fw:stream:feedback', 'fw:orphans'
local function ek(rid) return 'fw:event:' .. rid end
local function fk(fid) return 'fw:fb:' .. fid end
local function rk(rid) return 'fw:fbreq:' .. rid end
local function del_feedback(fid)
  local h = redis.call('HMGET', fk(fid), 'id', 'rid', 'uidx')
  if not h[1] then return 0 end
  redis.call('XDEL', FS, h[1])
  redis.call('ZREM', rk(h[2]), fid)
  if h[3] ~= '' then redis.call('ZREM', h[3], 'f:' .. fid) end
  redis.call('ZREM', ORPH, fid)
  redis.call('DEL', fk(fid))
  return 1
end
local function del_event(rid)
  local h = redis.call('HMGET', ek(rid), 'id', 'tidx', 'uidx')
  local events, feedback = 0, 0
  if h[1] then
    redis.call('XDEL', ES, h[1])
    redis.call('ZREM', h[2], rid)
    if h[3] ~= '' then redis.call('ZREM', h[3], 'e:' .. rid) end
    redis.call('DEL', ek(rid))
    events = 1
  end
  for _, fid in ipairs(redis.call('ZRANGE', rk(rid), 0, -1)) do
    feedback = feedback + del_feedback(fid)
  end
  redis.call('DEL', rk(rid))
  return events, feedback
end
local function entry_json(stream, id)
  local r = redis.call('XRANGE', stream, id, id)
  if #r == 0 then return false end
  return r[1][2][2]
end
-- The tenant of a stored record; records written before the hash kept it: from the JSON.
local function tenant_of(key, stream)
  local h = redis.call('HMGET', key, 'tenant', 'id')
  if h[1] then return h[1] end
  if not h[2] then return false end
  local json = entry_json(stream, h[2])
  if not json then return false end
  return cjson.decode(json)['tenant'] or false
end
"""

# ARGV: per event (request id, ts, json, tenant index key, user index key or '', tenant).
# Returns {events new, foreign feedback dropped}.
_PUT_EVENTS = """
local new, dropped = 0, 0
for i = 1, #ARGV, 6 do
  local rid, ts, json, tidx = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local uidx, tenant = ARGV[i + 4], ARGV[i + 5]
  if redis.call('EXISTS', ek(rid)) == 0 then
    local id = redis.call('XADD', ES, '*', 'd', json)
    redis.call('HSET', ek(rid), 'id', id, 'tenant', tenant, 'tidx', tidx, 'uidx', uidx)
    redis.call('ZADD', tidx, ts, rid)
    if uidx ~= '' then redis.call('ZADD', uidx, ts, 'e:' .. rid) end
    for _, fid in ipairs(redis.call('ZRANGE', rk(rid), 0, -1)) do
      local owner = tenant_of(fk(fid), FS)
      if owner and owner ~= tenant then
        dropped = dropped + del_feedback(fid)
      else
        redis.call('ZREM', ORPH, fid)
      end
    end
    new = new + 1
  end
end
return {new, dropped}
"""

# ARGV: feedback id, request id, ts, json, user index key or '', tenant.
# Returns the FeedbackStatus.
_PUT_FEEDBACK = """
local fid, rid, ts, json, uidx, tenant = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local owner = tenant_of(ek(rid), ES)
if owner and owner ~= tenant then return 'refused' end
local status = owner and 'joined' or 'pending_event'
if redis.call('EXISTS', fk(fid)) == 1 then return status end
local id = redis.call('XADD', FS, '*', 'd', json)
redis.call('HSET', fk(fid), 'id', id, 'rid', rid, 'tenant', tenant, 'uidx', uidx)
redis.call('ZADD', rk(rid), ts, fid)
if uidx ~= '' then redis.call('ZADD', uidx, ts, 'f:' .. fid) end
if not owner then redis.call('ZADD', ORPH, ts, fid) end
return status
"""

_GET_EVENT = """
local id = redis.call('HGET', ek(ARGV[1]), 'id')
if not id then return false end
return entry_json(ES, id)
"""

_FEEDBACK_FOR = """
local out = {}
for _, fid in ipairs(redis.call('ZRANGE', rk(ARGV[1]), 0, -1)) do
  local id = redis.call('HGET', fk(fid), 'id')
  local json = id and entry_json(FS, id)
  if json then out[#out + 1] = json end
end
return out
"""

# ARGV: tenant index key, exclusive upper ts, limit. Returns {walked, events deleted}.
_TRIM = """
local rids = redis.call('ZRANGEBYSCORE', ARGV[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
local n = 0
for _, rid in ipairs(rids) do
  redis.call('ZREM', ARGV[1], rid)
  local events = del_event(rid)
  n = n + events
end
return {#rids, n}
"""

# ARGV: user index key, limit. Returns {walked, records deleted}.
_DELETE_USER = """
local members = redis.call('ZRANGE', ARGV[1], 0, tonumber(ARGV[2]) - 1)
local n = 0
for _, m in ipairs(members) do
  redis.call('ZREM', ARGV[1], m)
  local id = string.sub(m, 3)
  if string.sub(m, 1, 2) == 'e:' then
    local events, feedback = del_event(id)
    n = n + events + feedback
  else
    n = n + del_feedback(id)
  end
end
return {#members, n}
"""

# ARGV: exclusive upper ts, limit. Returns {walked, feedback deleted}.
_EXPIRE_ORPHANS = """
local fids = redis.call('ZRANGEBYSCORE', ORPH, '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
local n = 0
for _, fid in ipairs(fids) do
  redis.call('ZREM', ORPH, fid)
  local rid = redis.call('HGET', fk(fid), 'rid')
  if rid and redis.call('EXISTS', ek(rid)) == 0 then n = n + del_feedback(fid) end
end
return {#fids, n}
"""


def _part(value: str) -> str:
    """A key component that cannot be confused with the `:` separators around it."""
    return value.replace("%", "%25").replace(":", "%3A")


def _tenant_index(tenant: str) -> str:
    return f"fw:idx:t:{_part(tenant)}"


def _user_index(tenant: str, user: str | None) -> str:
    return "" if user is None else f"fw:idx:u:{_part(tenant)}:{_part(user)}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _translated(exc: RedisError, url: str) -> StoreUnavailable:
    """The one translation of a Redis error: kind and scrubbed problem, never the URL."""
    return StoreUnavailable("redis", describe(exc, url))


@contextlib.contextmanager
def _unavailable(url: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise _translated(exc, url) from exc


class RedisStore:
    def __init__(
        self,
        url: str,
        timeout_s: float = 1.0,
        max_connections: int = 64,
        audit_cap: int = 100_000,
    ) -> None:
        self.url = url
        self.foreign_feedback_dropped = 0
        self._audit_cap = audit_cap
        self._client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
            max_connections=max_connections,
            health_check_interval=30,
        )
        self._groups: set[tuple[str, str]] = set()  # (stream key, group) known to exist
        self._closed = asyncio.Event()
        scripts = {
            "put_events": _PUT_EVENTS,
            "put_feedback": _PUT_FEEDBACK,
            "get_event": _GET_EVENT,
            "feedback_for": _FEEDBACK_FOR,
            "trim": _TRIM,
            "delete_user": _DELETE_USER,
            "expire_orphans": _EXPIRE_ORPHANS,
        }
        self._scripts = {
            name: self._client.register_script(_PRELUDE + body) for name, body in scripts.items()
        }

    async def _script(self, name: str, *args: str | float) -> Any:
        with _unavailable(self.url):
            return await self._scripts[name](args=list(args))

    async def _in_batches(self, name: str, *args: str | float) -> int:
        """Run a deletion script until it walks fewer than BATCH index entries."""
        total = 0
        while True:
            walked, deleted = await self._script(name, *args, BATCH)
            total += int(deleted)
            if int(walked) < BATCH:
                return total

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        await self.ping()

    async def close(self) -> None:
        self._closed.set()
        with _unavailable(self.url):
            await self._client.aclose()

    async def ping(self) -> None:
        with _unavailable(self.url):
            await self._client.ping()

    # --- events and feedback -------------------------------------------------------

    async def put_events(self, events: list[InteractionEvent]) -> int:
        if not events:
            return 0
        args: list[str | float] = []
        for e in events:
            index = _user_index(e.tenant, e.user)
            args += [e.request_id, e.ts, e.model_dump_json(), _tenant_index(e.tenant), index]
            args.append(e.tenant)
        new, dropped = await self._script("put_events", *args)
        if int(dropped):
            self.foreign_feedback_dropped += int(dropped)
            foreign_feedback_dropped(int(dropped))
        return int(new)

    async def get_event(self, request_id: str) -> InteractionEvent | None:
        raw = await self._script("get_event", request_id)
        return None if raw is None else InteractionEvent.model_validate_json(raw)

    async def put_feedback(self, feedback: Feedback) -> FeedbackStatus:
        status = await self._script(
            "put_feedback",
            feedback.feedback_id,
            feedback.request_id,
            feedback.ts,
            feedback.model_dump_json(),
            _user_index(feedback.tenant, feedback.user),
            feedback.tenant,
        )
        return feedback_status(_text(status))

    async def feedback_for(self, request_id: str, tenant: str | None = None) -> list[Feedback]:
        raws = await self._script("feedback_for", request_id)
        found = [Feedback.model_validate_json(raw) for raw in raws]
        return [f for f in found if tenant is None or f.tenant == tenant]

    # --- consumption -----------------------------------------------------------------

    async def _ensure_group(self, key: str, group: str) -> None:
        if (key, group) in self._groups:
            return
        try:
            await self._client.xgroup_create(key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((key, group))

    async def _read_once(
        self, key: str, group: str, consumer: str, count: int, start: str, block: int | None
    ) -> list[StreamEntry]:
        await self._ensure_group(key, group)
        reply: Any  # [[stream, [(id, {b"d": json} or None for a deleted entry)]]]
        try:
            reply = await self._client.xreadgroup(
                group, consumer, {key: start}, count=count, block=block
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard((key, group))  # the stream was deleted: create it again
            await self._ensure_group(key, group)
            reply = await self._client.xreadgroup(group, consumer, {key: start}, count=count)
        entries: list[StreamEntry] = []
        gone: list[str] = []
        for _, messages in reply or []:
            for raw_id, fields in messages:
                entry_id = _text(raw_id)
                if fields:
                    entries.append(StreamEntry(entry_id, fields[b"d"]))
                else:
                    gone.append(entry_id)  # deleted since delivery (retention, erasure)
        if gone:
            await self._client.xack(key, group, *gone)
        return entries

    async def read(
        self,
        stream: StreamName,
        group: str,
        consumer: str,
        count: int,
        block_ms: int = 0,
        pending: bool = False,
    ) -> list[StreamEntry]:
        key = STREAMS[stream]
        with _unavailable(self.url):
            if pending:
                return await self._read_once(key, group, consumer, count, "0", None)
            deadline = time.monotonic() + block_ms / 1000
            while True:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                block = min(remaining_ms, BLOCK_SLICE_MS) if remaining_ms > 0 else None
                entries = await self._read_once(key, group, consumer, count, ">", block)
                if entries or block is None or time.monotonic() >= deadline:
                    return entries

    async def ack(self, stream: StreamName, group: str, entry_ids: list[str]) -> None:
        if entry_ids:
            with _unavailable(self.url):
                await self._client.xack(STREAMS[stream], group, *entry_ids)

    async def stream_length(self, stream: StreamName) -> int:
        with _unavailable(self.url):
            return int(await self._client.xlen(STREAMS[stream]))

    # --- hashes and change notices -------------------------------------------------

    async def hgetall(self, namespace: str) -> dict[str, str]:
        with _unavailable(self.url):
            values = await self._client.hgetall(f"fw:h:{namespace}")
        return {_text(field): _text(value) for field, value in values.items()}

    async def hget(self, namespace: str, field: str) -> str | None:
        with _unavailable(self.url):
            value = await self._client.hget(f"fw:h:{namespace}", field)
        return None if value is None else _text(value)

    async def hset(self, namespace: str, field: str, value: str) -> str | None:
        return await self._hwrite(namespace, field, value)

    async def hdel(self, namespace: str, field: str) -> str | None:
        return await self._hwrite(namespace, field, None)

    async def _hwrite(self, namespace: str, field: str, value: str | None) -> str | None:
        """Set (or delete, for None) and publish the change, atomically; the old value."""
        key = f"fw:h:{namespace}"
        with _unavailable(self.url):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hget(key, field)
                if value is None:
                    pipe.hdel(key, field)
                else:
                    pipe.hset(key, field, value)
                pipe.publish(CHANNEL, f"{namespace}\x00{field}")
                old = (await pipe.execute())[0]
        return None if old is None else _text(old)

    async def changes(self) -> AsyncIterator[Change]:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            with _unavailable(self.url):
                await pubsub.subscribe(CHANNEL)
            while not self._closed.is_set():
                try:
                    message = await pubsub.get_message(timeout=0.2)
                except RedisError as exc:
                    if self._closed.is_set():
                        return  # the store closed under us: the notices end
                    raise _translated(exc, self.url) from exc
                if message is not None and message["type"] == "message":
                    namespace, _, field = _text(message["data"]).partition("\x00")
                    yield Change(namespace, field)
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()

    # --- audit ---------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        with _unavailable(self.url):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.lpush(AUDIT, orjson.dumps(dataclasses.asdict(entry)))
                pipe.ltrim(AUDIT, 0, self._audit_cap - 1)
                await pipe.execute()

    async def read_audit(self, limit: int = 100) -> list[AuditEntry]:
        if limit <= 0:
            return []
        with _unavailable(self.url):
            raws = await self._client.lrange(AUDIT, 0, limit - 1)
        return [AuditEntry(**orjson.loads(raw)) for raw in raws]

    # --- data governance -----------------------------------------------------------

    async def trim_events(self, tenant: str, older_than_ts: float) -> int:
        """Delete the tenant's older events and their feedback; return the events deleted."""
        return await self._in_batches("trim", _tenant_index(tenant), older_than_ts)

    async def delete_user(self, tenant: str, user: str) -> int:
        """Delete the user's events, their feedback and the user's own feedback; return
        how many records (events + feedback) went."""
        return await self._in_batches("delete_user", _user_index(tenant, user))

    async def expire_orphan_feedback(self, older_than_ts: float) -> int:
        return await self._in_batches("expire_orphans", older_than_ts)
