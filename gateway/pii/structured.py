"""Structured PII: regular expressions that find candidates, validators that keep true ones.

Each finder takes the text and returns entities of one type. Validators do the work a
regex cannot: the Luhn checksum for cards, ISO 13616 mod-97 for IBANs, `ipaddress` for
IPs, the SSA's area/group/serial rules for SSNs, and context words (versions, order
numbers, ISBNs, birth words) that turn a bare digit pattern into PII or out of it.

All finders together should take well under a millisecond on a 2 KB prompt, so no pattern
is tried at every position of the text; each rewrite below finds exactly what the plain form
did (tests/test_pii_structured_speed.py keeps the plain forms and compares):

* a pattern that starts with a lookbehind starts instead with the class it consumes first
  (`\\d(?<![\\w.-]\\d)` for `(?<![\\w.-])\\d`), so `re` skips to candidate characters in C;
* a pattern tied to a keyword or a literal (secret prefixes and keys, birth words, the `@` of
  an email, the colons of an IPv6 address) is tried, with `Pattern.match`, only where that
  occurs -- found with `str.find` (on a lower-cased copy for case-insensitive keywords) or a
  cheap pattern -- keeping `finditer`'s order and its skipping past each match;
* the context tests ("an ID word just before this?") match a reversed pattern at the start of
  the reversed text before the match instead of searching that text for a match at its end.
"""

from __future__ import annotations

import ipaddress
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable

from gateway.pii.types import Entity

__all__ = ["FINDERS", "iban_valid", "luhn_valid"]

Finder = Callable[[str], list[Entity]]


def _fold(text: str) -> str | None:
    """`text` lower-cased character for character, with every character that a `(?i)` pattern
    takes for an ASCII letter turned into that letter, so a case-insensitive ASCII keyword at
    `i` in `text` is a plain one at `i` in the result; None when no such string exists (a
    character whose lower case is two characters, U+0130)."""
    low = text.lower()
    if text.isascii():
        return low
    if len(low) != len(text):
        return None
    # (?i) also matches LONG S for "s" and DOTLESS I for "i"; KELVIN SIGN lower-cases to "k".
    return low.replace("\u017f", "s").replace("\u0131", "i")


def _starts(text: str, stems: Iterable[str]) -> list[int]:
    """Every index at which one of `stems` occurs in `text`, ascending."""
    out: list[int] = []
    for stem in stems:
        i = text.find(stem)
        while i >= 0:
            out.append(i)
            i = text.find(stem, i + 1)
    out.sort()
    return out


def _matches_at(pattern: re.Pattern[str], text: str, starts: Iterable[int]) -> list[re.Match[str]]:
    """`pattern.finditer(text)` when every match starts at one of `starts` (ascending)."""
    found: list[re.Match[str]] = []
    pos = 0
    for start in starts:
        if start >= pos:
            m = pattern.match(text, start)
            if m is not None:
                found.append(m)
                pos = m.end()
    return found


# Words just before a digit pattern that say it is an identifier, not PII:
#   (?i)(?:order|invoice|ref(?:erence)?|ticket|tracking|isbn(?:-1[03])?|sku|part|serial|
#   model|build|version|release|ver|v|po|case|item|batch|lot|firmware|sdk|package)
#   \s*(?:no\.?|number|num|id)?\s*[#:.]?\s*$
# searched for in the 30 characters before the match. The same test, faster: that pattern
# reversed, matched at the start of those 30 characters reversed.
_NOT_PII_BEFORE_REVERSED = re.compile(
    r"(?i)\s*[#:.]?\s*(?:\.?on|rebmun|mun|di)?\s*"
    r"(?:redro|eciovni|(?:ecnere)?fer|tekcit|gnikcart|(?:[03]1-)?nbsi|uks|trap|laires|"
    r"ledom|dliub|noisrev|esaeler|rev|v|op|esac|meti|hctab|tol|erawmrif|kds|egakcap)"
)


def _after_id_word(text: str, start: int) -> bool:
    return _NOT_PII_BEFORE_REVERSED.match(text[max(0, start - 30) : start][::-1]) is not None


# A dotted quad after "upgrade/update/install/patch/roll back ... to" is a version number:
#   (?i)(?:\b(?:upgrad|updat|install|patch|downgrad|bump|roll(?:ed|ing)?\s+back)\w*
#   \b[^.\n]{0,40}?\b(?:to|from)|\bpin(?:ned|ning)?\b[^.\n]{0,40}?\b(?:to|at))\s+v?$
# searched for in the 60 characters before the match; here reversed, as above ("\n?" for
# "$", which also matches before a final newline).
_VERSION_MOVE_BEFORE_REVERSED = re.compile(
    r"(?i)\n?v?\s+(?:(?:ot|morf)\b[^.\n]{0,40}?\b\w*"
    r"(?:dargpu|tadpu|llatsni|hctap|dargnwod|pmub|kcab\s+(?:de|gni)?llor)\b"
    r"|(?:ot|ta)\b[^.\n]{0,40}?\b(?:den|gnin)?nip\b)"
)


