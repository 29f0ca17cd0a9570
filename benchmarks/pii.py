"""`flywheel bench pii [--json]`: PII detector accuracy and latency, ours beside Presidio.

Scores precision, recall and F1 per entity type on gateway/pii/data/eval.jsonl (exact span
match and overlap match), and latency per 2 KB prompt (p50/p99) for the structured finders
alone, for all finders, and for Presidio's AnalyzerEngine. Presidio runs in its own
virtualenv (benchmarks/.venv-presidio, created on first use) through a small driver script
that writes its findings as JSON; if it cannot be set up the report says why and goes on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gateway.pii import STRUCTURED_TYPES, PIIDetector

VENV = Path(__file__).resolve().parent / ".venv-presidio"
TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET",
         "DATE_OF_BIRTH", "PERSON", "STREET_ADDRESS"]  # fmt: skip
PRESIDIO_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                "US_SSN": "US_SSN", "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP_ADDRESS",
                "PERSON": "PERSON", "LOCATION": "STREET_ADDRESS",  # LOCATION is broader
                "DATE_TIME": "DATE_OF_BIRTH"}  # every date, not only birth dates  # fmt: skip
Span = dict[str, Any]

DRIVER = r"""
import json, sys, time
import spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine
job = json.load(open(sys.argv[1]))
name = next((m for m in ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
             if spacy.util.is_package(m)), None)
engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": name or "blank:en"}])
engine.nlp = {"en": spacy.load(name) if name else spacy.blank("en")}
analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
found = [[{"type": r.entity_type, "start": r.start, "end": r.end, "score": r.score}
          for r in analyzer.analyze(text=t, language="en")] for t in job["texts"]]
for p in job["prompts"][:5]:
    analyzer.analyze(text=p, language="en")
lat = []
for p in job["prompts"]:
    t0 = time.perf_counter(); analyzer.analyze(text=p, language="en")
    lat.append((time.perf_counter() - t0) * 1000)
json.dump({"findings": found, "latency_ms": lat,
           "nlp": name or "blank:en (no spaCy NER model installable)"}, open(sys.argv[2], "w"))
