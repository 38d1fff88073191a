"""Named checks a field can declare with ``check:`` (or choose by another field with
``check_by:``); the record service, the forms, imports and the REST API all run them.

Each check follows one national standard and, for a bad value, says which part
is wrong with a stable code (ID001 format … ID008 full-width; see
``metadata/README.md``). The loader refuses any other name.
"""
from __future__ import annotations

import datetime as dt

from danbao.checks import resident, travel, uscc as _uscc
from danbao.checks.base import Failure, NamedCheck
from danbao.checks.normalize import CHECK_RULES
from danbao.meta.model import Label

_ID18 = r"^\d{17}[\dX]$"

NAMED_CHECKS: dict[str, NamedCheck] = {c.name: c for c in (
    NamedCheck("uscc", Label(zh="统一社会信用代码（GB 32100）", en="unified social credit code (GB 32100)"),
               _uscc.uscc, _uscc.PATTERN),
    NamedCheck("resident_id", Label(zh="居民身份证号码（GB 11643）", en="resident ID number (GB 11643)"),
               resident.resident_id, _ID18),
    NamedCheck("hk_macao_residence_permit", Label(zh="港澳居民居住证号码", en="HK/Macao residence permit number"),
               resident.hk_macao_residence_permit, r"^8[12]0000\d{11}[\dX]$"),
    NamedCheck("taiwan_residence_permit", Label(zh="台湾居民居住证号码", en="Taiwan residence permit number"),
               resident.taiwan_residence_permit, r"^830000\d{11}[\dX]$"),
    NamedCheck("permanent_residence", Label(zh="外国人永久居留身份证号码", en="foreigner's permanent residence ID"),
               resident.permanent_residence, r"^(9\d{16}[\dX]|[A-Z]{3}\d{12})$"),
    NamedCheck("passport_cn", Label(zh="中国护照号码", en="Chinese passport number"),
               travel.passport_cn, travel.PATTERNS["passport_cn"]),
    NamedCheck("passport", Label(zh="护照号码", en="passport number"), travel.passport, travel.PATTERNS["passport"]),
    NamedCheck("hk_macao_permit", Label(zh="港澳居民来往内地通行证号码", en="HK/Macao home-return permit number"),
               travel.hk_macao_permit, travel.PATTERNS["hk_macao_permit"]),
    NamedCheck("taiwan_permit", Label(zh="台湾居民来往大陆通行证号码", en="Taiwan compatriot permit number"),
               travel.taiwan_permit, travel.PATTERNS["taiwan_permit"]),
)}


def local_today() -> dt.date:
    """Today in DANBAO_TIMEZONE, for callers that have no clock of their own."""
    from danbao.config import local_tz
    return dt.datetime.now(local_tz()).date()


def run_check(name: str, value: str, today: dt.date, rules=()) -> tuple[str, Failure | None]:
    """Apply the check-dependent normalisations ``rules`` declares, then check ``name``:
    (the value to store, None) or (value, the failure)."""
    if "resident_id_15_to_18" in rules and CHECK_RULES["resident_id_15_to_18"] == name:
        value = resident.from_15(value) or value
    return value, NAMED_CHECKS[name].failure(value, today)


# -- the older boolean helpers (demo data, tests, benchmarks) ---------------------------------------
uscc_check_char = _uscc.check_char
org_check_char = _uscc.org_check_char
resident_id_check_char = resident.check_char
USCC_ALPHABET = _uscc.ALPHABET


def check_uscc(value, today: dt.date | None = None) -> bool:
    return NAMED_CHECKS["uscc"].passes(value, today or local_today())


def check_resident_id(value, today: dt.date | None = None) -> bool:
    return NAMED_CHECKS["resident_id"].passes(value, today or local_today())