def _after_version_move(text: str, start: int) -> bool:
    before = text[max(0, start - 60) : start][::-1]
    return _VERSION_MOVE_BEFORE_REVERSED.match(before) is not None


# ---------------------------------------------------------------- EMAIL
_EMAIL = re.compile(
    r"[A-Za-z0-9](?<![\w.+%-][A-Za-z0-9])[A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def find_email(text: str) -> list[Entity]:
    ats = text.count("@")
    if ats > 16:  # a text of @s: one pass of the pattern beats a search per @
        return [Entity("EMAIL", m.start(), m.end(), m.group(), 1.0) for m in _EMAIL.finditer(text)]
    # Every match holds exactly one "@", at most 64 characters after its start: search from
    # 64 before each "@" up to the next "@", which is neither in a match nor [\w-], so ending
    # the text there changes no match.
    found: list[Entity] = []
    pos = 0
    at = text.find("@") if ats else -1
    while at >= 0:
        following = text.find("@", at + 1)
        m = _EMAIL.search(text, max(pos, at - 64), len(text) if following < 0 else following)
        if m is not None:
            found.append(Entity("EMAIL", m.start(), m.end(), m.group(), 1.0))
            pos = m.end()
            following = text.find("@", pos)
        at = following
    return found


# ---------------------------------------------------------------- CREDIT_CARD
_CARD = re.compile(r"\d(?<![\w.,-]\d)(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9])|35")
_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 5)}
_CARD_SEP = re.compile(r"[ -]")


_LUHN_DOUBLED = {str(d): d * 2 - 9 if d > 4 else d * 2 for d in range(10)}


def luhn_valid(digits: str) -> bool:
    """The Luhn mod-10 checksum over a string of digits."""
    if digits.isascii() and digits.isdigit():  # the loop below, in C
        total = sum(map(int, digits[-1::-2])) + sum(map(_LUHN_DOUBLED.__getitem__, digits[-2::-2]))
        return total % 10 == 0
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_credit_card(text: str) -> list[Entity]:
    found: list[Entity] = []
    for m in _CARD.finditer(text):
        raw = m.group()  # digits, and spaces or hyphens (never both) between them
        spaced, hyphened = " " in raw, "-" in raw
        if spaced and hyphened:
            continue
        if spaced or hyphened:
            if tuple(map(len, _CARD_SEP.split(raw))) not in _CARD_GROUPS:
                continue
            digits = raw.replace(" ", "") if spaced else raw.replace("-", "")
        else:
            digits = raw
        if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits):
            continue
        if luhn_valid(digits) and not _after_id_word(text, m.start()):
            found.append(Entity("CREDIT_CARD", m.start(), m.end(), raw, 1.0))
    return found


# ---------------------------------------------------------------- US_SSN
_SSN = re.compile(r"(\d(?<![\w.-]\d)\d\d)([- ]?)(\d{2})\2(\d{4})(?![\w-]|[.,]\d)")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social security|ss#|tax id|tin)\b")


def find_ssn(text: str) -> list[Entity]:
    found: list[Entity] = []
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.groups()
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        if not sep and not _SSN_CONTEXT.search(text[max(0, m.start() - 40) : m.start()]):
            continue
        if not _after_id_word(text, m.start()):
            found.append(Entity("US_SSN", m.start(), m.end(), m.group(), 0.95 if sep else 0.8))
    return found


# ---------------------------------------------------------------- IBAN
_IBAN = re.compile(
    r"[A-Z](?<![\w-][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)"
)
_IBAN_LENGTHS = dict(
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BR=29, CH=21, CR=22, CY=28,
    CZ=24, DE=22, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FO=18, FR=27, GB=22, GE=22, GI=23,
    GL=18, GR=27, GT=28, HR=21, HU=28, IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30, KZ=20,
    LB=28, LC=32, LI=21, LT=20, LU=20, LV=21, MC=27, MD=24, ME=22, MK=19, MR=27, MT=31, MU=30,
    NL=18, NO=15, PK=24, PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, SA=24, SC=31, SE=24, SI=19,
    SK=24, SM=27, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20,
)  # fmt: skip


