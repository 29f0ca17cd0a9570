"""The fast forms of the structured finders find exactly what the plain forms did.

gateway/pii/structured.py rewrites its patterns for speed: a leading lookbehind moved after
the first character, context patterns reversed, keyword- and literal-anchored patterns only
tried where their keyword occurs, validators with C fast paths. Here the plain forms (as
they were before those rewrites) are the reference, compared on hand-picked edge cases and
on a seeded soup of PII-shaped tokens. No timing is asserted.
"""

from __future__ import annotations

import json
import random
import re
from importlib import resources

import pytest

from gateway.pii import structured as s
from gateway.pii.types import Entity

# ---------------------------------------------------------------- the plain forms
PLAIN = {
    "_EMAIL": re.compile(
        r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
    ),
    "_CARD": re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)"),
    "_SSN": re.compile(r"(?<![\w.-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-]|[.,]\d)"),
    "_IBAN": re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)"),
    "_IPV4": re.compile(r"(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)"),
    "_PHONE": re.compile(
        r"(?<![\w+.@/-])(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}"
        r"(?:[ .-]\d{1,8}){1,5}(?![\w-]|[.,]\d)"
    ),
}
NOT_PII_BEFORE = re.compile(
    r"(?i)(?:order|invoice|ref(?:erence)?|ticket|tracking|isbn(?:-1[03])?|sku|part|serial|"
    r"model|build|version|release|ver|v|po|case|item|batch|lot|firmware|sdk|package)"
    r"\s*(?:no\.?|number|num|id)?\s*[#:.]?\s*$"
)
VERSION_MOVE_BEFORE = re.compile(
    r"(?i)(?:\b(?:upgrad|updat|install|patch|downgrad|bump|roll(?:ed|ing)?\s+back)\w*"
    r"\b[^.\n]{0,40}?\b(?:to|from)|\bpin(?:ned|ning)?\b[^.\n]{0,40}?\b(?:to|at))\s+v?$"
)


def plain_after_id_word(text: str, start: int) -> bool:
    return NOT_PII_BEFORE.search(text[max(0, start - 30) : start]) is not None


def plain_after_version_move(text: str, start: int) -> bool:
    return VERSION_MOVE_BEFORE.search(text[max(0, start - 60) : start]) is not None


def plain_email(text: str) -> list[Entity]:
    return [Entity("EMAIL", m.start(), m.end(), m.group(), 1.0)
            for m in PLAIN["_EMAIL"].finditer(text)]  # fmt: skip


def plain_secret(text: str) -> list[Entity]:
    found = [Entity("SECRET", m.start(), m.end(), m.group(), 1.0)
             for m in s._SECRET_PREFIXED.finditer(text)]  # fmt: skip
    for m in s._SECRET_KV.finditer(text):
        if s._looks_random(m.group("v")):
            found.append(Entity("SECRET", m.start("v"), m.end("v"), m.group("v"), 0.85))
    return found


def plain_dob(text: str) -> list[Entity]:
    return [Entity("DATE_OF_BIRTH", m.start("d"), m.end("d"), m.group("d"), 0.9)
            for m in s._DOB.finditer(text)]  # fmt: skip


def plain_luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def plain_iban(iban: str) -> bool:
    if s._IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# ---------------------------------------------------------------- texts
