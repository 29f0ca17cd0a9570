"""Content ids: of one example, and of a whole snapshot (its id and sha256)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from gateway.transcript import Prompt
from learner.datasets.examples import KINDS, Example, SnapshotOptions


def example_id(kind: str, prompt: Prompt, *content: object) -> str:
    """16 hex digits of a sha256 over the kind, the prompt's turns and the content."""
    body = json.dumps([kind, [[t.role, t.content] for t in prompt], *content], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def snapshot_digest(options: SnapshotOptions, kinds: Mapping[str, Sequence[Example]]) -> str:
    """A sha256 over the sorted (kind, example id, split) triples and the options."""
    members = sorted(f"{kind}/{e.id}/{e.split}" for kind in KINDS for e in kinds[kind])
    body = json.dumps({"options": options.to_dict(), "examples": members}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()
