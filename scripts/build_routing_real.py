#!/usr/bin/env python3
"""Build a per-prompt LLM-routing outcome subset from public GitHub snapshots.

Provenance of benchmarks/data/routing_real/outcomes.jsonl.gz: that file is this script's
output (`--no-routerbench`, seed 0, --mmlupro-n 3500) keeping only the Apache-2.0 sources
(`source` zeroeval and mmlu-pro); the RouterBench rows carry no licence and are not shipped.

Output: subset.jsonl.gz, one JSON object per prompt:
  {"id", "source", "dataset", "family", "prompt",
   "outcomes": {model: quality in [0,1]},
   "cost": {model: USD for that prompt},
   "cost_kind": "measured" | "estimated",
   "tokens": {model: [input_tokens, output_tokens]}   (estimated sources only)}

Sources (bare git mirrors made by the `fetch` tool; read with `git show COMMIT:PATH`):
  A. routerbench  - RouterBench 0-shot rows (withmartian/routerbench, HF) as re-shared in
                    shuhao02/RouterDC datasets/routerbench_zs/*.csv  (ARC-Challenge, Winogrande,
                    MBPP; the GSM8K/MMLU/HellaSwag CSVs are >4 MiB and absent from the snapshot).
                    11 models, per-prompt correctness and measured per-prompt USD cost.
  B. zeroeval     - yuchenlin/ZeroEval result_dirs/{gsm,math-l5,crux}/<model>.json (raw model
                    outputs, greedy, zero-shot CoT-in-JSON). Correctness is recomputed here with a
                    re-implementation of ZeroEval's own parser (checked against its summary files).
                    Cost = estimated tokens (chars/4) x public list prices (PRICES below).
  C. mmlu-pro     - TIGER-AI-Lab/MMLU-Pro eval_results/model_outputs_<model>_5shots.zip
                    (per-question `pred` vs `answer`). Cost estimated as for B, on the zero-shot
                    prompt text packaged here plus the model's generated text.

Only the standard library is needed.  Usage:
  python3 build_subset.py [--out subset.jsonl.gz] [--mmlupro-n 3500] [--seed 0] [--no-routerbench]
"""
import argparse
import ast
import collections
import csv
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import warnings
import zipfile

warnings.filterwarnings("ignore", category=SyntaxWarning)

HERE = os.path.dirname(os.path.abspath(__file__))
MIRROR = os.environ.get("MIRROR_ROOT", "/work/.mirror")

ROUTERDC = (f"{MIRROR}/shuhao02+RouterDC/repo", "0e63989c5bf4363330b8a4616386e3f7f116d9f8")
ZEROEVAL = (f"{MIRROR}/yuchenlin+ZeroEval/repo", "570c6269a2e4930ee06a17e713fece1ba52cf1dd")
MMLUPRO = (f"{MIRROR}/TIGER-AI-Lab+MMLU-Pro/repo", "f418b116db00b065c2aea046518d8fcf74d39872")

# ---------------------------------------------------------------- prices (USD / 1M tokens)
# Public list prices (in, out) as of late 2024; used only for the *estimated* sources B and C.
PRICES = {
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "claude-3-5-sonnet-20240620": (3.00, 15.00),
    "claude-3-haiku-20240307": (0.25, 1.25),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "llama-3.1-70b-instruct": (0.88, 0.88),   # Together "Turbo" serverless price
    "llama-3.1-8b-instruct": (0.18, 0.18),
    "mixtral-8x7b-instruct": (0.60, 0.60),
}

