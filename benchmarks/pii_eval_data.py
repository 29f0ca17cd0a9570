# mypy: allow-untyped-calls
"""Writes gateway/pii/data/eval.jsonl: the labelled PII evaluation set (fixed seed).

Real-looking values (checksum-valid cards and IBANs, valid SSNs, JWTs, addresses in four
countries' styles) are placed into sentence frames and the offsets recorded as they are
placed. A third of the texts are hard negatives with no PII at all. Values, frames and
names here are separate from the tests' dev set, and the detectors are not tuned on them.

    python -m benchmarks.pii_eval_data [--out PATH] [--seed 7]
"""

# ruff: noqa: E501  (value and sentence templates read best one per line)
from __future__ import annotations

import argparse
import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "gateway" / "pii" / "data" / "eval.jsonl"
FIRST = """Olivia Mateo Ingrid Kwame Sanjay Beatrix Tomasz Ayesha Lorenzo Mei Henrik Chiara Dmitri
Aurelie Jonas Amara Felipe Yuki Rosalind Ewan Farah Gustavo Linnea Tariq Marguerite Ruben
Keisha Anders Noor Callum Ximena Bogdan Ifeoma Declan Soren Valeria Emeka Hollis Petra
Rashid""".split()
LAST = """Lindqvist Okafor Brennan Castellano Nakashima Verhoeven Abernathy Szymanski Delacroix
Mwangi Halvorsen Ferreira Kowalczyk Iyer Thornbury Achterberg Montague Oyelaran Petrakis
Whitfield Novak Garcia Hughes Chen Fischer Rossi Patel Murphy Nguyen Silva""".split()
STREETS = "Maple Oak Cedar Willow Highland Lakeview Sunset Chestnut Riverside Magnolia".split()
SUFFIX = "Street St Avenue Ave Road Rd Boulevard Blvd Lane Drive Way Court Place".split()
CITIES = [("Portland", "OR"), ("Austin", "TX"), ("Denver", "CO"), ("Madison", "WI"),
          ("Raleigh", "NC"), ("Boise", "ID"), ("Tucson", "AZ"), ("Albany", "NY")]  # fmt: skip
IBAN_BBAN = {"DE": "8n10n", "GB": "4a6n8n", "FR": "5n5n11c2n", "NL": "4a10n", "ES": "20n",
             "IT": "1a10n12c", "BE": "12n", "CH": "5n12c", "PL": "24n", "SE": "20n",
             "AT": "16n", "IE": "4a6n8n", "NO": "11n", "PT": "21n"}  # fmt: skip

