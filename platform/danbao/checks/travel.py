"""Passports and travel permits, checked by their published formats (none has a
check character a reader can recompute).

- 中华人民共和国普通护照: E + 8 digits (2012 e-passport), E + a letter other
  than I or O + 7 digits (since the E-digit numbers ran out), G + 8 digits (2007–2012).
- 外国护照: 5–20 letters and digits (ICAO 9303 allows up to 9 on the data page;
  national booklets print longer numbers).
- 港澳居民来往内地通行证: H (Hong Kong) or M (Macao) + 8 digits (2013 card),
  + 10 digits on the older booklet.
- 台湾居民来往大陆通行证: 8 digits (2015 card), 10 digits on the older booklet.
"""
from __future__ import annotations

import datetime as dt
import re

from danbao.checks.base import FORMAT, Failure, fail
from danbao.meta.model import Label

PASSPORT_CN = Label(zh="中国护照号码", en="Chinese passport number")
PASSPORT = Label(zh="护照号码", en="passport number")
HK_MACAO_PERMIT = Label(zh="港澳居民来往内地通行证号码", en="HK/Macao home-return permit number")
TAIWAN_PERMIT = Label(zh="台湾居民来往大陆通行证号码", en="Taiwan compatriot permit number")

PATTERNS = {
    "passport_cn": r"^(E\d{8}|E[A-HJ-NP-Z]\d{7}|G\d{8})$",
    "passport": r"^[A-Z0-9]{5,20}$",
    "hk_macao_permit": r"^[HM](\d{8}|\d{10})$",
    "taiwan_permit": r"^(\d{8}|\d{10})$",
}


def _matches(name: str, value: str, what: Label, zh: str, en: str) -> Failure | None:
    if re.fullmatch(PATTERNS[name][1:-1], value, re.ASCII):
        return None
    if value != value.upper() and re.fullmatch(PATTERNS[name][1:-1], value.upper(), re.ASCII):
        return fail(FORMAT, what, "字母应为大写", "letters must be capitals")
    return fail(FORMAT, what, f"格式应为{zh}", f"must be {en}")


def passport_cn(value: str, _today: dt.date | None = None) -> Failure | None:
    return _matches("passport_cn", value, PASSPORT_CN, " E 或 G 加 8 位数字，或 E 加字母加 7 位数字",
                    "E or G and 8 digits, or E, a letter and 7 digits")


def passport(value: str, _today: dt.date | None = None) -> Failure | None:
    return _matches("passport", value, PASSPORT, " 5–20 位字母或数字", "5 to 20 letters or digits")


def hk_macao_permit(value: str, _today: dt.date | None = None) -> Failure | None:
    return _matches("hk_macao_permit", value, HK_MACAO_PERMIT, " H 或 M 加 8 位数字（旧版 10 位）",
                    "H or M and 8 digits (10 on the older booklet)")


def taiwan_permit(value: str, _today: dt.date | None = None) -> Failure | None:
    return _matches("taiwan_permit", value, TAIWAN_PERMIT, " 8 位数字（旧版 10 位）",
                    "8 digits (10 on the older booklet)")