# canonical name -> ZeroEval file stem
ZE_MODELS = {
    "gpt-4o-2024-08-06": "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini-2024-07-18",
    "claude-3-5-sonnet-20240620": "claude-3-5-sonnet-20240620",
    "claude-3-haiku-20240307": "claude-3-haiku-20240307",
    "gemini-1.5-pro": "gemini-1.5-pro",
    "gemini-1.5-flash": "gemini-1.5-flash",
    "llama-3.1-70b-instruct": "Meta-Llama-3.1-70B-Instruct",
    "llama-3.1-8b-instruct": "Meta-Llama-3.1-8B-Instruct",
    "mixtral-8x7b-instruct": "Mixtral-8x7B-Instruct-v0.1",
}
# canonical name -> MMLU-Pro zip stem (gemini entries are the -002 revisions)
MP_MODELS = {
    "gemini-1.5-pro": "gemini-1.5-pro-002",
    "gemini-1.5-flash": "gemini-1.5-flash-002",
    "llama-3.1-70b-instruct": "Meta-Llama-3_1-70B-Instruct",
    "llama-3.1-8b-instruct": "Meta-Llama-3_1-8B-Instruct",
    "mixtral-8x7b-instruct": "Mixtral-8x7B-Instruct-v0.1",
}
ZE_DATASETS = {"gsm": ("gsm8k", "math"), "math-l5": ("math-l5", "math"), "crux": ("cruxeval-o", "code")}
RB_FILES = {"arc_challenge": "commonsense", "winograde": "commonsense", "mbpp": "code"}
RB_DATASET_NAME = {"arc_challenge": "arc-challenge", "winograde": "winogrande", "mbpp": "mbpp"}

# natural strong/weak pairs used for the stats printout
PAIRS = {
    "routerbench": [("gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"),
                    ("gpt-4-1106-preview", "gpt-3.5-turbo-1106")],
    "zeroeval": [("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"),
                 ("gemini-1.5-pro", "gemini-1.5-flash"),
                 ("llama-3.1-70b-instruct", "llama-3.1-8b-instruct")],
    "mmlu-pro": [("gemini-1.5-pro", "gemini-1.5-flash"),
                 ("llama-3.1-70b-instruct", "llama-3.1-8b-instruct")],
}


