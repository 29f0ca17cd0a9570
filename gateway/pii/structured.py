"""Structured PII: regular expressions that find candidates, validators that keep true ones.

Each finder takes the text and returns entities of one type. Validators do the work a
regex cannot: the Luhn checksum for cards, ISO 13616 mod-97 for IBANs, `ipaddress` for
IPs, the SSA's area/group/serial rules for SSNs, and context words (versions, order
numbers, ISBNs, birth words) that turn a bare digit pattern into PII or out of it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable

from gateway.pii.types import Entity

__all__ = ["FINDERS", "iban_valid", "luhn_valid"]

Finder = Callable[[str], list[Entity]]

# Words just before a digit pattern that say it is an identifier, not PII.
_NOT_PII_BEFORE = re.compile(
    r"(?i)(?:order|invoice|ref(?:erence)?|ticket|tracking|isbn(?:-1[03])?|sku|part|serial|"
    r"model|build|version|release|ver|v|po|case|item|batch|lot|firmware|sdk|package)"
    r"\s*(?:no\.?|number|num|id)?\s*[#:.]?\s*$"
)


def _after_id_word(text: str, start: int) -> bool:
    return _NOT_PII_BEFORE.search(text[max(0, start - 30) : start]) is not None


# A dotted quad after "upgrade/update/install/patch/roll back ... to" is a version number.
_VERSION_MOVE_BEFORE = re.compile(
    r"(?i)(?:\b(?:upgrad|updat|install|patch|downgrad|bump|roll(?:ed|ing)?\s+back)\w*"
    r"\b[^.\n]{0,40}?\b(?:to|from)|\bpin(?:ned|ning)?\b[^.\n]{0,40}?\b(?:to|at))\s+v?$"
)


def _after_version_move(text: str, start: int) -> bool:
    return _VERSION_MOVE_BEFORE.search(text[max(0, start - 60) : start]) is not None


# ---------------------------------------------------------------- EMAIL
_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def find_email(text: str) -> list[Entity]:
    if "@" not in text:
        return []
    return [Entity("EMAIL", m.start(), m.end(), m.group(), 1.0) for m in _EMAIL.finditer(text)]


# ---------------------------------------------------------------- CREDIT_CARD
_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9])|35")
_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 5)}


def luhn_valid(digits: str) -> bool:
    """The Luhn mod-10 checksum over a string of digits."""
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
        raw = m.group()
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if seps and tuple(len(g) for g in re.split(r"[ -]", raw)) not in _CARD_GROUPS:
            continue
        if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits):
            continue
        if luhn_valid(digits) and not _after_id_word(text, m.start()):
            found.append(Entity("CREDIT_CARD", m.start(), m.end(), raw, 1.0))
    return found


# ---------------------------------------------------------------- US_SSN
_SSN = re.compile(r"(?<![\w.-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-]|[.,]\d)")
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
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)")
_IBAN_LENGTHS = dict(
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BR=29, CH=21, CR=22, CY=28,
    CZ=24, DE=22, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FO=18, FR=27, GB=22, GE=22, GI=23,
    GL=18, GR=27, GT=28, HR=21, HU=28, IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30, KZ=20,
    LB=28, LC=32, LI=21, LT=20, LU=20, LV=21, MC=27, MD=24, ME=22, MK=19, MR=27, MT=31, MU=30,
    NL=18, NO=15, PK=24, PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, SA=24, SC=31, SE=24, SI=19,
    SK=24, SM=27, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20,
)  # fmt: skip


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length and the mod-97 check over the rearranged string."""
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def find_iban(text: str) -> list[Entity]:
    found: list[Entity] = []
    for m in _IBAN.finditer(text):
        want = _IBAN_LENGTHS.get(m.group()[:2])
        if want is None:
            continue
        end, count, raw = m.start(), 0, m.group()
        for i, ch in enumerate(raw):  # take exactly the country's length of characters
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
_IPV4 = re.compile(r"(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})"
    r"(?:%\w+)?(?![\w:])"
)


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
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
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
_PHONE = re.compile(
    r"(?<![\w+.@/-])(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,8}){1,5}"
    r"(?![\w-]|[.,]\d)"
)
_US_PHONE = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_INTL_PREFIX = frozenset(f"00{d}" for d in range(1, 10))  # 00 + a country code (never 0)
_SSN_SHAPE = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_PHONE_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _phone_ok(raw: str) -> bool:
    digits = sum(c.isdigit() for c in raw)
    if not 7 <= digits <= 15 or _PHONE_DATE.fullmatch(raw) or _SSN_SHAPE.fullmatch(raw):
        return False
    if raw[0] == "+" or raw[:3] in _INTL_PREFIX:
        return digits >= 8
    if _US_PHONE.fullmatch(raw):
        return True
    groups = re.split(r"[ .()-]+", raw.strip("()"))
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
_SECRET_KV = re.compile(
    r"(?i)(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"auth[_-]?key|private[_-]?key|client[_-]?secret|credentials?)[\w-]*[\"']?\s*[:=]\s*"
    r"[\"']?(?P<v>[^\s\"',;)}\]]{8,})"
)


def _entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _looks_random(value: str) -> bool:
    lower, upper = any(c.islower() for c in value), any(c.isupper() for c in value)
    digit = any(c.isdigit() for c in value)
    mixed = (digit and (lower or upper)) or (lower and upper)  # not YOUR_API_KEY, not 12345678
    return mixed and _entropy(value) >= 3.0


def find_secret(text: str) -> list[Entity]:
    found = [Entity("SECRET", m.start(), m.end(), m.group(), 1.0)
             for m in _SECRET_PREFIXED.finditer(text)]  # fmt: skip
    for m in _SECRET_KV.finditer(text):
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


def find_dob(text: str) -> list[Entity]:
    return [Entity("DATE_OF_BIRTH", m.start("d"), m.end("d"), m.group("d"), 0.9)
            for m in _DOB.finditer(text)]  # fmt: skip


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