"""


def load_rows() -> list[dict[str, Any]]:
    raw = resources.files("gateway.pii").joinpath("data", "eval.jsonl").read_text("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def score(rows: Sequence[dict[str, Any]], predictions: Sequence[Sequence[Span]],
          overlap: bool) -> dict[str, dict[str, float]]:  # fmt: skip
    """Per-type tp/fp/fn, precision, recall, F1; one prediction matches at most one label."""
    counts = {t: [0, 0, 0] for t in TYPES}
    for row, preds in zip(rows, predictions, strict=True):
        gold = [dict(g, used=False) for g in row["entities"]]
        for p in preds:
            if p["type"] not in counts:
                continue
            hit = next((g for g in gold if not g["used"] and g["type"] == p["type"] and (
                (p["start"] < g["end"] and g["start"] < p["end"]) if overlap
                else (p["start"], p["end"]) == (g["start"], g["end"]))), None)  # fmt: skip
            if hit is None:
                counts[p["type"]][1] += 1
            else:
                hit["used"] = True
                counts[p["type"]][0] += 1
        for g in gold:
            if not g["used"] and g["type"] in counts:
                counts[g["type"]][2] += 1
    out: dict[str, dict[str, float]] = {}
    for kind, (tp, fp, fn) in counts.items():
        prec = tp / (tp + fp) if tp + fp else 1.0
        rec = tp / (tp + fn) if tp + fn else 1.0
        out[kind] = {"tp": tp, "fp": fp, "fn": fn, "precision": prec, "recall": rec,
                     "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}  # fmt: skip
    return out


def prompts_2kb(rows: Sequence[dict[str, Any]], count: int = 300) -> list[str]:
    texts = [str(r["text"]) for r in rows]
    out: list[str] = []
    i = 0
    while len(out) < count:
        chunk = ""
        while len(chunk) < 2048:
            chunk += texts[i % len(texts)] + "\n"
            i += 1
        out.append(chunk[:2048])
    return out


def latency(detector: PIIDetector, prompts: Sequence[str], label: str) -> list[float]:
    for p in prompts[:20]:
        detector.detect(p)
    out = []
    for p in tqdm(prompts, desc=f"latency {label}", file=sys.stderr, leave=False):
        t0 = time.perf_counter()
        detector.detect(p)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_presidio(texts: list[str], prompts: list[str]) -> dict[str, Any]:
    """Findings and latency from Presidio in its own venv; {"error": why} if unavailable."""
    python = VENV / "bin" / "python"
    try:
        if not python.exists():
            print("presidio: creating benchmarks/.venv-presidio (first use)", file=sys.stderr)
            venv.create(VENV, with_pip=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "presidio-analyzer"],
                           check=True, timeout=900)  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            job, out, script = Path(tmp, "job.json"), Path(tmp, "out.json"), Path(tmp, "d.py")
            job.write_text(json.dumps({"texts": texts, "prompts": prompts}))
            script.write_text(DRIVER)
            print("presidio: analysing (in its own venv)...", file=sys.stderr)
            proc = subprocess.run([str(python), str(script), str(job), str(out)],
                                  capture_output=True, text=True, timeout=1800)  # fmt: skip
            if proc.returncode:
                return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
            result: dict[str, Any] = json.loads(out.read_text())
            return result
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _table(ours: dict[str, dict[str, float]], ref: dict[str, dict[str, float]] | None,
           title: str) -> str:  # fmt: skip
    head = f"{'type':<15}{'ours P':>8}{'R':>7}{'F1':>7}   {'presidio P':>10}{'R':>7}{'F1':>7}"
    lines = [title, head]
    for kind in TYPES:
        o = ours[kind]
        row = f"{kind:<15}{o['precision']:>8.3f}{o['recall']:>7.3f}{o['f1']:>7.3f}   "
        r = ref.get(kind) if ref else None
        row += f"{r['precision']:>10.3f}{r['recall']:>7.3f}{r['f1']:>7.3f}" if r else f"{'n/a':>10}"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flywheel bench pii", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--no-presidio", action="store_true", help="skip the reference run")
    args = parser.parse_args(argv)
    rows = load_rows()
    texts = [str(r["text"]) for r in rows]
    full = PIIDetector()
    preds = [[{"type": e.type, "start": e.start, "end": e.end} for e in full.detect(t)]
             for t in tqdm(texts, desc="ours", file=sys.stderr, leave=False)]  # fmt: skip
    report: dict[str, Any] = {
        "texts": len(rows), "hard_negatives": sum(1 for r in rows if not r["entities"]),
        "ours": {"exact": score(rows, preds, False), "overlap": score(rows, preds, True)},
    }  # fmt: skip
    prompts = prompts_2kb(rows)
    lat = {"structured": latency(PIIDetector(set(STRUCTURED_TYPES)), prompts, "structured"),
           "all": latency(full, prompts, "all")}  # fmt: skip
    ref: dict[str, Any] = {} if args.no_presidio else run_presidio(texts, prompts)
    if "findings" in ref:
        mapped = [[dict(f, type=PRESIDIO_MAP[f["type"]]) for f in found
                   if f["type"] in PRESIDIO_MAP] for found in ref["findings"]]  # fmt: skip
        report["presidio"] = {"nlp": ref["nlp"], "exact": score(rows, mapped, False),
                              "overlap": score(rows, mapped, True)}  # fmt: skip
        report["presidio"]["exact"].pop("SECRET")  # Presidio has no secrets recognizer
        report["presidio"]["overlap"].pop("SECRET")
        lat["presidio"] = ref["latency_ms"]
    else:
        report["presidio"] = {"error": ref.get("error", "skipped (--no-presidio)")}
    report["latency_ms_per_2kb"] = {
        k: {"p50": pct(v, 0.5), "p99": pct(v, 0.99), "n": len(v)} for k, v in lat.items()
    }
    print(f"PII eval: {report['texts']} texts, {report['hard_negatives']} hard negatives")
    pres = report["presidio"]
    if "error" in pres:
        print(f"presidio: unavailable ({pres['error']})")
    else:
        print(
            f"presidio: AnalyzerEngine, spaCy NLP = {pres['nlp']}; LOCATION scored as "
            "STREET_ADDRESS, DATE_TIME as DATE_OF_BIRTH"
        )
    for mode in ("exact", "overlap"):
        print()
        print(_table(report["ours"][mode], pres.get(mode), f"{mode} span match"))
    print("\nlatency per 2 KB prompt (ms)")
    for k, v in report["latency_ms_per_2kb"].items():
        print(f"  {k:<11} p50 {v['p50']:8.3f}   p99 {v['p99']:8.3f}   (n={v['n']})")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