def git_blob(mirror, path):
    gitdir, commit = mirror
    return subprocess.run(["git", "--git-dir", gitdir, "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout


def ntok(text):
    """Rough token estimate (~4 characters per token)."""
    return max(1, round(len(text) / 4))


# ---------------------------------------------------------------- A. RouterBench (via RouterDC)
def load_routerbench():
    csv.field_size_limit(sys.maxsize)
    rows = {}
    for stem, family in RB_FILES.items():
        for split in ("train", "test"):
            raw = git_blob(ROUTERDC, f"datasets/routerbench_zs/{stem}_{split}.csv").decode("utf-8")
            reader = csv.DictReader(io.StringIO(raw))
            for r in reader:
                sid = r["sample_id"]
                if sid in rows:
                    continue
                try:
                    parts = ast.literal_eval(r["prompt"])
                    prompt = "\n".join(parts) if isinstance(parts, list) else str(parts)
                except (ValueError, SyntaxError):
                    prompt = r["prompt"]
                models = [c for c in r if c not in ("", "sample_id", "prompt", "eval_name",
                                                    "oracle_model_to_route_to", "cluster_id")
                          and "|" not in c]
                if any(r[m] == "" or r[f"{m}|total_cost"] == "" for m in models):
                    continue  # a few ARC rows lack a label for some model: keep complete rows only
                outcomes = {m: float(r[m]) for m in models}
                cost = {m: float(r[f"{m}|total_cost"]) for m in models}
                rows[sid] = {"id": f"routerbench/{sid}", "source": "routerbench",
                             "dataset": RB_DATASET_NAME[stem], "family": family,
                             "prompt": prompt.strip(), "outcomes": outcomes, "cost": cost,
                             "cost_kind": "measured"}
    return list(rows.values())


# ---------------------------------------------------------------- B. ZeroEval (re-scored)
def _first_complete_json(s):
    stack, start = [], None
    for i, ch in enumerate(s):
        if ch == "{":
            stack.append(i)
            if start is None:
                start = i
        elif ch == "}" and stack:
            stack.pop()
            if not stack:
                try:
                    return json.loads(s[start:i + 1].replace("\n", ""))
                except json.JSONDecodeError:
                    return None
    return None


def _values_from_json(s, keys=("reasoning", "answer")):
    out = {}
    for key in keys:
        m = re.search(f'"{key}"\\s*:\\s*"([^"]*?)"', s) or \
            re.search(f'"{key}"\\s*:\\s*"(.*?)"', s, re.DOTALL)
        if not m:
            m = re.search(f'"{key}"\\s*:\\s*([^,\\s]*)', s) or re.search(f'{key}\\s*:\\s*([^,\\s]*)', s)
        if m:
            out[key] = m.group(1)
    return out


def _extract_answer(stem, text):
    pj = _first_complete_json(text)
    if pj is None or not isinstance(pj, dict) or "answer" not in pj:
        pj = _values_from_json(text)
    if "answer" not in pj and "Llama-3.1" in stem and "boxed" in text[-30:]:
        m = re.search(r'\\boxed{([\w\d]+)}', text)
        if m:
            return m.group(1)
    return pj.get("answer") if isinstance(pj, dict) else None


def _sanitize_math(a):
    a = a.replace("$", "").strip().replace(",", "")
    if "/" in a:
        try:
            a = str(float(eval(a, {"__builtins__": {}}, {})))  # same as ZeroEval (fractions)
        except Exception:
            pass
    return a


def score_zeroeval(task, stem, item):
    ans = _extract_answer(stem, item["output"][0])
    if ans is None:
        return 0.0
    if task in ("gsm", "math-l5"):
        ma = _sanitize_math(str(ans))
        ca = _sanitize_math(item["answer"].replace("#", "").strip())
        x = re.search(r"-?\d+(\.\d+)?", ma)
        y = re.search(r"-?\d+(\.\d+)?", ca)
        return float(bool(x and y and float(x.group()) == float(y.group())))
    ma = str(ans).strip("'\"").replace("\n", "\\n")
    ca = str(item["answer"]).strip("'\"")
    return float(ma == ca)  # crux: exact string match, as in ZeroEval


def load_zeroeval():
    recs = []
    for task, (dname, family) in ZE_DATASETS.items():
        per_id = collections.OrderedDict()
        for canon, stem in ZE_MODELS.items():
            try:
                data = json.loads(git_blob(ZEROEVAL, f"result_dirs/{task}/{stem}.json"))
            except subprocess.CalledProcessError:
                continue  # model not run on this task
            pin, pout = PRICES[canon]
            for it in data:
                qid = str(it["id"])
                q = it.get("question") or it.get("problem")
                r = per_id.setdefault(qid, {"id": f"zeroeval/{task}/{qid}", "source": "zeroeval",
                                            "dataset": dname, "family": family, "prompt": q.strip(),
                                            "outcomes": {}, "cost": {}, "tokens": {},
                                            "cost_kind": "estimated"})
                sent = it["chat_history"][0] if it.get("chat_history") else q
                ti, to = ntok(sent), ntok(it["output"][0] or "")
                r["outcomes"][canon] = score_zeroeval(task, stem, it)
                r["tokens"][canon] = [ti, to]
                r["cost"][canon] = round((ti * pin + to * pout) / 1e6, 8)
        recs.extend(per_id.values())
    return recs


# ---------------------------------------------------------------- C. MMLU-Pro
def _mmlupro_prompt(q, options):
    letters = "ABCDEFGHIJ"
    opts = ast.literal_eval(options) if isinstance(options, str) else options
    return q.strip() + "\n" + "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(opts))


def load_mmlupro(n, seed):
    per_id = {}
    for canon, stem in MP_MODELS.items():
        z = zipfile.ZipFile(io.BytesIO(git_blob(MMLUPRO, f"eval_results/model_outputs_{stem}_5shots.zip")))
        data = json.loads(z.read(z.namelist()[0]))
        pin, pout = PRICES[canon]
        for it in data:
            qid = str(it["question_id"])
            r = per_id.setdefault(qid, {"id": f"mmlu-pro/{qid}", "source": "mmlu-pro",
                                        "dataset": "mmlu-pro/" + it["category"], "family": "knowledge",
                                        "prompt": _mmlupro_prompt(it["question"], it["options"]),
                                        "outcomes": {}, "cost": {}, "tokens": {},
                                        "cost_kind": "estimated"})
            gen = it.get("model_outputs") or it.get("generated_text") or ""
            ti, to = ntok(r["prompt"]), ntok(gen)
            r["outcomes"][canon] = float(it["pred"] is not None and it["pred"] == it["answer"])
            r["tokens"][canon] = [ti, to]
            r["cost"][canon] = round((ti * pin + to * pout) / 1e6, 8)
    # keep only questions answered by every model (the gemini files miss a few ids), then sample
    full = [r for r in per_id.values() if len(r["outcomes"]) == len(MP_MODELS)]
    full.sort(key=lambda r: int(r["id"].split("/")[-1]))
    rng = random.Random(seed)
    return full if n <= 0 or n >= len(full) else sorted(rng.sample(full, n), key=lambda r: r["id"])


# ---------------------------------------------------------------- stats
def print_stats(recs, out=sys.stdout):
    by = collections.defaultdict(list)
    for r in recs:
        by[(r["source"], r["family"], r["dataset"].split("/")[0])].append(r)
    for (src, fam, ds), rs in sorted(by.items()):
        models = sorted({m for r in rs for m in r["outcomes"]})
        print(f"\n== source={src} family={fam} dataset={ds} n={len(rs)}", file=out)
        for m in models:
            vals = [r["outcomes"][m] for r in rs if m in r["outcomes"]]
            cost = [r["cost"][m] for r in rs if m in r["cost"]]
            print(f"   {m:40s} n={len(vals):5d} acc={sum(vals)/len(vals):.3f} "
                  f"mean_cost=${sum(cost)/len(cost):.6f}", file=out)
        for s, w in PAIRS.get(src, []):
            both = [r for r in rs if s in r["outcomes"] and w in r["outcomes"]]
            if not both:
                continue
            ws = sum(r["outcomes"][w] >= 0.5 > r["outcomes"][s] for r in both) / len(both)
            sw = sum(r["outcomes"][s] >= 0.5 > r["outcomes"][w] for r in both) / len(both)
            bothok = sum(r["outcomes"][s] >= 0.5 and r["outcomes"][w] >= 0.5 for r in both) / len(both)
            cs = sum(r["cost"][s] for r in both) / len(both)
            cw = sum(r["cost"][w] for r in both) / len(both)
            print(f"   pair strong={s} weak={w}: weak_right&strong_wrong={ws:.3f} "
                  f"strong_right&weak_wrong={sw:.3f} both_right={bothok:.3f} "
                  f"oracle_acc={bothok+ws+sw:.3f} cost_ratio={cs/max(cw,1e-12):.1f}x", file=out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "subset.jsonl.gz"))
    ap.add_argument("--mmlupro-n", type=int, default=3500, help="MMLU-Pro questions to keep (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-routerbench", action="store_true",
                    help="drop source A (RouterBench rows carry no explicit licence)")
    args = ap.parse_args()

    recs = []
    if not args.no_routerbench:
        recs += load_routerbench()
    recs += load_zeroeval()
    recs += load_mmlupro(args.mmlupro_n, args.seed)

    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(recs)} prompts to {args.out} ({os.path.getsize(args.out)/1e6:.2f} MB)")
    fams = collections.Counter(r["family"] for r in recs)
    srcs = collections.Counter(r["source"] for r in recs)
    print("per family:", dict(fams), " per source:", dict(srcs))
    print_stats(recs)


if __name__ == "__main__":
    main()
