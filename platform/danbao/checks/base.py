"""What a named check returns, and the pieces every identity check shares.

A check never raises for bad input: it returns None when the value passes or a
``Failure`` whose ``code`` says which part is wrong (the table is in
``metadata/README.md``) and whose message names that part in zh and en.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from danbao.meta.model import Label

#: Stable codes: which part of an identity number is wrong.
FORMAT, REGION, BIRTH_DATE, CHECK_CHAR, ORG_CODE, DEPARTMENT, OLD_15, FULL_WIDTH = (
    "ID001", "ID002", "ID003", "ID004", "ID005", "ID006", "ID007", "ID008")

#: Numbers are issued to living people; nobody with an identity number was born
#: before 1900 (the 15-digit form even implied the century 19xx), so an earlier
#: year is a typing mistake (0001, 1800), not a real birth date.
EARLIEST_BIRTH = dt.date(1900, 1, 1)


@dataclass(frozen=True)
class Failure:
    code: str
    message: Label


def fail(code: str, what: Label, zh: str, en: str) -> Failure:
    """A failure whose message starts with the kind of number (``居民身份证号码：…``)."""
    return Failure(code, Label(zh=f"{what.zh}：{zh}", en=f"{what.en}: {en}"))


@dataclass(frozen=True)
class NamedCheck:
    """A check a field can name. ``pattern``: the shape of a normalised valid value
    (the OpenAPI schema shows it); ``label``: what kind of number it is."""
    name: str
    label: Label
    run: Callable[[str, dt.date], Failure | None]
    pattern: str

    def failure(self, value, today: dt.date) -> Failure | None:
        if not isinstance(value, str):
            return fail(FORMAT, self.label, "应为文本", "must be text")
        if any(is_full_width(c) for c in value):
            return fail(FULL_WIDTH, self.label, "含有全角字符，请用半角输入（如 Ａ→A、１→1）",
                        "contains full-width characters: type them half-width (Ａ→A, １→1)")
        return self.run(value, today)

    def passes(self, value, today: dt.date) -> bool:
        return self.failure(value, today) is None


def is_full_width(char: str) -> bool:
    """A full-width form of an ASCII character (U+FF01–U+FF5E) or the ideographic space."""
    return "\uff01" <= char <= "\uff5e" or char == "\u3000"


def birth_date(text: str, what: Label, today: dt.date) -> tuple[dt.date | None, Failure | None]:
    """The date of ``YYYYMMDD``, or why it cannot be a holder's birth date."""
    try:
        born = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None, fail(BIRTH_DATE, what, f"出生日期 {text} 不是有效日期", f"birth date {text} is not a real date")
    if born < EARLIEST_BIRTH:
        return None, fail(BIRTH_DATE, what, f"出生日期 {born.isoformat()} 早于 1900 年",
                          f"birth date {born.isoformat()} is before 1900")
    if born > today:
        return None, fail(BIRTH_DATE, what, f"出生日期 {born.isoformat()} 晚于今天",
                          f"birth date {born.isoformat()} is in the future")
    return born, None


def letters_for_digits(value: str, what: Label, length: int, shape_zh: str, shape_en: str) -> Failure | None:
    """The length and character-set error shared by the fixed-length numbers."""
    if len(value) != length:
        return fail(FORMAT, what, f"应为 {length} 位（{shape_zh}），现为 {len(value)} 位",
                    f"must be {length} characters ({shape_en}), got {len(value)}")
    if value != value.upper():
        return fail(FORMAT, what, "字母应为大写", "letters must be capitals")
    return None