_IBAN_BASE36 = {ord(c): str(int(c, 36)) for c in string.ascii_letters}


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length and the mod-97 check over the rearranged string."""
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    if moved.isascii() and moved.isalnum():  # 0-9, A-Z, a-z: each its base-36 value, in C
        return int(moved.translate(_IBAN_BASE36)) % 97 == 1
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def find_iban(text: str) -> list[Entity]:
    found: list[Entity] = []
    for m in _IBAN.finditer(text):
        want = _IBAN_LENGTHS.get(m.group()[:2])
        if want is None:
            continue
        end, count, raw = m.start(), 0, m.group()
        if " " not in raw:  # take exactly the country's length of characters
            if len(raw) >= want:
                count, end = want, m.start() + want
        else:
            for i, ch in enumerate(raw):
                if ch != " ":
                    count += 1
                if count == want:
                    end = m.start() + i + 1
                    break
        if count == want and text[end : end + 1].isalnum() is False:
            compact = text[m.start() : end].replace(" ", "")
            if iban_valid(compact):
                found.append(Entity("IBAN", m.start(), end, text[m.start() : end], 1.0))
    return found


# ---------------------------------------------------------------- IP_ADDRESS
_IPV4 = re.compile(r"\d(?<![\w.:-]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w-]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})"
    r"(?:%\w+)?(?![\w:])"
)
# An IPv6 match's first colon is followed by up to four hex digits and another colon, and
# comes at most four characters after the match's start.
_IPV6_FIRST_COLON = re.compile(r":(?=[0-9A-Fa-f]{0,4}:)")


def _ipv6_matches(text: str) -> list[re.Match[str]]:
    """`_IPV6.finditer(text)`, trying only the five starts before each possible first colon."""
    found: list[re.Match[str]] = []
    pos = 0  # where finditer would search from
    for colon in _IPV6_FIRST_COLON.finditer(text):
        at = colon.start()
        for start in range(max(pos, at - 4), at + 1):
            m = _IPV6.match(text, start)
            if m is not None:
                found.append(m)
                pos = m.end()
                break
        else:
            pos = max(pos, at + 1)  # every start up to here has failed
    return found


def find_ip(text: str) -> list[Entity]:
    found: list[Entity] = []
    if "." in text:
        for m in _IPV4.finditer(text):
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if not _after_id_word(text, m.start()) and not _after_version_move(text, m.start()):
                found.append(Entity("IP_ADDRESS", m.start(), m.end(), m.group(), 0.95))
    colons = text.count(":")
    if "::" in text or colons >= 7:
        for m in _IPV6.finditer(text) if colons > 64 else _ipv6_matches(text):
            raw = m.group()
            if raw.count(":") < 2 or not any(c.isalnum() for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            found.append(Entity("IP_ADDRESS", m.start(), m.end(), raw, 0.95))
    return found


# ---------------------------------------------------------------- PHONE
# (?<![\w+.@/-])(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,8}){1,5}
# (?![\w-]|[.,]\d), written to start with the class of its first character ("+", "(" or a
# digit) and then, by what that character was, go on as the original would: the same
# matches, tried in the same order.
_PHONE = re.compile(
    r"[+(\d](?<![\w+.@/-][+(\d])"
    r"(?:(?<=\+)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}"
    r"|(?<=\()\d{1,4}\)[ .-]?\d{1,5}"
    r"|(?<=0)0\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}"
    r"|(?<=\d)\d{0,4})"
    r"(?:[ .-]\d{1,8}){1,5}(?![\w-]|[.,]\d)"
)
_US_PHONE = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_INTL_PREFIX = frozenset(f"00{d}" for d in range(1, 10))  # 00 + a country code (never 0)
_SSN_SHAPE = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_PHONE_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_PHONE_GROUP_SEP = re.compile(r"[ .()-]+")


def _phone_ok(raw: str) -> bool:
    if len(raw) < 7:  # fewer than 7 digits
        return False
    # Every character of a match is a digit or one of " .-+()".
    digits = len(raw) - (
        raw.count(" ") + raw.count(".") + raw.count("-") + raw.count("(") + raw.count(")")
        + raw.count("+")
    )  # fmt: skip
    if not 7 <= digits <= 15 or _PHONE_DATE.fullmatch(raw) or _SSN_SHAPE.fullmatch(raw):
        return False
    if raw[0] == "+" or raw[:3] in _INTL_PREFIX:
        return digits >= 8
    if _US_PHONE.fullmatch(raw):
        return True
    groups = _PHONE_GROUP_SEP.split(raw.strip("()"))
    return raw[0] in "0(" and digits >= 9 and all(len(g) >= 2 for g in groups if g)


def find_phone(text: str) -> list[Entity]:
    found: list[Entity] = []
    for m in _PHONE.finditer(text):
        start, raw = m.start(), m.group()
        if _phone_ok(raw) and not _after_id_word(text, start):
            found.append(Entity("PHONE", start, m.end(), raw, 0.9))
    return found


# ---------------------------------------------------------------- SECRET
_SECRET_PREFIXED = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}"
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")(?![\w-])"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"
)
# Where a _SECRET_PREFIXED match can start, found by a rarer character its prefix holds at a
# fixed offset: "_" at 2 (sk_ pk_ rk_ hf_), 3 (gh?_ npm_) or 6 (github_pat_); "-" at 2 (sk-),
# 4 (xox?-), 5 (glpat-) or 0 (-----BEGIN); "A" at 0 (AKIA ASIA AIza); "J" at 2 (eyJ).
_SECRET_HINT = re.compile(
    r"_(?:(?<=[spr]k_)|(?<=gh[pousr]_)|(?<=github_)|(?<=hf_)|(?<=npm_))"
    r"|-(?:(?<=sk-)|(?<=xox[abposr]-)|(?<=glpat-)|(?=----BEGIN ))"
    r"|A(?=KIA|SIA|Iza)|J(?<=eyJ)"
)
_SECRET_HINT_OFFSETS = {"_": (6, 3, 2), "-": (5, 4, 2, 0), "A": (0,), "J": (2,)}
_SECRET_KV = re.compile(
    r"(?i)(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"auth[_-]?key|private[_-]?key|client[_-]?secret|credentials?)[\w-]*[\"']?\s*[:=]\s*"
    r"[\"']?(?P<v>[^\s\"',;)}\]]{8,})"
)
# Every _SECRET_KV match starts with one of these, in the _fold()ed text.
_SECRET_KEYS = (
    "passw", "pwd", "secret", "token", "api", "access", "auth", "private", "client", "credential",
)  # fmt: skip


def _entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _looks_random(value: str) -> bool:
    lower, upper = any(c.islower() for c in value), any(c.isupper() for c in value)
    digit = any(c.isdigit() for c in value)
    mixed = (digit and (lower or upper)) or (lower and upper)  # not YOUR_API_KEY, not 12345678
    return mixed and _entropy(value) >= 3.0


def find_secret(text: str) -> list[Entity]:
    starts = sorted(
        {m.start() - back for m in _SECRET_HINT.finditer(text)
         for back in _SECRET_HINT_OFFSETS[m.group()]}
    )  # fmt: skip
    prefixed = _matches_at(_SECRET_PREFIXED, text, starts)
    found = [Entity("SECRET", m.start(), m.end(), m.group(), 1.0) for m in prefixed]
    folded = _fold(text)
    pairs: Iterable[re.Match[str]] = (
        _SECRET_KV.finditer(text)
        if folded is None
        else _matches_at(_SECRET_KV, text, _starts(folded, _SECRET_KEYS))
    )
    for m in pairs:
        value = m.group("v")
        if _looks_random(value):
            found.append(Entity("SECRET", m.start("v"), m.end("v"), value, 0.85))
    return found


# ---------------------------------------------------------------- DATE_OF_BIRTH
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE = (
    r"(?:\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}}"
    rf"|{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
)
_DOB = re.compile(
    r"(?i:\b(?:born|d\.?o\.?b\.?|date\s+of\s+birth|birth\s*date|birthday)\b)"
    rf"[^\n\d]{{0,24}}?(?P<d>{_DATE})(?!\d)"
)
# Every _DOB match starts with one of these, in the _fold()ed text.
_DOB_KEYS = ("born", "dob", "d.ob", "do.b", "d.o.b", "date", "birth")


def find_dob(text: str) -> list[Entity]:
    folded = _fold(text)
    matches: Iterable[re.Match[str]] = (
        _DOB.finditer(text)
        if folded is None
        else _matches_at(_DOB, text, _starts(folded, _DOB_KEYS))
    )
    return [Entity("DATE_OF_BIRTH", m.start("d"), m.end("d"), m.group("d"), 0.9)
            for m in matches]  # fmt: skip


FINDERS: dict[str, Finder] = {
    "EMAIL": find_email,
    "PHONE": find_phone,
    "CREDIT_CARD": find_credit_card,
    "US_SSN": find_ssn,
    "IBAN": find_iban,
    "IP_ADDRESS": find_ip,
    "SECRET": find_secret,
    "DATE_OF_BIRTH": find_dob,
}
