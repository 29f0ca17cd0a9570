"""Ensembles: call N candidates in parallel and answer with one, accounting every call.

- first: hedging. The first success wins and the others are cancelled.
- judge: all answer; a judge model reads the question and the numbered answers and
  names the best; its call is accounted too.
- consensus: all answer; the one closest to the others (mean token Jaccard) wins, a
  self-consistency vote that needs no extra call.
- reward: all answer; the scorer (a reward model behind the local worker's
  `POST /v1/score`) scores each answer to the request and the highest wins (ties: the
  earlier in the chain). The prompt is rendered as the learner trained the reward model
  on it (`gateway.transcript.prompt_text`).

A judge or scorer that fails, or answers nonsense, costs the request nothing but the
pick: the first answer in chain order is served and the note says why.

Each candidate runs through the dispatcher on its own (retries and its breaker apply;
no fallback to the others, which are already running).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.catalog import ModelRoute
from gateway.dispatch import Attempt, Dispatcher, Trace
from gateway.errors import NoRouteAvailable, UpstreamError, UpstreamUnavailable
from gateway.policy.model import EnsembleSpec
from gateway.providers.base import CallOptions, Endpoint
from gateway.serving.usage import Usage, usage_from
from gateway.transcript import chat_turns, prompt_text, render_prompt

JUDGE_PROMPT = (
    "You are judging answers to the same request. Read the request and the numbered "
    "answers, then reply with only the number of the best answer (most correct, most "
    "helpful, follows the instructions).\n\nREQUEST:\n{question}\n\n{answers}\n\nBest answer:"
)


Reveal = Callable[[bytes], bytes]


@dataclass(slots=True)
class Candidate:
    route: ModelRoute
    body: bytes
    usage: Usage
    trace: Trace

    @property
    def cost(self) -> float:
        return self.route.cost_usd(self.usage.input_tokens, self.usage.output_tokens)

    def text(self, reveal: Reveal | None = None) -> str:
        """The answer's text; `reveal` first undoes the request's PII masking (for a picker
        that may see the request unmasked)."""
        try:
            data = orjson.loads(reveal(self.body) if reveal is not None else self.body)
            return str(data["choices"][0]["message"].get("content") or "")
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return ""


@dataclass(slots=True)
class EnsembleResult:
    winner: Candidate
    others: list[Candidate]  # answered (or judged) but not chosen: their cost still counts
    picker: Candidate | None  # the call that picked the winner (judge or scorer), if any
    note: str


async def run_ensemble(
    dispatcher: Dispatcher,
    spec: EnsembleSpec,
    chain: tuple[ModelRoute, ...],
    attempt: Attempt[Any],
    request_id: str,
    request_body: dict[str, Any],
    picker: ModelRoute | None,
    reveal: Reveal | None = None,
) -> EnsembleResult:
    """Run the candidates and pick one; `picker` is the judge's or the scorer's route, and
    `request_body` the request as the picker may see it (PII masked for its location);
    `reveal` unmasks the answers when the picker sees the request unmasked, so answers
    from external candidates (masked) and local ones read alike."""
    candidates = chain[: spec.n]

    async def call(route: ModelRoute) -> Candidate:
        trace = Trace(request_id)
        answer = await dispatcher.run((route,), attempt, trace)
        return Candidate(route, answer.body, answer.usage, trace)

    tasks = [asyncio.create_task(call(route)) for route in candidates]
    try:
        if spec.select == "first":
            return await _first(tasks)
        done = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
    answers = [c for c in done if isinstance(c, Candidate)]
    if not answers:
        errors = [e for e in done if isinstance(e, UpstreamError)]
        raise errors[0] if errors else NoRouteAvailable("every ensemble candidate failed")
    if len(answers) == 1:
        return _chosen(answers, 0, None, "one candidate answered")
    if spec.select == "consensus":
        best = max(range(len(answers)), key=lambda i: _agreement(answers, i))
        return _chosen(answers, best, None, f"consensus picked {answers[best].route.name}")
    texts = [a.text(reveal) for a in answers]
    if spec.select == "reward":
        return await _reward(dispatcher, answers, texts, picker, request_id, request_body)
    return await _judge(dispatcher, answers, texts, picker, request_id, request_body)


async def _first(tasks: list[asyncio.Task[Candidate]]) -> EnsembleResult:
    pending = set(tasks)
    last: BaseException | None = None
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is None:
                return EnsembleResult(
                    task.result(), [], None, f"hedge won by {task.result().route.name}"
                )
            last = task.exception()
    if isinstance(last, UpstreamError):
        raise last
    raise NoRouteAvailable("every ensemble candidate failed")


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _agreement(answers: list[Candidate], index: int) -> float:
    mine = _tokens(answers[index].text())
    scores = []
    for j, other in enumerate(answers):
        if j != index:
            theirs = _tokens(other.text())
            union = mine | theirs
            scores.append(len(mine & theirs) / len(union) if union else 0.0)
    return sum(scores) / len(scores)


async def _judge(
    dispatcher: Dispatcher,
    answers: list[Candidate],
    texts: list[str],
    judge_route: ModelRoute | None,
    request_id: str,
    request_body: dict[str, Any],
) -> EnsembleResult:
    if judge_route is None:
        return _chosen(answers, 0, None, "no judge available: first answer")
    turns = chat_turns(request_body.get("messages") or [])
    question = "\n".join(t.content for t in turns if t.role == "user")
    numbered = "\n\n".join(f"ANSWER {i + 1}:\n{t}" for i, t in enumerate(texts))
    prompt = JUDGE_PROMPT.format(question=question[-4000:], answers=numbered[-12000:])
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "temperature": 0}
    try:
        verdict = await _call_picker(dispatcher, judge_route, Endpoint.CHAT, body, request_id)
    except UpstreamError:
        return _chosen(answers, 0, None, "judge failed: first answer")
    match = re.search(r"\d+", verdict.text())
    pick = int(match.group()) - 1 if match else 0
    if not 0 <= pick < len(answers):
        pick = 0
    note = f"judge {judge_route.name} picked {answers[pick].route.name}"
    return _chosen(answers, pick, verdict, note)


async def _reward(
    dispatcher: Dispatcher,
    answers: list[Candidate],
    texts: list[str],
    scorer: ModelRoute | None,
    request_id: str,
    request_body: dict[str, Any],
) -> EnsembleResult:
    if scorer is None:
        return _chosen(answers, 0, None, "no scorer available: first answer")
    body = {
        "prompt": prompt_text(render_prompt(Endpoint.CHAT.value, request_body)),
        "responses": texts,
    }
    try:
        scored = await _call_picker(dispatcher, scorer, Endpoint.SCORE, body, request_id)
    except UpstreamError as exc:
        return _chosen(
            answers, 0, None, f"scorer {scorer.name} failed ({exc.message}): first answer"
        )
    scores = scores_of(scored.body, len(answers))
    if scores is None:
        note = f"scorer {scorer.name} answered no usable scores: first answer"
        return _chosen(answers, 0, scored, note)
    pick = max(range(len(answers)), key=lambda i: (scores[i], -i))
    shown = ", ".join(f"{a.route.name} {s:.3f}" for a, s in zip(answers, scores, strict=True))
    note = f"reward model {scorer.name} picked {answers[pick].route.name} ({shown})"
    return _chosen(answers, pick, scored, note)


async def _call_picker(
    dispatcher: Dispatcher,
    route: ModelRoute,
    endpoint: Endpoint,
    body: dict[str, Any],
    request_id: str,
) -> Candidate:
    """The judge's or scorer's call, through the dispatcher (its retries and breaker); the
    candidate keeps the call's trace, so its attempts count with the request's."""

    async def ask(route: ModelRoute, options: CallOptions) -> Candidate:
        raw = await route.provider.send(endpoint, {**body, "model": route.upstream_model}, options)
        try:
            usage = usage_from(orjson.loads(raw)) if endpoint is Endpoint.CHAT else None
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(f"{route.name} answered a body that is not JSON") from exc
        return Candidate(route, raw, usage or Usage(), Trace(request_id))

    trace = Trace(request_id)
    picked = await dispatcher.run((route,), ask, trace)
    picked.trace = trace
    return picked


def _chosen(
    answers: list[Candidate], pick: int, picker: Candidate | None, note: str
) -> EnsembleResult:
    return EnsembleResult(answers[pick], answers[:pick] + answers[pick + 1 :], picker, note)


def scores_of(raw: bytes, count: int) -> list[float] | None:
    """The scores of a `/v1/score` reply in answer order, or None if it is not one."""
    try:
        data = orjson.loads(raw)["data"]
        by_index = {int(d["index"]): float(d["score"]) for d in data}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(count)) or any(s != s for s in by_index.values()):
        return None  # a missing, extra or NaN score
    return [by_index[i] for i in range(count)]