Maker = Callable[[random.Random], str]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _luhn_complete(body: str) -> str:
    for check in string.digits:
        total = 0
        for i, ch in enumerate(reversed(body + check)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("6011", 16),
                                 ("34", 15), ("37", 15), ("4", 13)])  # fmt: skip
    num = _luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))
    sep = rng.choice(["", " ", "-"]) if length == 16 else rng.choice(["", " "])
    if not sep or length == 13:
        return num
    groups = [4, 6, 5] if length == 15 else [4, 4, 4, 4]
    parts, i = [], 0
    for g in groups:
        parts.append(num[i : i + g])
        i += g
    return sep.join(parts)


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_BBAN))
    bban, spec, num = "", IBAN_BBAN[country], ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        pool = {"n": string.digits, "a": string.ascii_uppercase,
                "c": string.ascii_uppercase + string.digits}[ch]  # fmt: skip
        bban += "".join(rng.choice(pool) for _ in range(int(num)))
        num = ""
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    value = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(["-", "-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    d = lambda n: _digits(rng, n)  # noqa: E731
    nz = lambda: str(rng.randint(2, 9))  # noqa: E731
    return rng.choice([
        f"+1 {nz()}{d(2)}-{nz()}{d(2)}-{d(4)}", f"({nz()}{d(2)}) {nz()}{d(2)}-{d(4)}",
        f"{nz()}{d(2)}.{nz()}{d(2)}.{d(4)}", f"+44 7{d(3)} {d(6)}", f"+44 20 {d(4)} {d(4)}",
        f"+49 {nz()}{d(2)} {d(7)}", f"+33 {rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        f"+81 {nz()}{d(1)}-{d(4)}-{d(4)}", f"+91 9{d(4)} {d(5)}", f"+61 4{d(2)} {d(3)} {d(3)}",
        f"+55 11 9{d(4)}-{d(4)}", f"0{nz()}{d(2)} {d(3)} {d(4)}", f"+34 6{d(2)} {d(3)} {d(3)}",
    ])  # fmt: skip


def email(rng: random.Random) -> str:
    user = rng.choice([f"{rng.choice(FIRST)}.{rng.choice(LAST)}", f"{rng.choice(FIRST)}{_digits(rng, 2)}",
                       f"{rng.choice(LAST)[0]}{rng.choice(LAST)}+news"]).lower()  # fmt: skip
    return f"{user}@{rng.choice(['gmail.com', 'outlook.de', 'acme-corp.io', 'uni.edu.au', 'mail.co.uk'])}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    words = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if rng.random() < 0.6:
        return f"2001:db8:{words[0]}::{words[1]}"
    return ":".join(words)


def _b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    r = lambda n: "".join(rng.choice(alnum) for _ in range(n))  # noqa: E731
    return rng.choice([
        f"sk-{r(48)}", f"sk-proj-{r(40)}", f"sk_live_{r(24)}", f"ghp_{r(36)}", f"gho_{r(36)}",
        f"xoxb-{_digits(rng, 11)}-{_digits(rng, 12)}-{r(24)}", "AKIA" + "".join(
            rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        f"AIza{r(35)}", f"glpat-{r(20)}",
        _b64('{"alg":"HS256","typ":"JWT"}') + "." + _b64(f'{{"sub":"{_digits(rng, 6)}"}}')
        + "." + r(43),
    ])  # fmt: skip


def kv_secret(rng: random.Random) -> tuple[str, str]:
    alnum = string.ascii_letters + string.digits + "!#%*"
    value = "".join(rng.choice(alnum) for _ in range(rng.randint(14, 28)))
    return rng.choice(["password={}", 'API_TOKEN="{}"', '"client_secret": "{}"',
                       "secret_key: {}", "db_password = '{}'"]), value  # fmt: skip


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def address(rng: random.Random) -> str:
    n, street = rng.randint(2, 9800), rng.choice(STREETS)
    city, state = rng.choice(CITIES)
    return rng.choice([
        f"{n} {street} {rng.choice(SUFFIX)}, {city}, {state} {_digits(rng, 5)}",
        f"{n} {street} {rng.choice(SUFFIX)}",
        f"{n} {street} {rng.choice(SUFFIX)}, Suite {rng.randint(100, 990)}, {city}, {state} {_digits(rng, 5)}",
        f"{rng.randint(1, 99)} {street} Road, Leeds LS{rng.randint(1, 9)} {rng.randint(1, 9)}AB",
        f"{rng.choice(['Linden', 'Berg', 'Garten', 'Schiller'])}straße {rng.randint(1, 120)}, {_digits(rng, 5)} Hamburg",
        f"{rng.randint(1, 80)} rue {rng.choice(['Victor Hugo', 'des Lilas', 'Pasteur'])}, {_digits(rng, 5)} Lyon",
    ])  # fmt: skip


def dob(rng: random.Random) -> str:
    y, m, d = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    months = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]  # fmt: skip
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d} {months[m - 1]} {y}",
                       f"{months[m - 1]} {d}, {y}", f"{d:02d}.{m:02d}.{y}"])  # fmt: skip


