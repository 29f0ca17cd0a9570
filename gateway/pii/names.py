"""PERSON and STREET_ADDRESS: gazetteers, capitalisation and context cues, a street grammar.

No statistical NER model is installable offline here (spaCy's `en_core_web_sm` is not on
this machine's package index), so PERSON is a run of capitalised words accepted when a
given name or family name from the shipped gazetteers anchors it (curated international
lists plus the US Census's 5,163 given and 88,799 family names, with names that are also
common English words needing a second anchor), or when a cue word (Mr, Dr, "my name is",
"Dear", "signed") precedes it. STREET_ADDRESS is a grammar:
house number, capitalised street words, a street-type word, then an optional unit, city,
state and ZIP or postcode; plus the continental street-name-first form ("Hauptstraße 5,
10115 Berlin", "12 rue de Rivoli, 75001 Paris").
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from gateway.pii.types import Entity

__all__ = ["find_person", "find_street_address", "load_gazetteers"]


@cache
def _words(name: str) -> frozenset[str]:
    raw = resources.files("gateway.pii").joinpath("data", name).read_text(encoding="utf-8")
    lines = (line for line in raw.splitlines() if not line.lstrip().startswith("#"))
    return frozenset(word for line in lines for word in line.split())


_STOP = frozenset(
    """January February March April May June July August September October November December
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday The This That These Those There
    Street Avenue Road Lane Drive Boulevard Court Place Way Square Park Station Hall Center
    Centre University College School Bank Studio Office Team Group Project Company Inc Ltd
    Corp LLC GmbH Foundation Institute Hospital Hotel Airport Bridge River Lake Mountain City
    County State Kingdom Republic Pro Max Plus Ultra Cloud Server Service Services Manager
    Edition Version Release Update North South East West New Old Great Grand Saint Mount Fort
    Please Thanks Thank Hello Dear Best Regards Kind Team Support Customer Account Order
    Windows Linux Python Java Chrome Azure Google Microsoft Apple Amazon Meta Data Report
    Monthly Annual Quarterly Weekly Daily Review Meeting Summary Notes Agenda Board Sales""".split()
)
_CAP = r"(?:[A-Z][a-z]*['\u2019])?[A-ZÀ-Þ][a-zß-ÿ]+(?:-[A-ZÀ-Þ][a-zß-ÿ]+)?"
_RUN = re.compile(rf"(?<![\w@.-]){_CAP}(?:\s+[A-Z]\.)?(?:[ \t]+{_CAP}){{0,2}}(?![\w@-])")
_TITLE = re.compile(r"\b(?:Mr|Mrs|Ms|Mx|Dr|Prof|Sir|Madam)\.?\s+$")
_CUE = re.compile(
    r"(?i:(?:\b(?:Mr|Mrs|Ms|Mx|Dr|Prof|Sir|Madam)\.?|\bmy name is|\bI am|\bI'm|\bnamed|\bcalled|"
    r"\bdear|\bsigned,?|\bregards,|\bcontact|\bpatient|\bcustomer|\bemployee|\bassigned to|"
    r"\bspoke with|\bcc:?|\bfrom|\bby|\bwith|\battn:?)\s+)$"
)


@cache
def load_gazetteers() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Given names, family names, and the names that are also common English words.

    The curated lists (`first_names.txt`, `surnames.txt`) are never ambiguous; the census
    lists add breadth, and a census name that is a frequent English word ("Mark", "Page",
    "Brown") counts only next to an unambiguous half or a cue.
    """
    curated = _words("first_names.txt") | _words("surnames.txt")
    first = _words("first_names.txt") | _words("census_first_names.txt")
    last = _words("surnames.txt") | _words("census_surnames.txt")
    common = _words("common_words.txt")
    ambiguous = frozenset(w for w in first | last if w.lower() in common and w not in curated)
    return first, last, ambiguous


def _common(word: str) -> bool:
    return word.lower() in _words("common_words.txt")