TOKENS = [
    "0", "00", "1", "4", "9", "12", "123", "4111", "0044", "555", "\u0663", "+", "(", ")",
    " ", " ", "-", ".", ",", ":", "::", "/", "@", "_", "#", "=", "\n", "'", '"', "a", "e",
    "f", "x", "Z", "AB", "DE", "GB", "ff", "abcd", "v", "V", "\u017f", "\u212a", "\u0130",
    "\u0131", "\u00e9", "order", "REF", "isbn-13", "no.", "number", "id", "Version", "po",
    "upgrade", "Upgraded", "install", "roll back", "pinned", "to", "from", "at", "bump",
    "password", "PASSWORD", "pa\u017f\u017fword", "pwd", "secret", "ToKeN", "api_key", "apikey",
    "ACCESS-KEY", "auth_key", "private_key", "client_secret", "credentials", "aB3xY9zQ",
    "Zx8Qw2Lm9", "sk-", "sk_live_", "pk_test_", "ghp_", "github_pat_", "xoxb-", "AKIA",
    "ASIA", "AIza", "glpat-", "hf_", "npm_", "eyJ", "-----BEGIN ", "RSA ", "PRIVATE KEY-----",
    "-----END ", "ABCDEFGHIJ0123456789abcdefghij", "born", "BORN", "d.o.b", "DOB", "Date of birth",
    "birthday", "Jan", "March", "12th", "1990", "1990-01-02", "3/4/1990", "of", "user",
    "mail.example.com", ".com", "john.doe", "%", "fe80", "db8", "1.2.3.4", "192.168.0.1", "SSN",
    "tax id", "\t",
]  # fmt: skip
EDGE_CASES = [
    "sk-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    "00 44 20 7946 0958 and 0044 20 7946 0958 (020) 7946 0958 +44 (0)20 7946 0958",
    "\u0663\u0663\u0663-45-6789 and 4111 1111 1111 1111 at the very end 4111111111111111",
    "a@b.cd.ef@x.com x@@y.com first.last+tag@sub.example.co.uk@more.io @lonely",
    "::1 fe80::1:2 1:2:3:4:5:6:7:8 a:b:c:d:e:f:0:1 12:30:45 ::ffff:1.2.3.4 ab::cd%eth0",
    "pa\u017f\u017fword: aB3xY9zQ1w TO\u212aEN=Zx8Qw2Lm9q pr\u0131vate_key='aB3xY9zQ1wE'",
    "P\u0130N: x password: aB3xY9zQ1w",  # U+0130 lower-cases to two characters
    "upgrade the driver to v\n10.0.0.1 and pinned it at 10.0.0.2; order no. 10.0.0.3",
    "DoB: 1 March 1990; D.O.B. 1990-01-02, born on Jan 3rd, 1990, birthday 3/4/90",
    "GB82 WEST 1234 5698 7654 32 and GB82WEST12345698765432X DE89370400440532013000",
    "a@b.io x@@y.com " * 12,  # past the @ count where find_email searches the whole text
    "a:b:c::1 " * 20 + "fe80::2 10:30:00",  # past the colon count where IPv6 does too
]


def corpus() -> list[str]:
    rows = resources.files("gateway.pii").joinpath("data", "eval.jsonl").read_text("utf-8")
    texts = [json.loads(line)["text"] for line in rows.splitlines() if line.strip()]
    rng = random.Random(1729)
    soup = ["".join(rng.choices(TOKENS, k=rng.randint(1, 40))) for _ in range(1500)]
    return EDGE_CASES + texts + soup


TEXTS = corpus()


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_rewritten_patterns_match_the_plain_ones(name: str) -> None:
    fast = getattr(s, name)
    for text in TEXTS:
        assert [m.span() for m in fast.finditer(text)] == [
            m.span() for m in PLAIN[name].finditer(text)
        ], text


def test_ipv6_candidates_give_the_plain_matches() -> None:
    for text in TEXTS:
        assert [m.span() for m in s._ipv6_matches(text)] == [
            m.span() for m in s._IPV6.finditer(text)
        ], text


def test_reversed_context_patterns() -> None:
    for i, text in enumerate(TEXTS):
        for start in range(0, len(text) + 1, 1 if i < 600 else 4):
            assert s._after_id_word(text, start) == plain_after_id_word(text, start), text
            assert s._after_version_move(text, start) == plain_after_version_move(text, start)


def test_anchored_finders() -> None:
    for text in TEXTS:
        assert s.find_email(text) == plain_email(text), text
        assert s.find_secret(text) == plain_secret(text), text
        assert s.find_dob(text) == plain_dob(text), text


def test_fold_keeps_positions_and_case_insensitive_letters() -> None:
    assert s._fold("PASSWORD") == "password"
    assert s._fold("pa\u017f\u017fword TO\u212aEN pr\u0131vate") == "password token private"
    assert s._fold("P\u0130N") is None
    assert s.find_secret("pa\u017f\u017fword: aB3xY9zQ1w")  # (?i) takes LONG S for "s"


def test_validators_fast_paths() -> None:
    rng = random.Random(7)
    alphabet = "0123456789" * 4 + "abcxyzABCXYZ \u0663-"
    for _ in range(5000):
        value = "".join(rng.choices(alphabet, k=rng.randint(0, 24)))
        assert s.luhn_valid(value) == plain_luhn(value), value
        country = rng.choice(sorted(s._IBAN_LENGTHS))
        iban = country + "".join(rng.choices(alphabet, k=s._IBAN_LENGTHS[country] - 2))
        try:
            want = plain_iban(iban)
        except ValueError:
            with pytest.raises(ValueError):
                s.iban_valid(iban)
        else:
            assert s.iban_valid(iban) == want, iban
    for iban in ("GB82WEST12345698765432", "DE89370400440532013000", "gb82west12345698765432"):
        assert s.iban_valid(iban) == plain_iban(iban)
