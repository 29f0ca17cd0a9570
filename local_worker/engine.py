"""The dynamic batcher: one generation thread, continuous batching over a shared KV cache.

Requests arrive on the event loop and are handed to the generation thread, so generation
never blocks the loop. When the thread is idle, the first request opens a short window
(`batch_window_s`) for others to join its prefill; while a batch is decoding, new requests
are prefilled between steps and joined to the running cache (left-padded), so everything
in flight shares one forward pass per step. A finished or cancelled sequence leaves the
batch at once. Each row keeps its own sampling parameters, RNG and LoRA adapter (PEFT's
per-row `adapter_names`). Tokens go back to the request's asyncio queue as they are made.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from transformers import DynamicCache

from local_worker import kv_batch
from local_worker.lora_model import BASE, peft_name
from local_worker.prefix_cache import Prefix, PrefixCache
from local_worker.sampling import Release, Sampling, generator_for, sample

log = logging.getLogger("flywheel.local_worker")
T = TypeVar("T")


@dataclass
class Step:
    """What one request gets from one decoding step."""

    text: str
    completion_tokens: int
    finish_reason: str | None = None  # "stop" or "length" on the last step
    index: int = 0  # which choice of the request


@dataclass
class Job:
    """One sequence to generate, owned by a request on the event loop."""

    prompt: list[int]
    sampling: Sampling
    adapter: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Step | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    index: int = 0  # which choice of the request (n > 1 share one queue)
    submitted: float = field(default_factory=time.perf_counter)

    def deliver(self, item: Step | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


@dataclass
class _Command:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class _Row:
    job: Job
    position: int  # where the next fed token sits
    generator: torch.Generator | None
    release: Release
    ids: list[int] = field(default_factory=list)


class Engine:
    """Owns the model; everything touching it runs on the generation thread."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_model_len: int,
        max_batch: int = 16,
        batch_window_s: float = 0.005,
        eos_ids: set[int] | None = None,
        prefix_cache_tokens: int = 4096,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self.eos_ids = eos_ids or set()
        self.lora = False  # set by the adapter manager once an adapter is loaded
        self.prepare: Callable[[Job], None] | None = None  # loads a job's adapter if needed
        self.prefixes = PrefixCache(max_tokens=prefix_cache_tokens)
        forward = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward else "past_key_values"
        self._inbox: queue.SimpleQueue[Job | _Command | None] = queue.SimpleQueue()
        self._waiting: deque[Job] = deque()
        self._admitting: list[Job] = []
        self._rows: list[_Row] = []
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros((0, 0), dtype=torch.long)
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self.steps = 0
        self.tokens = 0

    # --- event-loop side ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        self._inbox.put(job)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the generation thread between two steps (adapter loads, probes)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._inbox.put(_Command(fn, loop, future))
        return await future

    @property
    def running(self) -> int:
        return len(self._rows)

    def adapters_in_use(self) -> set[str]:
        """Adapters of rows in flight or waiting (call on the generation thread)."""
        jobs = [r.job for r in self._rows] + list(self._waiting)
        return {j.adapter for j in jobs if j.adapter is not None}

    # --- generation thread -------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                if not self._take(block=not self._rows and not self._waiting):
                    break
                try:
                    self._admit()
                    if self._rows:
                        self._step()
                except Exception as exc:
                    log.exception("generation step failed")
                    self._fail_all(exc)

    def _take(self, block: bool) -> bool:
        """Drain the inbox; when idle, wait for work, then a short window for company."""
        deadline = None
        while True:
            try:
                if block and deadline is None:
                    item = self._inbox.get()
                elif deadline is not None:
                    item = self._inbox.get(timeout=max(0.0, deadline - time.perf_counter()))
                else:
                    item = self._inbox.get_nowait()
            except queue.Empty:
                return True
            if item is None:
                self._fail_all(RuntimeError("the worker is shutting down"))
                return False
            if isinstance(item, _Command):
                self._execute(item)
                continue
            self._waiting.append(item)
            if block and deadline is None:
                deadline = time.perf_counter() + self.batch_window_s

    def _execute(self, command: _Command) -> None:
        try:
            result = command.fn()
        except Exception as exc:
            command.loop.call_soon_threadsafe(_settle, command.future, None, exc)
        else:
            command.loop.call_soon_threadsafe(_settle, command.future, result, None)

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
        adapters: list[str | None],
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_kw: cache}
        if self.lora:
            kwargs["adapter_names"] = [peft_name(a) if a else BASE for a in adapters]
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        logits: torch.Tensor = out.logits[:, -1, :]
        return logits

    def _admit(self) -> None:
        jobs: list[Job] = []
        self._admitting = jobs  # so a failing prefill still answers them
        while self._waiting and len(self._rows) + len(jobs) < self.max_batch:
            job = self._waiting.popleft()
            if job.cancelled:
                continue
            jobs.append(job)
            if self.prepare is not None:
                try:
                    self.prepare(job)
                except Exception as exc:  # this request alone hears of it
                    jobs.pop()
                    job.deliver(exc)
        groups: dict[tuple[int, int], tuple[Prefix | None, int, list[Job]]] = {}
        for job in jobs:
            hit = self.prefixes.match(job.prompt, job.adapter)
            prefix, covered = hit if hit is not None else (None, 0)
            groups.setdefault((id(prefix), covered), (prefix, covered, []))[2].append(job)
        for prefix, covered, group in groups.values():
            cache, mask, logits = self._prefill(group, prefix, covered)
            rows = [
                _Row(j, len(j.prompt), generator_for(j.sampling), Release(j.sampling.stop))
                for j in group
            ]
            if self._cache is None:
                self._cache, self._mask = cache, mask
            else:
                self._cache, self._mask = kv_batch.join(self._cache, self._mask, cache, mask)
            self._rows.extend(rows)
            self._advance(rows, logits, offset=len(self._rows) - len(rows))
        self._admitting = []

    def _prefill(
        self, jobs: list[Job], prefix: Prefix | None, covered: int
    ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """One forward pass over the jobs' prompts (after a shared cached prefix, if any).

        Rows are left-padded; with a prefix the padding sits between the prefix and the
        rest of each prompt, which the attention mask and explicit positions allow.
        """
        rest = [j.prompt[covered:] for j in jobs]
        width = max(len(r) for r in rest)
        ids = torch.zeros((len(jobs), width), dtype=torch.long)
        fresh = torch.zeros((len(jobs), width), dtype=torch.long)
        for i, tokens in enumerate(rest):
            ids[i, width - len(tokens) :] = torch.tensor(tokens)
            fresh[i, width - len(tokens) :] = 1
        positions = covered + (fresh.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        mask = fresh
        if prefix is not None:
            for index, (keys, values) in enumerate(prefix.layers):
                shape = (len(jobs), keys.shape[1], covered, keys.shape[3])
                cache.update(
                    keys[:, :, :covered].expand(shape).contiguous(),
                    values[:, :, :covered].expand(shape).contiguous(),
                    index,
                )
            mask = torch.cat([torch.ones((len(jobs), covered), dtype=torch.long), fresh], 1)
        logits = self._forward(ids, mask, positions, cache, [j.adapter for j in jobs])
        for i, job in enumerate(jobs):  # kept whole, so longer shared heads keep growing
            if prefix is None or not np.array_equal(prefix.tokens, job.prompt):
                gap = width - len(rest[i])
                self.prefixes.store(job.prompt, job.adapter, cache, i, covered, gap)
        return cache, mask, logits

    def _step(self) -> None:
        assert self._cache is not None
        last = torch.tensor([[r.ids[-1]] for r in self._rows], dtype=torch.long)
        self._mask = torch.cat([self._mask, torch.ones((len(self._rows), 1), dtype=torch.long)], 1)
        positions = torch.tensor([[r.position] for r in self._rows], dtype=torch.long)
        logits = self._forward(
            last, self._mask, positions, self._cache, [r.job.adapter for r in self._rows]
        )
        for row in self._rows:
            row.position += 1
        self.steps += 1
        self._advance(self._rows, logits, offset=0)

    def _advance(self, rows: list[_Row], logits: torch.Tensor, offset: int) -> None:
        """Sample one token per row, send the text it releases, drop finished rows."""
        done: set[int] = set()
        for i, row in enumerate(rows):
            if row.job.cancelled:
                done.add(offset + i)
                continue
            token = sample(logits[i], row.job.sampling, row.generator)
            row.ids.append(token)
            self.tokens += 1
            finish = self._finish(row, token)
            text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
            cut = row.release.find_stop(text)
            if cut is not None:
                text, finish = text[:cut], "stop"
            delta = row.release.next(text, final=finish is not None)
            if delta or finish:
                row.job.deliver(Step(delta, len(row.ids), finish, row.job.index))
            if finish:
                done.add(offset + i)
        if done:
            self._drop(done)

    def _finish(self, row: _Row, token: int) -> str | None:
        if token in self.eos_ids:
            return "stop"
        if (
            len(row.ids) >= row.job.sampling.max_tokens
            or len(row.job.prompt) + len(row.ids) >= self.max_model_len
        ):
            return "length"
        return None

    def _drop(self, done: set[int]) -> None:
        kept = [i for i in range(len(self._rows)) if i not in done]
        self._rows = [self._rows[i] for i in kept]
        if not kept or self._cache is None:
            self._cache, self._mask = None, torch.zeros((0, 0), dtype=torch.long)
            return
        self._mask = kv_batch.keep(self._cache, self._mask, kept)

    def _fail_all(self, exc: BaseException) -> None:
        for job in [r.job for r in self._rows] + self._admitting + list(self._waiting):
            job.deliver(exc)
        self._rows, self._waiting, self._admitting = [], deque(), []
        self._cache, self._mask = None, torch.zeros((0, 0), dtype=torch.long)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