def find_person(text: str) -> list[Entity]:
    first, last, ambiguous = load_gazetteers()
    found: list[Entity] = []
    for m in _RUN.finditer(text):
        tokens = [t for t in m.group().split() if not t.endswith(".")]
        while tokens and tokens[-1] in _STOP:
            tokens.pop()
        while tokens and tokens[0] in _STOP:
            tokens.pop(0)
        if not tokens or any(t in _STOP for t in tokens):
            continue
        start = text.index(tokens[0], m.start())
        end = text.index(tokens[-1], start) + len(tokens[-1])
        if _SUFFIX_AFTER.match(text, end):
            continue  # "Baker Street", "Elm Road": an address, not a person
        cue = _CUE.search(text[max(0, start - 16) : start]) is not None
        score = _person_score(tokens, first, last, ambiguous, cue)
        if score is None and cue and (tokens[0] in last or _TITLE.search(text, 0, start)):
            score = 0.7
        if score is not None:
            found.append(Entity("PERSON", start, end, text[start:end], score))
    return found


def _person_score(
    tokens: list[str],
    first: frozenset[str],
    last: frozenset[str],
    ambiguous: frozenset[str],
    cue: bool,
) -> float | None:
    """How sure a run of capitalised words is a name; None when it is not one."""
    if len(tokens) < 2:
        return None
    given, family = tokens[0], tokens[-1]
    strong_given = given in first and given not in ambiguous
    strong_family = family in last and family not in ambiguous
    if given in first and family in last and (strong_given or strong_family or cue):
        return 0.9
    if strong_given and (cue or len(tokens) == 2) and not _common(family):
        return 0.75
    if strong_family and not _common(given):
        return 0.7
    if cue:
        return 0.7
    return None


_SUFFIXES = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|"
    r"Terrace|Ter|Crescent|Close|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Row|"
    r"Gardens|Grove|Mews|Walk|Hill|Alley|Plaza)"
)
_SUFFIX_AFTER = re.compile(rf"[ \t]+{_SUFFIXES}\b")
_UNIT = r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|#)\.?\s*#?[\w-]{1,6})"
_CITY = r"(?:,\s*[A-Z][a-z][a-zA-Z.'-]*(?:[ \t][A-Z][a-z][a-zA-Z.'-]*){0,2})"
_TAIL = (
    r"(?:,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?"  # US state + ZIP
    r"|,?\s+[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}"  # UK postcode
    r"|,?\s+[A-Z]{2}\s+[A-Z]\d[A-Z]\s?\d[A-Z]\d"  # Canadian province + postcode
    r"|,\s*[A-Z]{2}(?!\w))"
)
_STREET_WORD = r"(?:[A-Z][a-zA-Z'.-]*|\d{1,3}(?:st|nd|rd|th)|of|de|la|del)"
_US_STREET = re.compile(
    rf"(?<![\w.,-])\d{{1,6}}[A-Z]?(?:-\d{{1,4}})?[ \t]+(?:[NSEW]\.?[ \t]+)?"
    rf"(?:{_STREET_WORD}[ \t]+){{1,4}}?{_SUFFIXES}\.?(?![\w-])"
    rf"(?:[ \t]+(?:NW|NE|SW|SE|N|S|E|W)\b)?{_UNIT}?(?:{_CITY}{_TAIL}?)?"
)
_EU_STREET = re.compile(
    r"(?<![\w-])(?:[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|platz|gasse|allee|ring|damm|"
    r"laan|gracht|straat|vej|gatan|gata|vägen)|(?:Via|Viale|Piazza|Calle|Avenida|Rua|Plaza)"
    r"(?:[ \t]+(?:[A-Z][a-zà-ÿ']+|de|del|di|della|da|dos|la))+)[ \t]+\d{1,4}[a-z]?"
    r"(?:,\s*(?:\d{4,5}|[A-Z]-?\d{4,5})[ \t]+[A-ZÄÖÜ][a-zäöüß]+(?:[ \t][A-Z][a-zäöüß]+)?)?"
    r"|(?<![\w-])\d{1,4}(?:bis|ter)?,?[ \t]+(?:rue|avenue|boulevard|bd|place|chemin|allée|quai|"
    r"impasse)(?:[ \t]+(?:[A-Za-zà-ÿ'-]+)){1,4}?,[ \t]*\d{5}[ \t]+[A-Z][a-zà-ÿ-]+"
)


def find_street_address(text: str) -> list[Entity]:
    found: list[Entity] = []
    for pattern in (_US_STREET, _EU_STREET):
        for m in pattern.finditer(text):
            raw = m.group().rstrip(" ,")
            found.append(Entity("STREET_ADDRESS", m.start(), m.start() + len(raw), raw, 0.85))
    return found
