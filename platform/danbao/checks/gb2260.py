"""GB/T 2260 region codes with the years each was in force (``data/gb2260.tsv``).

Identity numbers keep the region code they were issued with, so a number from
a county abolished in 1993 (132234 平乡县) stays valid: checks ask whether a
code was ever in force after a given year, not whether it is in today's list.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "gb2260.tsv"


@dataclass(frozen=True)
class Period:
    """One name a code carried, from ``start`` to ``end`` (years; None: open)."""
    code: str
    name: str
    start: int | None
    end: int | None

    def in_force_after(self, year: int) -> bool:
        return self.end is None or self.end >= year


@lru_cache(maxsize=1)
def periods() -> dict[str, tuple[Period, ...]]:
    """Every code of the data file with its periods, oldest first."""
    table: dict[str, list[Period]] = {}
    with DATA.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            code, name, start, end = line.rstrip("\n").split("\t")
            table.setdefault(code, []).append(Period(code, name, int(start) if start else None,
                                                     int(end) if end else None))
    return {code: tuple(rows) for code, rows in table.items()}


@lru_cache(maxsize=1)
def _prefectures_with_counties() -> frozenset[str]:
    return frozenset(code[:4] for code in periods() if not code.endswith("00"))


def is_region(code: str) -> bool:
    """A code of any level that was ever in force (a credit code's registration authority)."""
    return code in periods()


def is_county(code: str, born: int | None = None) -> bool:
    """A county-level code (or a prefecture-level city without counties, 东莞 441900),
    in force in ``born`` or later when given: a number is issued after its holder's birth."""
    rows = periods().get(code)
    if not rows or code.endswith("0000"):
        return False
    if code.endswith("00") and code[:4] in _prefectures_with_counties():
        return False
    return born is None or any(p.in_force_after(born) for p in rows)


def is_province(code2: str) -> bool:
    """Two digits naming a province-level unit (a permit's place of application)."""
    return f"{code2}0000" in periods()


def current(code: str) -> Period | None:
    """The period in force now, if the code still is."""
    rows = periods().get(code, ())
    return next((p for p in rows if p.end is None), None)


def counties_in(code: str) -> list[str]:
    """The county-level codes in force within a province or prefecture (``code``
    itself when it is county level, or a city without counties such as 441900)."""
    if is_county(code) and current(code):
        return [code]
    prefix = code[:2] if code.endswith("0000") else code[:4]
    return sorted(c for c in periods() if c.startswith(prefix) and current(c) and is_county(c)
                  and not c.endswith("00"))
