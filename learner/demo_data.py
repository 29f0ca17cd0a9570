"""The demo's synthetic world: logged prompts, users who rate answers, and their feedback.

The synthetic users want what SmolLM2's base answers usually lack: an answer that opens
with a one-line summary (a short first line of real content, then the rest) and stays under
80 words, finished rather than cut off, and on topic. `user_rating(prompt, answer)` is
their deterministic score in [0, 1]; `traffic_snapshot` turns sampled answers and those
ratings into logged `Interaction`s with `score` feedback (and, from the first user, a
`correction` of a poorly rated answer, `user_correction`) and builds a dataset snapshot
(`learner.datasets.build_snapshot`): preference pairs, scored samples and prompts, with the
newest prompts held out.

`summary_pairs(n, seed)` scripts the same preference without a model, for benchmarks and
tests: support questions whose chosen answer is a one-line summary and one short sentence,
and whose rejected answer is a long ramble on the same topic with no summary line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from gateway.events import Feedback
from gateway.transcript import Turn
from learner.datasets import Interaction, Snapshot, SnapshotOptions, build_snapshot
from learner.reward_model.base import PreferencePair

PROMPTS: tuple[str, ...] = (
    "Why is the sky blue?",
    "How do vaccines train the immune system?",
    "What causes the seasons on Earth?",
    "Explain photosynthesis to a ten-year-old.",
    "Why does ice float on water?",
    "How do black holes form?",
    "What is the difference between weather and climate?",
    "How do I cook rice so it is not sticky?",
    "What can I use instead of eggs when baking a cake?",
    "How long should I rest a steak after cooking it?",
    "How do I make a simple tomato sauce?",
    "Why does bread dough need to rise?",
    "What is the best way to store fresh herbs?",
    "What should I pack for a week-long hiking trip?",
    "How can I avoid jet lag on a long flight?",
    "Is it better to exchange money before travelling or at the airport?",
    "What are good tips for travelling on a tight budget?",
    "How early should I arrive at the airport for an international flight?",
    "How do I reverse a list in Python?",
    "What is the difference between a process and a thread?",
    "How do I read a file line by line in Python?",
    "What does a database index do?",
    "Explain recursion with a simple example.",
    "What is the difference between git merge and git rebase?",
    "How can I make my laptop battery last longer?",
    "What is a good morning routine for productivity?",
    "How do I start learning to play the guitar?",
    "How much water should I drink every day?",
    "How do I write a polite email asking for a deadline extension?",
    "What is compound interest?",
    "How can I improve my sleep?",
    "What is the difference between a virus and a bacterium?",
    "Why do cats purr?",
    "How does a refrigerator keep food cold?",
    "What is machine learning in simple terms?",
    "How do I remove a coffee stain from a shirt?",
    "What are the main causes of inflation?",
    "How do I keep houseplants alive?",
    "What is the capital of Australia and why was it chosen?",
    "How do noise-cancelling headphones work?",
)

FILLERS = ("sure", "certainly", "of course", "here", "great question", "absolutely", "okay")
_WORD = re.compile(r"[a-z]{4,}")
_STOP = frozenset(
    "what which where when does with that this your from have should there their about "
    "best good make instead before after between difference simple explain".split()
)


def user_rating(prompt: str, answer: str) -> float:
    """The synthetic users' rating in [0, 1]: 0.5 one-line summary first, 0.2 under 80 words,
    0.15 a finished last sentence, 0.15 on topic (content words of the question reused)."""
    text = answer.strip()
    if not text:
        return 0.0
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    first, words = lines[0], len(text.split())
    first_words = len(first.split())
    filler = first.lower().lstrip("#*- ").startswith(FILLERS)
    if not filler and 4 <= first_words <= 15 and (len(lines) > 1 or words <= 15):
        summary = 1.0
    elif not filler and 4 <= first_words <= 25:
        summary = 0.4
    else:
        summary = 0.0
    brevity = 1.0 if words <= 80 else max(0.0, 1.0 - (words - 80) / 80)
    finished = 1.0 if text[-1] in ".!?)`" else 0.0
    wanted = set(_WORD.findall(prompt.lower())) - _STOP
    said = set(_WORD.findall(text.lower()))
    topical = min(1.0, len(wanted & said) / 2) if wanted else 1.0
    return round(0.5 * summary + 0.2 * brevity + 0.15 * finished + 0.15 * topical, 4)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def user_correction(answer: str) -> str:
    """How a user edits an answer into the shape they want: the first real sentence (at most
    12 words) as a summary line, then at most 50 more words, ending with a full stop."""
    sentences = [t for t in _SENTENCE.split(" ".join(answer.split())) if t]
    while len(sentences) > 1 and sentences[0].lower().startswith(FILLERS):
        sentences.pop(0)
    words = " ".join(sentences).split()
    if not words:
        return ""
    head = sentences[0].split() if sentences else words
    head = head[:12] if len(head) >= 4 else words[:12]
    rest = words[len(head) :][:50]
    summary = " ".join(head).rstrip(",;:") + ("" if head[-1][-1] in ".!?" else ".")
    body = " ".join(rest).rstrip(",;:")
    return summary + (f"\n{body}{'' if body[-1] in '.!?' else '.'}" if body else "")


def traffic_snapshot(
    prompts: Sequence[str],
    answers: Sequence[Sequence[str]],
    heldout_fraction: float = 0.25,
    min_score_gap: float = 0.1,
    pii_types: tuple[str, ...] | None = None,
) -> tuple[Snapshot, list[Interaction]]:
    """Logged interactions (answer k of prompt i by user k, rated by that user) -> snapshot.

    Prompts are logged in order, so the last `heldout_fraction` of them are held out whole.
    """
    interactions = []
    for i, (prompt, sampled) in enumerate(zip(prompts, answers, strict=True)):
        for k, answer in enumerate(sampled):
            request_id, ts, user = f"demo-{i:03d}-{k}", 1_000.0 + 10 * i + k, f"user-{k}"
            rating = user_rating(prompt, answer)
            feedback = [Feedback(
                feedback_id=f"fb-{request_id}", request_id=request_id, tenant="demo",
                kind="score", value=rating, user=user, ts=ts + 1,
            )]  # fmt: skip
            fixed = user_correction(answer) if k == 0 and rating < 0.6 else ""
            if fixed and user_rating(prompt, fixed) > rating:
                feedback.append(
                    Feedback(
                        feedback_id=f"fix-{request_id}",
                        request_id=request_id,
                        tenant="demo",
                        kind="correction",
                        value=0.0,
                        text=fixed,
                        user=user,
                        ts=ts + 2,
                    )
                )
            interactions.append(
                Interaction(
                    request_id=request_id,
                    tenant="demo",
                    ts=ts,
                    prompt=(Turn("user", prompt),),
                    response=answer,
                    feedback=tuple(feedback),
                    user=user,
                )
            )
    options = SnapshotOptions(
        heldout_fraction=heldout_fraction,
        min_score_gap=min_score_gap,
        max_share=1.0,
        pii_types=pii_types,  # () turns PII screening off (the random test model's word salad)
    )
    return build_snapshot(interactions, options), interactions


# Scripted pairs in the users' taste (`summary_pairs`): no model samples them.
TOPICS: tuple[str, ...] = (
    "a password reset", "a late refund", "a broken login page", "an invoice error",
    "a shipping delay", "a duplicate charge", "an expired card", "a missing order",
    "an API rate limit", "a slow dashboard", "a failed deploy", "a lost API key",
    "a plan upgrade", "a data export", "a webhook timeout", "a locked account",
    "a tax receipt", "a cancelled subscription", "an SSO setup", "a mobile app crash",
    "a CSV import", "a team invite", "a storage quota", "a currency change",
)  # fmt: skip
ASKS: tuple[str, ...] = (
    "How do I handle {t}?", "What should I do about {t}?", "Can you help me with {t}?",
    "Explain what to do after {t}.", "A customer reports {t}. Next steps?",
)  # fmt: skip
ACTIONS: tuple[str, ...] = (
    "check the account settings", "open a ticket with the order number",
    "retry after five minutes", "contact billing", "clear the cache and sign in again",
    "ask an admin to confirm", "verify the email on file",
)  # fmt: skip
RAMBLE: tuple[str, ...] = (
    "Well, there are a lot of things to think about here, honestly.",
    "It kind of depends on many factors that vary from case to case.",
    "People often run into this and there is no single answer for everyone.",
    "Let me go through some background first, because context matters a lot.",
    "Some teams do it one way and others another, and both can be fine.",
    "In my experience it is worth considering the history of the issue too.",
)  # fmt: skip


def summary_pairs(n: int, seed: int = 0, topics: Sequence[str] = TOPICS) -> list[PreferencePair]:
    """`n` (prompt, chosen, rejected) pairs, the same for the same arguments.

    Prompts walk the `topics` x `ASKS` grid in a seeded order (each once before any repeats);
    chosen: "Short answer: ..." on one line, then one short sentence (~25 words); rejected:
    a ~130-word ramble on one line that names the topic and the same two actions.
    """
    rng = random.Random(seed)
    grid = [(topic, ask) for topic in topics for ask in ASKS]
    rng.shuffle(grid)
    pairs = []
    for index in range(n):
        topic, ask = grid[index % len(grid)]
        a, b = rng.sample(ACTIONS, 2)
        chosen = f"Short answer: for {topic}, {a}.\nFirst {a}; if that fails, {b}."
        ramble = [*rng.sample(RAMBLE, 4), f"You could {a}, or maybe {b}.", *RAMBLE[:2]]
        rejected = " ".join(ramble) + f" Anyway, regarding {topic}, " + " ".join(ramble[:3])
        pairs.append(PreferencePair(ask.format(t=topic), chosen, rejected))
    return pairs