FRAMES: dict[str, tuple[Maker, list[str]]] = {
    "EMAIL": (email, ["Reach me at {}.", "Forward the invoice to {} by Friday.", "email: {}"]),
    "PHONE": (phone, ["My mobile is {}.", "Call the front desk on {} after 9am.", "tel. {}"]),
    "CREDIT_CARD": (
        card,
        [
            "Charge it to my card {} please.",
            "Card number: {}, exp 09/28.",
            "I paid with {} yesterday.",
        ],
    ),
    "US_SSN": (
        ssn,
        ["My SSN is {}.", "Social security no. {} for the W-2 form.", "Applicant SSN: {}"],
    ),
    "IBAN": (iban, ["Wire the refund to {}.", "Our IBAN is {} (Sparkasse).", "IBAN: {}"]),
    "IP_ADDRESS": (
        ip,
        [
            "Login from {} was blocked.",
            "The server at {} stopped responding.",
            "client_ip={} status=403",
        ],
    ),
    "SECRET": (
        secret,
        ["Here is my key {} can you debug?", "export OPENAI_KEY={}", "Authorization: Bearer {}"],
    ),
    "PERSON": (
        person,
        [
            "I spoke with {} this morning.",
            "{} will approve the request.",
            "Thanks, {}.",
            "Please add {} to the thread.",
        ],
    ),
    "STREET_ADDRESS": (
        address,
        ["Ship it to {}.", "Our office moved to {} last year.", "Delivery address: {}"],
    ),
    "DATE_OF_BIRTH": (dob, ["I was born on {}.", "Patient DOB: {}", "Date of birth: {}"]),
}
FILLER = ["Thanks in advance.", "The build failed again on version 2.4.1.", "Can you help?",
          "Ticket #48213 is still open.", "It cost $249.99 in total.", "See you Monday.",
          "We met on 2024-02-11 at the conference.", "Summarise this for the team."]  # fmt: skip


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def negative(rng: random.Random) -> str:
    """One hard-negative text: look-alikes of PII that are not PII."""
    bad_card = card(rng).replace(" ", "").replace("-", "")
    bad_card = bad_card[:-1] + str((int(bad_card[-1]) + rng.randint(1, 9)) % 10)
    uuid = f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    good_iban = iban(rng).replace(" ", "")
    bad_iban = good_iban[:2] + f"{(int(good_iban[2:4]) + 1) % 100:02d}" + good_iban[4:]
    return rng.choice([
        f"Order #{_digits(rng, 10)} shipped on {rng.randint(1, 28)} May.",
        f"Upgraded the driver to {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)} today.",
        f"Request id {uuid} failed with 502.", f"Commit {_hex(rng, 40)} fixed the leak.",
        f"The checksum is sha256:{_hex(rng, 64)}.", f"Total due: ${rng.randint(1, 9)},{_digits(rng, 3)}.{_digits(rng, 2)}",
        f"ISBN 978-{rng.randint(0, 1)}-{_digits(rng, 3)}-{_digits(rng, 5)}-{rng.randint(0, 9)} is out of print.",
        f"The reference {bad_card} did not validate.", f"Ledger line {_digits(rng, 16)} was reconciled.",
        f"The meeting on {rng.randint(2019, 2025)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} was moved.",
        "Our Quarterly Business Review covers Cloud Storage and Data Platform plans.",
        "The Golden Gate Bridge and Central Park were on the itinerary.",
        f"Invoice INV-{rng.randint(2019, 2025)}-{_digits(rng, 5)} totals EUR {rng.randint(10, 999)},{_digits(rng, 2)}.",
        f"This IBAN-like string {bad_iban} fails validation.",
        f"Set max_tokens={rng.randint(64, 4096)} and temperature=0.{rng.randint(1, 9)}.",
        f"Room {rng.randint(100, 999)} on floor {rng.randint(1, 30)}, step {rng.randint(1, 9)} of the guide.",
        f"Python {rng.randint(2, 3)}.{rng.randint(6, 13)}.{rng.randint(0, 9)} and numpy 1.{rng.randint(20, 26)}.{rng.randint(0, 9)} are pinned.",
        f"Part number {rng.randint(100, 999)}-{rng.randint(100, 999)}-{_digits(rng, 4)} is back-ordered.",
        f"The timeout was {rng.randint(1, 59)}:{rng.randint(10, 59)}:{rng.randint(10, 59)} long.",
        "Use the Apple Pay button on the New Checkout Page.",
        f"Tracking 1Z{_hex(rng, 6).upper()}{_digits(rng, 10)} arrives {rng.randint(2, 9)} June.",
    ])  # fmt: skip


def positive(rng: random.Random) -> dict[str, object]:
    text, entities = "", []
    kinds = rng.sample(sorted(FRAMES), rng.choice([1, 1, 2, 2, 3]))
    for kind in kinds:
        if rng.random() < 0.4:
            text += rng.choice(FILLER) + " "
        if kind == "SECRET" and rng.random() < 0.3:
            frame, value = kv_secret(rng)
        else:
            maker, frames = FRAMES[kind]
            frame, value = rng.choice(frames), maker(rng)
        start = len(text) + frame.index("{}")
        text += frame.format(value) + " "
        entities.append({"type": kind, "start": start, "end": start + len(value)})
    return {"text": text.rstrip(), "entities": entities}


def build(seed: int = 7, n_positive: int = 380, n_negative: int = 160) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = [positive(rng) for _ in range(n_positive)]
    for _ in range(n_negative):
        parts = [negative(rng) for _ in range(rng.choice([1, 2, 3]))]
        rows.append({"text": " ".join(parts), "entities": []})
    rng.shuffle(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rows = build(args.seed)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"wrote {len(rows)} texts to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
