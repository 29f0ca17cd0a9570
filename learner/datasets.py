"""Training data for the reward model, SFT and RL, built from what the gateway logged.

Two steps, so tests and jobs can feed interactions directly:

    interactions = await collect(store, request_ids)        # events + feedback, as text
    snapshot = build_snapshot(interactions, SnapshotOptions())
    path = write_snapshot(snapshot, Path(".flywheel/datasets"))  # <out>/<snapshot.id>/

`request_ids` may come from the learner's replay buffer (`replay_rewards(buffer)` maps
them to their rewards, which `collect` can carry along).

What a snapshot holds (each example has a content id and a `split`):
- `pairs`: preference pairs. A correction is chosen over the answer it corrects; a
  thumbs-up answer over a thumbs-down one, and a higher score over a lower one (by at
  least `min_score_gap`), for the same or a near-duplicate prompt of one tenant.
- `scored`: (prompt, response, reward in [0, 1]) for reward regression or KTO: thumbs
  (1/0), scores (mapped from `score_range`), a corrected answer (`corrected_reward`) and
  its correction (1).
- `sft`: prompt -> completion: corrections, and answers rated up (thumb, or score >=
  `sft_min_score`) that were not corrected.
- `prompts`: prompts for RL, labelled or not: the earliest of each near-duplicate group
  that ends with a user turn.

Every text is screened first (`learner.datasets_audit`): raw PII, harmful content and
prompt injection keep it out, as do quality limits; a failing prompt drops its whole
interaction. Prompts are grouped into near-duplicates (token-set Jaccard >=
`near_dup_threshold`, or the same `prompt_hash`); examples are deduplicated within a group
(exact by id, near by their texts). The split is by time: a prompt group first seen at or
after the cutoff (the newest `heldout_fraction` of interactions, or `heldout_since`) is
held out whole, so no prompt or near-duplicate of it is on both sides.

On disk (`write_snapshot`, `load_snapshot`): `<out>/<id>/manifest.json` (id, sha256,
options, counts by kind and split, source range, cutoff), `pairs.jsonl`, `scored.jsonl`,
`sft.jsonl`, `prompts.jsonl` (one example per line, both splits, each with its `split`
field; a prompt is a list of `{"role", "content"}`) and `audit.json`. The id is a sha256
over the sorted (kind, example id, split) triples and the options, so the same data and
options give the same id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from itertools import product
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.events import Feedback, InteractionEvent
from gateway.store.base import Store
from gateway.transcript import Prompt, Turn, prompt_text, render_prompt, render_response
from learner.datasets_audit import (
    Audit,
    Screener,
    near_duplicate_groups,
    normalize,
    quality_issue,
    skew,
    token_set,
)
from learner.replay import ReplayBuffer

FORMAT_VERSION = 1
KINDS = ("pairs", "scored", "sft", "prompts")
Split = Literal["train", "heldout"]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One logged request as text: its prompt turns, the answer, and its feedback.

    `prompt` is empty and `response` "" when the tenant did not log content. `reward` is
    the learner's reward from the replay buffer, if known; `flags` are the guard finding
    kinds the gateway recorded.
    """

    request_id: str
    tenant: str
    ts: float
    prompt: Prompt
    response: str
    feedback: tuple[Feedback, ...] = ()
    intent: str | None = None
    prompt_hash: str | None = None
    user: str | None = None
    reward: float | None = None
    flags: tuple[str, ...] = ()
    multimodal: bool = False


@dataclass(frozen=True, slots=True)
class PairExample:
    id: str
    split: Split
    prompt: Prompt
    chosen: str
    rejected: str
    source: Literal["correction", "thumbs", "score"]
    margin: float  # reward of chosen - reward of rejected
    tenant: str
    intent: str | None
    ts: float  # the later of the two interactions
    request_ids: tuple[str, str]  # (chosen's, rejected's); the same for a correction


@dataclass(frozen=True, slots=True)
class ScoredExample:
    id: str
    split: Split
    prompt: Prompt
    response: str
    reward: float
    source: Literal["thumbs", "score", "correction", "replay"]
    tenant: str
    intent: str | None
    ts: float
    request_id: str


@dataclass(frozen=True, slots=True)
class SFTExample:
    id: str
    split: Split
    prompt: Prompt
    completion: str
    source: Literal["correction", "thumbs", "score"]
    tenant: str
    intent: str | None
    ts: float
    request_id: str


