"""A transparent complexity score for a request: weighted features squashed into [0, 1].

Every feature is a saturating function of *counts* in the last user turn (plus the
request's own fields), so appending an ask, a constraint or code can only raise it.
Counting works on one lower-cased word scan plus `str.count` (tens of microseconds for
a 200-token prompt; word-alternation regexes were 10x slower):

| feature     | measured as                                             | saturates at | weight |
|-------------|---------------------------------------------------------|--------------|--------|
| length      | approx tokens = chars / 4, log-scaled                   | 2,000 tokens | 0.60   |
| code        | 3 x fenced blocks + code-like lines + code symbols / 2  | 12 signals   | 0.45   |
| math        | LaTeX commands, `=`, `^`, number-op-number, math terms  | 8 signals    | 0.35   |
| asks        | `?` + imperative verbs at a clause start + list items   | 4 (1 free)   | 0.70   |
| constraints | must / at least / exactly / without / N words / formats | 6            | 0.60   |
| depth       | non-system turns in the conversation                    | 13 turns     | 0.25   |
| output      | max(max tokens asked, log-scaled; "detailed", N words)  | 16k tokens   | 0.30   |
| tools       | the request declares tools                              | -            | 0.15   |
| media       | an image or audio part                                  | -            | 0.15   |

score = 1 - exp(-sum(weight x feature)), so no single feature can push a request to
"high" on its own and several moderate ones add up. Tiers: low < 0.35 <= medium < 0.65
<= high. Weights were set by hand against the labelled examples in tests/test_classify.py.
"""

from __future__ import annotations

import math
import re

from gateway.classify.types import RequestView, Tier

WEIGHTS: dict[str, float] = {
    "length": 0.60,
    "code": 0.45,
    "math": 0.35,
    "asks": 0.70,
    "constraints": 0.60,
    "depth": 0.25,
    "output": 0.30,
    "tools": 0.15,
    "media": 0.15,
}
MEDIUM_AT = 0.35
HIGH_AT = 0.65

_TOKEN = re.compile(r"[a-z0-9']+|[.!?;:\n]")
_ENUMERATION = re.compile(r"^[ \t]*(?:\d+[.)]|[-*•])[ \t]+\S", re.MULTILINE)
_NUM_OP_NUM = re.compile("\\d\\s*[-+*/^\u00d7\u00f7]\\s*\\d")
_LATEX = re.compile(r"\\[a-zA-Z]+")
_CODE_SYMBOLS = ("=>", "->", "::", "==", "!=", "&&", "||", "()", "`", "[]", "{}")
_CODE_PREFIXES = (
    "def ",
    "class ",
    "import ",
    "from ",
    "return",
    "for ",
    "while ",
    "if ",
    "function ",
    "const ",
    "let ",
    "var ",
    "public ",
    "private ",
    "#include",
    "fn ",
    "func ",
    "select ",
    "insert ",
    "update ",
    "create table",
    "@",
    "print(",
    "console.",
)
_CLAUSE_START = frozenset({".", "!", "?", ";", ":", "\n", "and", "then", "also", "please"})
_VERBS = frozenset(
    "write explain summarize summarise list give create make compare describe translate find "
    "calculate compute solve prove show generate implement fix add convert extract analyze "
    "analyse draft design build refactor review rewrite outline tell suggest provide identify "
    "evaluate plan estimate optimize optimise debug test document discuss propose include "
    "consider check verify derive recommend justify".split()
)
_CONSTRAINT_WORDS = frozenset(
    "must should exactly without only never avoid ensure include cite sources source tone "
    "style json csv yaml markdown table bullet bullets format formatted don't mustn't "
    "required requirements".split()
)
_CONSTRAINT_PAIRS = frozenset(
    {
        ("at", "least"),
        ("at", "most"),
        ("need", "to"),
        ("no", "more"),
        ("fewer", "than"),
        ("less", "than"),
        ("do", "not"),
        ("make", "sure"),
        ("limit", "to"),
        ("limited", "to"),
        ("step", "by"),
    }
)
_LENGTH_UNITS = frozenset(
    "words word sentences bullets paragraphs lines characters pages page".split()
)
_LONG_WORDS = frozenset(
    "detailed comprehensive in-depth thorough exhaustive essay report extensive".split()
)
_MATH_WORDS = frozenset(
    "derivative integral integrate probability prove proof theorem matrix equation equations "
    "eigenvalues eigenvalue limit variance factorial solve polynomial logarithm".split()
)


def _log_scale(value: float, unit: float, cap: float) -> float:
    return min(1.0, math.log1p(value / unit) / math.log1p(cap / unit))


def _code_signals(text: str) -> float:
    lines = 0
    for line in text.splitlines():
        stripped = line.strip().lower()
        if stripped.endswith((";", "{", "}")) or stripped.startswith(_CODE_PREFIXES):
            lines += 1
    symbols = sum(text.count(symbol) for symbol in _CODE_SYMBOLS)
    return 3 * (text.count("```") // 2) + lines + symbols / 2


def complexity_features(view: RequestView) -> dict[str, float]:
    """Each feature in [0, 1], before weighting (for `flywheel ctl classify` and tests)."""
    text = view.text
    tokens = _TOKEN.findall(text.lower())
    asks = text.count("?") + len(_ENUMERATION.findall(text))
    constraints = math_terms = long_cues = 0
    asked_words = 0
    previous = "."
    for token in tokens:
        if token in _VERBS and previous in _CLAUSE_START:
            asks += 1
        if token in _CONSTRAINT_WORDS or (previous, token) in _CONSTRAINT_PAIRS:
            constraints += 1
        if token in _LENGTH_UNITS and previous.isdigit():
            constraints += 1
            if token.startswith("page"):
                asked_words = max(asked_words, 500 * int(previous))
            elif token.startswith("word"):
                asked_words = max(asked_words, int(previous))
        math_terms += token in _MATH_WORDS
        long_cues += token in _LONG_WORDS
        previous = token
    math_signals = (
        math_terms
        + len(_LATEX.findall(text))
        + len(_NUM_OP_NUM.findall(text))
        + text.count("=")
        + text.count("^")
    )
    requested = view.max_output_tokens or 0
    output = max(
        _log_scale(requested, 256, 16384),
        min(1.0, 0.25 * long_cues + _log_scale(asked_words * 1.3, 256, 8192)),
    )
    return {
        "length": _log_scale(len(text) / 4.0, 20, 2000),
        "code": min(1.0, _code_signals(text) / 12),
        "math": min(1.0, math_signals / 8),
        "asks": min(1.0, max(0, asks - 1) / 3),
        "constraints": min(1.0, constraints / 6),
        "depth": min(1.0, (view.turns - 1) / 12),
        "output": output,
        "tools": 1.0 if view.has_tools else 0.0,
        "media": 1.0 if view.multimodal else 0.0,
    }


def tier_of(score: float) -> Tier:
    if score >= HIGH_AT:
        return "high"
    if score >= MEDIUM_AT:
        return "medium"
    return "low"


def complexity(view: RequestView) -> tuple[float, Tier]:
    """The request's complexity score in [0, 1] and its tier."""
    features = complexity_features(view)
    raw = sum(WEIGHTS[name] * value for name, value in features.items())
    score = 1.0 - math.exp(-raw)
    return round(score, 4), tier_of(score)
