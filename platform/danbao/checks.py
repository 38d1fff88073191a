"""Named checks a field can declare with ``check:`` (forms and the API run them).

Each check is a pure function ``str -> bool`` that never raises, whatever it
is given. ``NAMED_CHECKS`` maps the name used in metadata to the function and
the message shown when a value fails; the loader refuses any other name.
"""
from __future__ import annotations

import datetime as dt

from danbao.meta.model import Label

#: GB 32100-2015 alphabet: digits and capitals without I, O, S, V, Z.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

#: GB 11643-1999 weights and the check character for each remainder mod 11.
RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK = "10X98765432"
_DIGITS = frozenset("0123456789")


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def check_uscc(value) -> bool:
    """True for an 18-character unified social credit code whose check character
    is right (GB 32100-2015). Upper case only, as printed on the licence."""
    if not isinstance(value, str) or len(value) != 18:
        return False
    if any(c not in USCC_ALPHABET for c in value):
        return False
    return uscc_check_char(value[:17]) == value[17]


def resident_id_check_char(first17: str) -> str:
    """The 18th character of a resident identity number."""
    total = sum(int(c) * w for c, w in zip(first17, RESIDENT_ID_WEIGHTS))
    return RESIDENT_ID_CHECK[total % 11]


def check_resident_id(value) -> bool:
    """True for an 18-character resident identity number (GB 11643-1999) with a
    real birth date and the right check character (0-9 or upper-case X)."""
    if not isinstance(value, str) or len(value) != 18:
        return False
    body = value[:17]
    if any(c not in _DIGITS for c in body):
        return False
    try:
        dt.date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return False
    return resident_id_check_char(body) == value[17]


NAMED_CHECKS = {
    "uscc": (check_uscc, Label(
        zh="不是有效的统一社会信用代码（18 位，末位为校验码）",
        en="is not a valid unified social credit code (18 characters, the last one a check character)")),
    "resident_id": (check_resident_id, Label(
        zh="不是有效的居民身份证号码（18 位，含出生日期和校验码）",
        en="is not a valid resident ID number (18 characters with a birth date and a check character)")),
}