@dataclass(frozen=True, slots=True)
class PromptExample:
    """A prompt for RL (the policy generates, the reward model scores): it ends with a user
    turn, one per near-duplicate group, labelled or not."""

    id: str
    split: Split
    prompt: Prompt
    tenant: str
    intent: str | None
    ts: float
    request_id: str


Example = PairExample | ScoredExample | SFTExample | PromptExample
E = TypeVar("E", PairExample, ScoredExample, SFTExample, PromptExample)


@dataclass(frozen=True, slots=True)
class SnapshotOptions:
    min_chars: int = 2
    max_prompt_chars: int = 16_000
    max_response_chars: int = 8_000
    min_text_ratio: float = 0.5  # letters and whitespace over all characters
    near_dup_threshold: float = 0.8
    min_score_gap: float = 0.3
    score_range: tuple[float, float] = (0.0, 1.0)  # the feedback API takes scores in [0, 1]
    sft_min_score: float = 0.8
    corrected_reward: float = 0.0
    max_pairs_per_prompt: int = 16
    include_replay_rewards: bool = False  # scored samples from the learner's reward alone
    heldout_fraction: float = 0.2
    heldout_since: float | None = None  # a fixed cutoff instead of the fraction
    max_share: float = 0.5  # skew warning above this share of one tenant or intent
    pii_types: tuple[str, ...] | None = None  # None: every type
    injection_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("near_dup_threshold", "sft_min_score", "min_text_ratio", "max_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError("heldout_fraction must be in [0, 1)")
        if self.score_range[0] >= self.score_range[1]:
            raise ValueError("score_range must be (low, high) with low < high")
        if self.max_pairs_per_prompt < 1 or self.min_chars < 0:
            raise ValueError("max_pairs_per_prompt must be >= 1 and min_chars >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotOptions:
        values = dict(data)
        values["score_range"] = tuple(values["score_range"])
        if values.get("pii_types") is not None:
            values["pii_types"] = tuple(values["pii_types"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SourceRange:
    """The interactions a snapshot was built from."""

    interactions: int
    first_ts: float | None
    last_ts: float | None
    first_request_id: str | None
    last_request_id: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    sha256: str
    options: SnapshotOptions
    pairs: tuple[PairExample, ...]
    scored: tuple[ScoredExample, ...]
    sft: tuple[SFTExample, ...]
    prompts: tuple[PromptExample, ...]
    audit: Audit
    source: SourceRange
    cutoff_ts: float | None  # interactions' prompt groups first seen at or after: held out

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            examples: tuple[Example, ...] = getattr(self, kind)
            out[kind] = {
                "train": sum(e.split == "train" for e in examples),
                "heldout": sum(e.split == "heldout" for e in examples),
            }
        return out


# --- from the store ----------------------------------------------------------------------


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
            feedback = await store.feedback_for(request_id)
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


# --- building ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Usable:
    """An interaction that passed screening, with what it can teach."""

    item: Interaction
    response: str | None  # None when the answer was kept out
    correction: str | None
    rating: tuple[Literal["thumbs", "score"], float] | None  # the latest thumb or score
    group: int = -1  # its prompt's near-duplicate group


def build_snapshot(
    interactions: Iterable[Interaction],
    options: SnapshotOptions | None = None,
    *,
    screener: Screener | None = None,
) -> Snapshot:
    """Screen, pair, deduplicate, split and audit; pure apart from the screener's cache."""
    options = options or SnapshotOptions()
    screener = screener or Screener(options.pii_types, options.injection_threshold)
    given = sorted(
        {i.request_id: i for i in interactions}.values(), key=lambda i: (i.ts, i.request_id)
    )
    audit = Audit(interactions=len(given))
    usable = [u for i in given if (u := _screen(i, options, screener, audit)) is not None]
    audit.usable = len(usable)
    keys = [token_set(_prompt_key(u.item.prompt)) for u in usable]
    hashes = [u.item.prompt_hash for u in usable]
    groups = near_duplicate_groups(keys, options.near_dup_threshold, hashes)
    usable = [replace(u, group=g) for u, g in zip(usable, groups, strict=True)]
    cutoff = _cutoff([u.item.ts for u in usable], options)
    first_seen: dict[int, float] = {}
    for u in usable:
        first_seen.setdefault(u.group, u.item.ts)  # usable is in time order
    heldout = {g for g, ts in first_seen.items() if cutoff is not None and ts >= cutoff}

    pairs = _dedup(_pairs(usable, options), options, audit, "pairs", heldout)
    scored = _dedup(_scored(usable, options), options, audit, "scored", heldout)
    sft = _dedup(_sft(usable, options), options, audit, "sft", heldout)
    prompts = _dedup(_prompts(usable), options, audit, "prompts", heldout)
    everything: list[Example] = [*pairs, *scored, *sft]
    kinds: dict[str, Sequence[Example]] = {
        "pairs": pairs, "scored": scored, "sft": sft, "prompts": prompts, "all": everything,
    }  # fmt: skip
    for kind, examples in kinds.items():
        audit.skew[kind] = {
            "tenant": skew((e.tenant for e in examples), "tenant", options.max_share),
            "intent": skew((e.intent for e in examples), "intent", options.max_share),
        }
        audit.warnings += [f"{kind}: {s.warning}" for s in audit.skew[kind].values() if s.warning]
    digest = _digest(options, kinds)
    source = SourceRange(
        len(given),
        given[0].ts if given else None,
        given[-1].ts if given else None,
        given[0].request_id if given else None,
        given[-1].request_id if given else None,
    )
    return Snapshot(
        digest[:16], digest, options, tuple(pairs), tuple(scored), tuple(sft), tuple(prompts),
        audit, source, cutoff,
    )  # fmt: skip


def _screen(
    item: Interaction, options: SnapshotOptions, screener: Screener, audit: Audit
) -> _Usable | None:
    if not item.prompt and not item.response:
        audit.drop("no_content", "prompt")
        return None
    if item.multimodal:
        audit.drop("multimodal", "prompt")
        return None
    if item.flags:
        audit.drop("injection", "prompt", item.flags[0])
        return None
    whole = "\n".join(t.content for t in item.prompt)
    issue = quality_issue(
        whole, options.min_chars, options.max_prompt_chars, options.min_text_ratio
    )
    if issue is not None:
        audit.drop(issue, "prompt")
        return None
    for turn in item.prompt:
        verdict = screener.check(turn.content, turn.role)
        if verdict is not None:
            audit.drop(verdict.reason, "prompt", verdict.detail)
            return None

    def clean(text: str | None, where: str, role: str) -> str | None:
        if text is None:
            return None
        issue = quality_issue(
            text, options.min_chars, options.max_response_chars, options.min_text_ratio
        )
        if issue is not None:
            audit.drop(issue, where)
            return None
        verdict = screener.check(text, role)
        if verdict is not None:
            audit.drop(verdict.reason, where, verdict.detail)
            return None
        return text.strip()

    feedback = sorted(item.feedback, key=lambda f: f.ts)  # the latest of each kind wins
    corrections = [f.text for f in feedback if f.kind == "correction" and f.text]
    correction = corrections[-1] if corrections else None
    rating: tuple[Literal["thumbs", "score"], float] | None = None
    for f in feedback:
        if f.kind == "thumbs":
            rating = ("thumbs", 1.0 if f.value > 0 else 0.0)
        elif f.kind == "score":
            low, high = options.score_range
            rating = ("score", min(1.0, max(0.0, (f.value - low) / (high - low))))
    replay = options.include_replay_rewards and item.reward is not None
    labelled = rating is not None or correction is not None or replay
    response = clean(item.response, "response", "assistant") if labelled else None
    return _Usable(item, response, clean(correction, "correction", "correction"), rating)


def _prompt_key(prompt: Prompt) -> str:
    """The text that says which prompt this is: a template's system turn is left out."""
    turns = [t.content for t in prompt if t.role not in ("system", "developer")]
    return "\n".join(turns or [t.content for t in prompt])


def _cutoff(times: Sequence[float], options: SnapshotOptions) -> float | None:
    if options.heldout_since is not None:
        return options.heldout_since
    held = int(len(times) * options.heldout_fraction + 1e-9)
    return sorted(times)[len(times) - held] if held else None


def _example_id(kind: str, prompt: Prompt, *content: object) -> str:
    body = json.dumps([kind, [[t.role, t.content] for t in prompt], *content], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _pairs(usable: Sequence[_Usable], options: SnapshotOptions) -> list[tuple[int, PairExample]]:
    out: list[tuple[int, PairExample]] = []

    def pair(
        a: _Usable, b: _Usable, chosen: str, rejected: str, source: Any, margin: float
    ) -> None:
        if normalize(chosen) == normalize(rejected):
            return
        margin = round(margin, 4)
        out.append((a.group, PairExample(
            _example_id("pair", a.item.prompt, chosen, rejected, margin), "train", a.item.prompt,
            chosen, rejected, source, margin, a.item.tenant, a.item.intent,
            max(a.item.ts, b.item.ts), (a.item.request_id, b.item.request_id),
        )))  # fmt: skip

    buckets: dict[tuple[str, int], list[_Usable]] = defaultdict(list)
    for u in usable:
        if u.correction is not None and u.response is not None:
            pair(u, u, u.correction, u.response, "correction", 1.0 - options.corrected_reward)
        if u.rating is not None and u.response is not None:
            buckets[(u.item.tenant, u.group)].append(u)
    cap = options.max_pairs_per_prompt
    for bucket in buckets.values():
        newest = sorted(bucket, key=lambda u: (-u.item.ts, u.item.request_id))
        ups = [u for u in newest if u.rating == ("thumbs", 1.0)][:cap]
        downs = [u for u in newest if u.rating == ("thumbs", 0.0)][:cap]
        ranked = sorted(product(range(len(ups)), range(len(downs))), key=lambda ij: (max(ij), ij))
        for i, j in ranked[:cap]:
            pair(ups[i], downs[j], str(ups[i].response), str(downs[j].response), "thumbs", 1.0)
        rated = [(u, u.rating[1]) for u in newest if u.rating and u.rating[0] == "score"]
        gaps = [
            (hi[1] - lo[1], hi[0], lo[0])
            for hi, lo in product(rated[: 2 * cap], rated[: 2 * cap])
            if hi[1] - lo[1] >= options.min_score_gap
        ]
        gaps.sort(key=lambda g: (-g[0], g[1].item.request_id, g[2].item.request_id))
        for gap, hi_u, lo_u in gaps[:cap]:
            pair(hi_u, lo_u, str(hi_u.response), str(lo_u.response), "score", gap)
    return out


def _scored(usable: Sequence[_Usable], options: SnapshotOptions) -> list[tuple[int, ScoredExample]]:
    out: list[tuple[int, ScoredExample]] = []
    for u in usable:
        i = u.item
        samples: list[tuple[str, float, Any]] = []
        if u.response is not None:
            if u.rating is not None:
                samples.append((u.response, u.rating[1], u.rating[0]))
            elif u.correction is not None:
                samples.append((u.response, options.corrected_reward, "correction"))
            elif options.include_replay_rewards and i.reward is not None:
                samples.append((u.response, i.reward, "replay"))
        if u.correction is not None:
            samples.append((u.correction, 1.0, "correction"))
        for text, reward, source in samples:
            reward = round(min(1.0, max(0.0, reward)), 4)
            example_id = _example_id("scored", i.prompt, text, reward)
            out.append((u.group, ScoredExample(
                example_id, "train", i.prompt, text, reward, source, i.tenant, i.intent, i.ts,
                i.request_id,
            )))  # fmt: skip
    return out


def _sft(usable: Sequence[_Usable], options: SnapshotOptions) -> list[tuple[int, SFTExample]]:
    out: list[tuple[int, SFTExample]] = []
    for u in usable:
        i = u.item
        text: str | None = None
        source: Any = "correction"
        if u.correction is not None:
            text = u.correction
        elif u.response is not None and u.rating is not None:
            kind, value = u.rating
            if (kind == "thumbs" and value == 1.0) or (
                kind == "score" and value >= options.sft_min_score
            ):
                text, source = u.response, kind
        if text is not None:
            out.append((u.group, SFTExample(
                _example_id("sft", i.prompt, text), "train", i.prompt, text, source, i.tenant,
                i.intent, i.ts, i.request_id,
            )))  # fmt: skip
    return out


def _prompts(usable: Sequence[_Usable]) -> list[tuple[int, PromptExample]]:
    out: list[tuple[int, PromptExample]] = []
    taken: set[int] = set()
    for u in usable:  # in time order: a group's earliest prompt that ends with a user turn
        i = u.item
        if u.group in taken or i.prompt[-1].role != "user":
            continue
        taken.add(u.group)
        out.append((u.group, PromptExample(
            _example_id("prompt", i.prompt), "train", i.prompt, i.tenant, i.intent, i.ts,
            i.request_id,
        )))  # fmt: skip
    return out


def _dedup(
    candidates: Sequence[tuple[int, E]],
    options: SnapshotOptions,
    audit: Audit,
    kind: str,
    heldout: set[int],
) -> list[E]:
    """Exact (same id) then near duplicates (same prompt group, near-duplicate texts) out;
    the earliest stays. Each kept example gets its prompt group's split."""
    seen: set[str] = set()
    exact = near = 0
    buckets: dict[tuple[int, float], list[E]] = defaultdict(list)
    for group, example in sorted(candidates, key=lambda c: (c[1].ts, c[1].id)):
        if example.id in seen:
            exact += 1
            continue
        seen.add(example.id)
        reward = example.reward if isinstance(example, ScoredExample) else 0.0
        buckets[(group, reward)].append(example)
    kept: list[E] = []
    for (group, _), bucket in buckets.items():
        split: Split = "heldout" if group in heldout else "train"
        texts = [_content_tokens(e) for e in bucket]
        clusters = near_duplicate_groups(texts, options.near_dup_threshold)
        for index, (example, cluster) in enumerate(zip(bucket, clusters, strict=True)):
            if cluster != index:  # a group is numbered by its first (earliest) member
                near += 1
            else:
                kept.append(replace(example, split=split))
    audit.duplicates[kind] = {"exact": exact, "near": near}
    return sorted(kept, key=lambda e: (e.ts, e.id))


def _content_tokens(example: Example) -> frozenset[str]:
    if isinstance(example, PairExample):
        chosen = {f"+{t}" for t in token_set(example.chosen)}
        return frozenset(chosen | {f"-{t}" for t in token_set(example.rejected)})
    if isinstance(example, ScoredExample):
        return token_set(example.response)
    if isinstance(example, SFTExample):
        return token_set(example.completion)
    return token_set(prompt_text(example.prompt))


def _digest(options: SnapshotOptions, kinds: Mapping[str, Sequence[Example]]) -> str:
    members = sorted(f"{kind}/{e.id}/{e.split}" for kind in KINDS for e in kinds[kind])
    body = json.dumps({"options": options.to_dict(), "examples": members}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


# --- on disk -----------------------------------------------------------------------------

MANIFEST = "manifest.json"
AUDIT = "audit.json"


def write_snapshot(snapshot: Snapshot, out_dir: Path) -> Path:
    """Write `<out_dir>/<snapshot.id>/` (complete or not at all); return that directory.
    A snapshot already there is left as it is: the same id is the same content."""
    target = out_dir / snapshot.id
    if (target / MANIFEST).exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f".{snapshot.id}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # an earlier write that never finished
    partial.mkdir()
    for kind in KINDS:
        examples: Sequence[Example] = getattr(snapshot, kind)
        with (partial / f"{kind}.jsonl").open("w", encoding="utf-8") as out:
            for example in examples:
                out.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
    (partial / AUDIT).write_text(json.dumps(snapshot.audit.to_dict(), indent=2) + "\n")
    manifest = {
        "format": FORMAT_VERSION,
        "id": snapshot.id,
        "sha256": snapshot.sha256,
        "options": snapshot.options.to_dict(),
        "counts": snapshot.counts(),
        "source": asdict(snapshot.source),
        "cutoff_ts": snapshot.cutoff_ts,
        "files": {kind: f"{kind}.jsonl" for kind in KINDS} | {"audit": AUDIT},
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, target)
    return target


def load_snapshot(directory: Path) -> Snapshot:
    """Read a written snapshot; ValueError if its examples do not match its manifest's id."""
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{directory}: unknown snapshot format {manifest.get('format')!r}")
    options = SnapshotOptions.from_dict(manifest["options"])
    pairs = [_example(PairExample, row) for row in _rows(directory / "pairs.jsonl")]
    scored = [_example(ScoredExample, row) for row in _rows(directory / "scored.jsonl")]
    sft = [_example(SFTExample, row) for row in _rows(directory / "sft.jsonl")]
    prompts = [_example(PromptExample, row) for row in _rows(directory / "prompts.jsonl")]
    kinds: dict[str, Sequence[Example]] = {
        "pairs": pairs, "scored": scored, "sft": sft, "prompts": prompts,
    }  # fmt: skip
    digest = _digest(options, kinds)
    if digest != manifest["sha256"]:
        raise ValueError(f"{directory}: the examples do not match the manifest's id")
    audit = Audit.from_dict(json.loads((directory / AUDIT).read_text()))
    return Snapshot(
        manifest["id"], digest, options, tuple(pairs), tuple(scored), tuple(sft),
        tuple(prompts), audit, SourceRange(**manifest["source"]), manifest["cutoff_ts"],
    )  # fmt: skip


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _example(cls: type[E], row: dict[str, Any]) -> E:
    values = {f.name: row[f.name] for f in fields(cls)}
    values["prompt"] = tuple(Turn(t["role"], t["content"]) for t in row["prompt"])
    if "request_ids" in values:
        values["request_ids"] = tuple(values["request_ids"])
    return cls(**values)
