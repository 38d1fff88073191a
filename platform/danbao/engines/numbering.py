"""Record numbers from a rule in metadata: ``DB-{year}-{seq:05d}`` → DB-2026-00042.

The counter is kept per rule and per period the rule names (a rule with
``{year}`` restarts every year, one with ``{month}`` every month), so the
scope is the rule with its date parts filled in.
"""
from __future__ import annotations

import datetime as dt
import string
from typing import Callable


def number_scope(rule: str, when: dt.date) -> str:
    """The counter's scope: the date parts the rule uses (``2026`` or ``2026-11``), else ``*``."""
    names = {name for _, name, _, _ in string.Formatter().parse(rule) if name}
    parts = []
    if "year" in names:
        parts.append(f"{when.year:04d}")
    if "month" in names:
        parts.append(f"{when.month:02d}")
    return "-".join(parts) or "*"


def format_number(rule: str, when: dt.date, next_seq: Callable[[str], int]) -> str:
    """Fill ``rule`` for a record made at ``when``; ``next_seq(scope)`` hands out the counter."""
    seq = next_seq(number_scope(rule, when))
    return rule.format(year=f"{when.year:04d}", month=f"{when.month:02d}", seq=seq)
