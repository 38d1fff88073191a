"""Normalisations a field can declare (``normalize: [halfwidth, strip_separators, upper]``):
the value is stored the way the standard prints it, whatever way it was typed.

They run in one fixed order (half-width first, so a full-width hyphen or space
is then a separator; capitals last), whatever order the field lists them in.
``resident_id_15_to_18`` is not a text rule: it applies only when the value is
checked as a resident ID, so a 15-digit passport number is never rewritten.
"""
from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]+")


def halfwidth(value: str) -> str:
    """Full-width ASCII forms (Ａ, １, －) and the ideographic space as their ASCII selves."""
    return "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else " " if c == "\u3000" else c
                   for c in value)


def strip_separators(value: str) -> str:
    """Spaces and hyphens people type between groups (``91 3205 05…``, ``110105-1949…``)."""
    return _SEPARATORS.sub("", value)


def upper(value: str) -> str:
    return value.upper()


TEXT_RULES = {"halfwidth": halfwidth, "strip_separators": strip_separators, "upper": upper}
#: Rules that depend on the check the value gets, applied by the check itself.
CHECK_RULES = {"resident_id_15_to_18": "resident_id"}
NORMALIZERS = tuple(TEXT_RULES) + tuple(CHECK_RULES)


def apply(rules, value: str) -> str:
    """``value`` after the field's text rules, in the fixed order."""
    for name, rule in TEXT_RULES.items():
        if name in rules:
            value = rule(value)
    return value
