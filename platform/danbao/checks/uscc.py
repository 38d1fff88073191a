"""Unified social credit codes (统一社会信用代码, GB 32100-2015).

Position 1 is the registration department and 2 the organisation type (the
standard's table A.1), 3–8 the GB/T 2260 code of the registering authority,
9–17 the organisation code of GB 11714-1997 with its own MOD 11 check
character, and 18 a MOD 31 check character over the first 17.
"""
from __future__ import annotations

import datetime as dt

from danbao.checks import gb2260
from danbao.checks.base import (CHECK_CHAR, DEPARTMENT, FORMAT, ORG_CODE, REGION, Failure, fail,
                                letters_for_digits)
from danbao.meta.model import Label

#: Digits and capitals without I, O, S, V, Z.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
#: GB 32100-2015 table A.1: registration department -> its organisation types.
DEPARTMENTS = {
    "1": "1239",     # 机构编制: 机关, 事业单位, 中央编办直管群众团体, 其他
    "2": "19",       # 外交: 外国常驻新闻机构, 其他
    "3": "123459",   # 司法行政: 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会, 其他
    "4": "19",       # 文化: 外国在华文化中心, 其他
    "5": "1239",     # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": "129",      # 旅游: 外国旅游部门常驻代表机构, 港澳台旅游部门常驻代表机构, 其他
    "7": "129",      # 宗教: 宗教活动场所, 宗教院校, 其他
    "8": "19",       # 工会: 基层工会, 其他
    "9": "123",      # 工商: 企业, 个体工商户, 农民专业合作社
    "A": "19",       # 中央军委改革和编制办公室: 军队事业单位, 其他
    "N": "1239",     # 农业: 组级, 村级, 乡镇级集体经济组织, 其他
    "Y": "1",        # 其他: 不再细分
}
#: Authorities of the whole country register with this code (not a GB/T 2260 unit).
NATIONAL = "100000"
USCC = Label(zh="统一社会信用代码", en="unified social credit code")
PATTERN = r"^[1-9ANY][1-9]\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"


def check_char(first17: str) -> str:
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS))
    return ALPHABET[(31 - total % 31) % 31]


def _org_value(c: str) -> int:
    return int(c) if c.isdigit() else ord(c) - ord("A") + 10


def org_check_char(first8: str) -> str:
    """GB 11714-1997: 11 minus the weighted sum mod 11; 10 is X and 11 is 0."""
    c = 11 - sum(_org_value(ch) * w for ch, w in zip(first8, ORG_WEIGHTS)) % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def uscc(value: str, _today: dt.date | None = None) -> Failure | None:
    bad = letters_for_digits(value, USCC, 18, "数字和大写字母", "digits and capital letters")
    if bad:
        return bad
    wrong = next((c for c in value if c not in ALPHABET), None)
    if wrong is not None:
        return fail(FORMAT, USCC, f"含有不可用的字符 {wrong}（不用 I、O、S、V、Z）",
                    f"contains {wrong!r}, which codes never use (no I, O, S, V, Z)")
    types = DEPARTMENTS.get(value[0])
    if types is None or value[1] not in types:
        return fail(DEPARTMENT, USCC, f"登记管理部门和机构类别代码 {value[:2]} 不在 GB 32100 代码表中",
                    f"registration department and organisation type {value[:2]} are not in the GB 32100 table")
    region = value[2:8]
    if not region.isdigit() or not (region == NATIONAL or gb2260.is_region(region)):
        return fail(REGION, USCC, f"登记管理机关行政区划码 {region} 不是 GB/T 2260 代码",
                    f"registration region {region} is not a GB/T 2260 code")
    want = org_check_char(value[8:16])
    if value[16] != want:
        return fail(ORG_CODE, USCC, f"组织机构代码 {value[8:17]} 的校验码应为 {want}",
                    f"organisation code {value[8:17]} should end in {want}")
    last = check_char(value[:17])
    if value[17] != last:
        return fail(CHECK_CHAR, USCC, f"校验码应为 {last}，现为 {value[17]}",
                    f"the check character should be {last}, not {value[17]}")
    return None


def build(prefix: str, region: str, org8: str) -> str:
    """The code the standard constructs: department and type, region, the organisation
    code ``org8`` with its GB 11714 check character, then the MOD 31 check character."""
    body = prefix + region + org8 + org_check_char(org8)
    return body + check_char(body)
