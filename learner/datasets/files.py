"""A snapshot on disk: `write_snapshot` and `load_snapshot`.

`<out>/<id>/manifest.json` (format, id, sha256, options, counts by kind and split, source
range, cutoff), one `<kind>.jsonl` per kind (both splits, each example with its `split`)
and `audit.json`. A snapshot is written complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from gateway.transcript import Turn
from learner.datasets.audit import Audit
from learner.datasets.examples import (
    KINDS,
    E,
    Example,
    PairExample,
    PromptExample,
    ScoredExample,
    SFTExample,
    Snapshot,
    SnapshotOptions,
    SourceRange,
)
from learner.datasets.ids import snapshot_digest

FORMAT_VERSION = 1
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
    digest = snapshot_digest(options, kinds)
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
