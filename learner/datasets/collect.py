"""Interactions from the store: each logged event with its feedback, rendered as text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from gateway.events import Feedback, InteractionEvent
from gateway.store.base import Store
from gateway.transcript import render_prompt, render_response
from learner.datasets.examples import Interaction
from learner.replay import ReplayBuffer


async def collect(
    store: Store,
    request_ids: Iterable[str],
    rewards: Mapping[str, float] | None = None,
    *,
    concurrency: int = 16,
) -> list[Interaction]:
    """The interactions of these requests (events with their feedback), in the order given;
    ids with no stored event are left out."""
    gate = asyncio.Semaphore(concurrency)

    async def one(request_id: str) -> Interaction | None:
        async with gate:
            event = await store.get_event(request_id)
            if event is None:
                return None
            feedback = await store.feedback_for(request_id, event.tenant)
        reward = rewards.get(request_id) if rewards is not None else None
        return interaction_from(event, feedback, reward)

    found = await asyncio.gather(*(one(i) for i in dict.fromkeys(request_ids)))
    return [item for item in found if item is not None]


def replay_rewards(buffer: ReplayBuffer, tenant: str | None = None) -> dict[str, float]:
    """Request id -> reward of every experience in the learner's replay buffer."""
    return {e.request_id: e.reward for e in buffer.experiences(tenant=tenant)}


def interaction_from(
    event: InteractionEvent, feedback: Iterable[Feedback] = (), reward: float | None = None
) -> Interaction:
    """The event with its own tenant's feedback (another tenant's never joins)."""
    feedback = [f for f in feedback if f.tenant == event.tenant]
    return Interaction(
        request_id=event.request_id,
        tenant=event.tenant,
        ts=event.ts,
        prompt=render_prompt(event.endpoint, event.request),
        response=render_response(event.response),
        feedback=tuple(sorted(feedback, key=lambda f: (f.ts, f.feedback_id))),
        intent=event.context.intent,
        prompt_hash=event.context.prompt_hash,
        user=event.user,
        reward=reward,
        flags=tuple(str(g.get("kind", "flagged")) for g in event.guard),
        multimodal=event.context.has_images,
    )
