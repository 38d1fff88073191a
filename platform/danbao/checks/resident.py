"""Resident identity numbers (GB 11643-1999) and the numbers built the same way:
the residence permits of Hong Kong, Macao and Taiwan residents (2018, region
810000 / 820000 / 830000) and the 2023 permanent residence ID of foreigners.

The 18th character is ISO 7064 MOD 11-2 over the first 17 digits, which catches
every single wrong digit and every swap of neighbours.
"""
from __future__ import annotations

import datetime as dt
import re

from danbao.checks import gb2260
from danbao.checks.base import (CHECK_CHAR, FORMAT, OLD_15, REGION, Failure, birth_date, fail,
                                letters_for_digits)
from danbao.meta.model import Label

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
_SHAPE = re.compile(r"\d{17}[\dX]", re.ASCII)

RESIDENT_ID = Label(zh="居民身份证号码", en="resident ID number")
HK_MACAO_RESIDENCE = Label(zh="港澳居民居住证号码", en="HK/Macao residence permit number")
TAIWAN_RESIDENCE = Label(zh="台湾居民居住证号码", en="Taiwan residence permit number")
PERMANENT_RESIDENCE = Label(zh="外国人永久居留身份证号码", en="foreigner's permanent residence ID number")
#: Region codes of the residence permits (not GB/T 2260 county codes).
PERMIT_REGIONS = {"810000": "香港", "820000": "澳门", "830000": "台湾"}


def check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS))
    return CHECK[total % 11]


def from_15(value: str) -> str | None:
    """The 18-digit form of an old 15-digit number (GB 11643-1999 §6): 19 before the
    two-digit year, then the check character. None when ``value`` is not 15 digits."""
    if len(value) != 15 or not value.isascii() or not value.isdigit():
        return None
    body = value[:6] + "19" + value[6:]
    return body + check_char(body)


def _shape(value: str, what: Label) -> Failure | None:
    bad = letters_for_digits(value, what, 18, "17 位数字加校验码", "17 digits and a check character")
    if bad:
        return bad
    if not _SHAPE.fullmatch(value):
        return fail(FORMAT, what, "前 17 位应为数字，末位为数字或 X", "the first 17 must be digits, the last a digit or X")
    return None


def _check_last(value: str, what: Label) -> Failure | None:
    want = check_char(value[:17])
    if value[17] != want:
        return fail(CHECK_CHAR, what, f"校验码应为 {want}，现为 {value[17]}",
                    f"the check character should be {want}, not {value[17]}")
    return None


def resident_id(value: str, today: dt.date) -> Failure | None:
    if len(value) == 15 and value.isascii() and value.isdigit():
        return fail(OLD_15, RESIDENT_ID, f"是 15 位旧号码，请换成 18 位：{from_15(value)}",
                    f"is an old 15-digit number: use its 18-digit form {from_15(value)}")
    bad = _shape(value, RESIDENT_ID)
    if bad:
        return bad
    born, bad = birth_date(value[6:14], RESIDENT_ID, today)
    if bad:
        return bad
    if not gb2260.is_county(value[:6], born.year):
        return fail(REGION, RESIDENT_ID, f"地址码 {value[:6]} 不是 GB/T 2260 县级行政区划代码",
                    f"region code {value[:6]} is not a county-level GB/T 2260 code")
    return _check_last(value, RESIDENT_ID)


def _residence_permit(value: str, today: dt.date, what: Label, regions: tuple[str, ...]) -> Failure | None:
    bad = _shape(value, what)
    if bad:
        return bad
    if value[:6] not in regions:
        shown = " / ".join(regions)
        return fail(REGION, what, f"前 6 位应为 {shown}，现为 {value[:6]}",
                    f"the first six digits must be {shown}, not {value[:6]}")
    _born, bad = birth_date(value[6:14], what, today)
    return bad or _check_last(value, what)


def hk_macao_residence_permit(value: str, today: dt.date) -> Failure | None:
    return _residence_permit(value, today, HK_MACAO_RESIDENCE, ("810000", "820000"))


def taiwan_residence_permit(value: str, today: dt.date) -> Failure | None:
    return _residence_permit(value, today, TAIWAN_RESIDENCE, ("830000",))


def permanent_residence_2023(value: str, today: dt.date) -> Failure | None:
    """9, the province of application (2 digits), the nationality (3 digits,
    GB/T 2659), birth date, sequence and the GB 11643 check character."""
    bad = _shape(value, PERMANENT_RESIDENCE)
    if bad:
        return bad
    if value[0] != "9" or not gb2260.is_province(value[1:3]):
        return fail(REGION, PERMANENT_RESIDENCE, f"应以 9 加受理地省级代码开头，现为 {value[:3]}",
                    f"must start with 9 and a province code, not {value[:3]}")
    _born, bad = birth_date(value[6:14], PERMANENT_RESIDENCE, today)
    return bad or _check_last(value, PERMANENT_RESIDENCE)


_OLD_PR = re.compile(r"[A-Z]{3}\d{12}", re.ASCII)


def permanent_residence_2004(value: str, today: dt.date) -> Failure | None:
    """The 15-character card (2004, 2017 edition): nationality (3 letters, ISO 3166
    alpha-3), province of application (2 digits), birth date YYMMDD, sequence (3)
    and a check digit whose rule is not published, so it is not recomputed here."""
    bad = letters_for_digits(value, PERMANENT_RESIDENCE, 15, "3 位国籍字母加 12 位数字",
                             "3 nationality letters and 12 digits")
    if bad:
        return bad
    if not _OLD_PR.fullmatch(value):
        return fail(FORMAT, PERMANENT_RESIDENCE, "应为 3 位国籍字母加 12 位数字",
                    "must be 3 nationality letters and 12 digits")
    if not gb2260.is_province(value[3:5]):
        return fail(REGION, PERMANENT_RESIDENCE, f"受理地代码 {value[3:5]} 不是省级行政区划代码",
                    f"place of application {value[3:5]} is not a province code")
    yymmdd = value[5:11]
    tried = [birth_date(century + yymmdd, PERMANENT_RESIDENCE, today) for century in ("19", "20")]
    if all(bad for _born, bad in tried):
        return tried[0][1]      # 19YY is never early or late: the date itself is wrong
    return None


def permanent_residence(value: str, today: dt.date) -> Failure | None:
    """Either form: the 2023 18-digit number or the older 15-character one."""
    if len(value) == 15:
        return permanent_residence_2004(value, today)
    if len(value) != 18:
        return fail(FORMAT, PERMANENT_RESIDENCE, f"应为 18 位（2023 版）或 15 位（旧版），现为 {len(value)} 位",
                    f"must be 18 characters (2023 card) or 15 (older card), got {len(value)}")
    return permanent_residence_2023(value, today)


def build(region: str, born: dt.date, seq: int) -> str:
    """An 18-digit number as GB 11643 constructs it (``seq``: 0–999, odd for men)."""
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + check_char(body)
