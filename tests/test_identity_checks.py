"""Identity checks to the letter of their standards (issue 15).

Properties: values built as each standard builds them pass; every single-character
change and every swap of neighbours fails with the code of the part it broke;
each wrong region, department, date or check character fails with its code;
the ways people type valid values (lower case, groups, full width) pass once the
field's normalisations ran. Then a table of published examples per ID type.
Today is frozen: nothing here reads the calendar.
"""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from danbao.checks import NAMED_CHECKS, gb2260, resident, run_check, uscc
from danbao.checks.normalize import apply as normalized
from danbao.engines.coerce import FieldError, coerce_value
from danbao.meta.model import FieldMeta, Label

TODAY = dt.date(2025, 6, 1)
DIGITS = "0123456789"
#: Every character a change may bring in: digits, capitals (with I O S V Z), a few others.
ANY_CHAR = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "x-*"
COUNTIES = sorted(c for c in gb2260.periods() if gb2260.is_county(c) and gb2260.current(c))
REGIONS = sorted(gb2260.periods())


def code_of(check: str, value: str) -> str | None:
    failure = NAMED_CHECKS[check].failure(value, TODAY)
    return failure.code if failure else None


def changes(value: str):
    """Every single-character change of ``value``: (position, new value)."""
    for i, old in enumerate(value):
        for c in ANY_CHAR:
            if c != old:
                yield i, value[:i] + c + value[i + 1:]


def swaps(value: str):
    for i in range(len(value) - 1):
        if value[i] != value[i + 1]:
            yield i, value[:i] + value[i + 1] + value[i] + value[i + 2:]


# -- resident IDs and the numbers built like them ----------------------------------------------
births = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY)
resident_ids = st.builds(lambda region, born, seq: resident.build(region, born, seq),
                         st.sampled_from(COUNTIES), births, st.integers(0, 999))


def _resident_expected(i: int, new: str) -> set[str]:
    """The codes a change at position ``i`` of an 18-digit ID may give."""
    if i < 17 and new[i] not in DIGITS or i == 17 and new[i] not in DIGITS + "X":
        return {"ID001"}
    if i < 6:
        return {"ID002", "ID004"}
    if i < 14:
        return {"ID003", "ID002", "ID004"}   # a later birth year may outlive a retired region
    return {"ID004"}


@settings(max_examples=60, deadline=None)
@given(resident_ids)
def test_resident_id_built_by_the_standard_passes_and_every_change_fails(value):
    assert code_of("resident_id", value) is None
    for i, changed in changes(value):
        assert code_of("resident_id", changed) in _resident_expected(i, changed), (value, changed)
    for i, swapped in swaps(value):
        assert code_of("resident_id", swapped) in (_resident_expected(i, swapped) | _resident_expected(i + 1, swapped))


@settings(max_examples=60, deadline=None)
@given(resident_ids, st.sampled_from(["000000", "700000", "704339", "838196", "110000", "320500", "990101", "810000"]))
def test_resident_id_wrong_region(value, region):
    assert code_of("resident_id", resident.build(region, TODAY.replace(year=1990), 1)) == "ID002"


@pytest.mark.parametrize("born", ["00010101", "18000101", "18991231", "20250602", "20271201", "19900230", "19901301"])
def test_resident_id_wrong_birth_date(born):
    body = "110101" + born + "001"
    assert code_of("resident_id", body + resident.check_char(body)) == "ID003"


@settings(max_examples=60, deadline=None)
@given(resident_ids, st.sampled_from("0123456789X"))
def test_resident_id_wrong_check_character(value, last):
    if last != value[17]:
        assert code_of("resident_id", value[:17] + last) == "ID004"


def test_a_retired_county_stays_valid_for_those_born_while_it_existed():
    assert code_of("resident_id", resident.build("132234", dt.date(1990, 1, 1), 1)) is None   # 平乡县, until 1993
    assert code_of("resident_id", resident.build("132234", dt.date(1995, 1, 1), 1)) == "ID002"
    assert code_of("resident_id", resident.build("659012", dt.date(2023, 5, 1), 2)) is None   # 白杨市, 2022


@pytest.mark.parametrize("check, regions", [("hk_macao_residence_permit", ["810000", "820000"]),
                                            ("taiwan_residence_permit", ["830000"])])
@settings(max_examples=30, deadline=None)
@given(born=births, seq=st.integers(0, 999), data=st.data())
def test_residence_permits(check, regions, born, seq, data):
    value = resident.build(data.draw(st.sampled_from(regions)), born, seq)
    assert code_of(check, value) is None
    assert code_of("resident_id", value) == "ID002"     # not a county: a permit is not a resident ID
    for i, changed in changes(value):
        assert code_of(check, changed) in _resident_expected(i, changed) | {"ID002"}
    for i, swapped in swaps(value):
        assert code_of(check, swapped) is not None
    other = next(r for r in ("110101", "810000", "830000") if r not in regions)
    assert code_of(check, resident.build(other, born, seq)) == "ID002"


@settings(max_examples=40, deadline=None)
@given(province=st.sampled_from(sorted({c[:2] for c in COUNTIES})), nation=st.integers(1, 999),
       born=births, seq=st.integers(0, 999))
def test_permanent_residence_2023(province, nation, born, seq):
    body = f"9{province}{nation:03d}{born:%Y%m%d}{seq:03d}"
    value = body + resident.check_char(body)
    assert code_of("permanent_residence", value) is None
    for _, changed in changes(value):
        assert code_of("permanent_residence", changed) is not None
    for _, swapped in swaps(value):
        assert code_of("permanent_residence", swapped) is not None
    assert code_of("permanent_residence", "8" + value[1:]) == "ID002"
    assert code_of("permanent_residence", value[:17] + ("0" if value[17] != "0" else "1")) == "ID004"


def test_permanent_residence_2004():
    assert code_of("permanent_residence", "USA316903150011") is None
    assert code_of("permanent_residence", "USA996903150011") == "ID002"
    assert code_of("permanent_residence", "USA311302300011") == "ID003"
    assert code_of("permanent_residence", "US1316903150011") == "ID001"


def test_old_15_digit_ids_are_converted_or_refused_with_their_18_digit_form():
    value, failure = run_check("resident_id", "110105491231002", TODAY)
    assert failure.code == "ID007" and "11010519491231002X" in failure.message.en
    assert run_check("resident_id", "110105491231002", TODAY, ("resident_id_15_to_18",)) == ("11010519491231002X", None)
    # a 15-digit passport number is never rewritten
    assert run_check("passport", "123456789012345", TODAY, ("resident_id_15_to_18",)) == ("123456789012345", None)


# -- credit codes --------------------------------------------------------------------------------
prefixes = st.sampled_from(sorted(d + t for d, types in uscc.DEPARTMENTS.items() for t in types))
org_bodies = st.text(alphabet=uscc.ALPHABET, min_size=8, max_size=8)
credit_codes = st.builds(uscc.build, prefixes, st.sampled_from(REGIONS + [uscc.NATIONAL]), org_bodies)


def _uscc_expected(i: int, new: str) -> set[str]:
    if new[i] not in uscc.ALPHABET:
        return {"ID001"}
    part = "ID006" if i < 2 else "ID002" if i < 8 else "ID005" if i < 17 else "ID004"
    return {part, "ID004"} if i < 16 else {"ID005", "ID004"} if i == 16 else {"ID004"}


@settings(max_examples=60, deadline=None)
@given(credit_codes)
def test_uscc_built_by_the_standard_passes_and_every_change_fails(value):
    assert code_of("uscc", value) is None
    for i, changed in changes(value):
        assert code_of("uscc", changed) in _uscc_expected(i, changed), (value, changed)
    for i, swapped in swaps(value):
        assert code_of("uscc", swapped) in _uscc_expected(i, swapped) | _uscc_expected(i + 1, swapped)


@settings(max_examples=40, deadline=None)
@given(prefixes, org_bodies, st.sampled_from(["000000", "999999", "43052M", "700000", "12345A"]))
def test_uscc_wrong_region(prefix, org, region):
    assert code_of("uscc", uscc.build(prefix, region, org)) == "ID002"


@settings(max_examples=40, deadline=None)
@given(org_bodies, st.sampled_from(["10", "28", "94", "99", "Y2", "Y9", "B1", "01", "A3", "N4"]))
def test_uscc_wrong_department_or_type(org, prefix):
    assert code_of("uscc", uscc.build(prefix, "320505", org)) == "ID006"


@settings(max_examples=40, deadline=None)
@given(prefixes, org_bodies, st.sampled_from("0123456789X"))
def test_uscc_wrong_organisation_code(prefix, org, c9):
    if c9 != uscc.org_check_char(org):
        body = prefix + "320505" + org + c9
        assert code_of("uscc", body + uscc.check_char(body)) == "ID005"


def test_uscc_letter_in_the_region_with_a_recomputed_check_character():
    assert code_of("uscc", "3143052MJ0Y3WJC73N") == "ID002"


# -- passports and travel permits (formats only: no check character to recompute) -------------
FORMATS = {"passport_cn": r"(E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|G[0-9]{8})", "passport": r"[A-Z0-9]{5,20}",
           "hk_macao_permit": r"[HM]([0-9]{8}|[0-9]{10})", "taiwan_permit": r"([0-9]{8}|[0-9]{10})"}


@pytest.mark.parametrize("check", sorted(FORMATS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_travel_documents(check, data):
    value = data.draw(st.from_regex(FORMATS[check], fullmatch=True))
    assert code_of(check, value) is None
    for bad in (value + "1" * 21, value[:3], "*" + value[1:], "Ｅ" + value[1:]):
        assert code_of(check, bad) in ("ID001", "ID008")
    if check != "passport":
        assert code_of(check, value[:1] + "I" + value[2:]) == "ID001"


# -- normalisation ---------------------------------------------------------------------------------
def _field(check: str, rules=("halfwidth", "strip_separators", "upper", "resident_id_15_to_18")) -> FieldMeta:
    return FieldMeta(name="id_no", type="string", label=Label("证件号码", "ID number"), max_length=20,
                     check=check, normalize=tuple(rules))


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@st.composite
def typed(draw, value):
    """``value`` as someone might type it: groups, lower case, full width."""
    text = value
    if draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(1, len(text) - 1), max_size=4, unique=True)), reverse=True)
        for cut in cuts:
            text = text[:cut] + draw(st.sampled_from([" ", "-", "  ", "\u3000", "－"])) + text[cut:]
    if draw(st.booleans()):
        text = text.lower()
    if draw(st.booleans()):
        text = _full_width(text)
    return text


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_normalised_forms_of_valid_values_pass_and_are_stored_normalised(data):
    check, value = data.draw(st.sampled_from([("resident_id", resident_ids), ("uscc", credit_codes)]))
    value = data.draw(value)
    raw = data.draw(typed(value))
    assert coerce_value(_field(check), raw, today=TODAY) == value


def test_without_normalisation_the_message_says_what_is_wrong():
    plain = _field("uscc", ())
    with pytest.raises(FieldError) as err:
        coerce_value(plain, "９１３２０５０５ＭＡ１Ｘ２Ｙ３Ｎ４Ｐ", today=TODAY)
    assert err.value.code == "ID008" and "full-width" in err.value.message.en
    with pytest.raises(FieldError) as err:
        coerce_value(plain, "91350100m000100y43", today=TODAY)
    assert err.value.code == "ID001" and "capitals" in err.value.message.en
    with pytest.raises(FieldError) as err:
        coerce_value(plain, "91 3501 00M0 00100Y43", today=TODAY)
    assert "(got 21)" in err.value.message.en      # no strip_separators: the spaces count
    assert coerce_value(_field("uscc"), "91 3501 00m0-00100y43", today=TODAY) == "91350100M000100Y43"


def test_normalisations_run_in_a_fixed_order():
    assert normalized(("upper", "halfwidth", "strip_separators"), "ｅ１２３４ ５６７８－") == "E12345678"


# -- published examples ----------------------------------------------------------------------------
EXAMPLES = [
    # GB 11643-1999 and the issue
    ("resident_id", "11010519491231002X", None),
    ("resident_id", "440524188001010014", "ID003"),     # the standard's own example: born 1880, before 1900
    ("resident_id", "000000199001010018", "ID002"),
    ("resident_id", "704339192805065195", "ID002"),     # no province 70
    ("resident_id", "838196196803020169", "ID002"),
    ("resident_id", "110101202712010016", "ID003"),     # born in the future
    ("resident_id", "132234199001010013", None),        # 平乡县, retired 1993
    ("resident_id", "110105491231002", "ID007"),        # the old 15-digit form
    ("resident_id", "11010519491231002x", "ID001"),     # lower-case x (the core pack upper-cases it)
    # 港澳台居民居住证 specimen numbers
    ("hk_macao_residence_permit", "810000199408230021", None),
    ("taiwan_residence_permit", "830000199201300022", None),
    ("hk_macao_residence_permit", "830000199201300022", "ID002"),
    # 外国人永久居留身份证
    ("permanent_residence", "911524198701020037", "ID004"),
    # GB 32100-2015 (examples of python-stdnum's documentation) and the issue
    ("uscc", "91350100M000100Y43", None),
    ("uscc", "91110000600037341L", None),
    ("uscc", "3143052MJ0Y3WJC73N", "ID002"),
    ("uscc", "91350100M000100Y44", "ID004"),
    ("uscc", "91350100M000100I43", "ID001"),
    # passports and permits by format
    ("passport_cn", "E12345678", None), ("passport_cn", "EA1234567", None), ("passport_cn", "G12345678", None),
    ("passport_cn", "EI1234567", "ID001"), ("passport_cn", "D1234567", "ID001"),
    ("passport", "X12345678", None), ("passport", "C01X00T47", None), ("passport", "1234", "ID001"),
    ("hk_macao_permit", "H12345678", None), ("hk_macao_permit", "M1234567801", None),
    ("hk_macao_permit", "C12345678", "ID001"),
    ("taiwan_permit", "12345678", None), ("taiwan_permit", "1234567890", None), ("taiwan_permit", "T1234567", "ID001"),
]


@pytest.mark.parametrize("check, value, code", EXAMPLES)
def test_published_examples(check, value, code):
    assert code_of(check, value) == code


def test_every_message_names_the_kind_of_number_in_both_languages():
    for check, value, code in EXAMPLES:
        failure = NAMED_CHECKS[check].failure(value, TODAY)
        if failure:
            assert "：" in failure.message.zh and ": " in failure.message.en


def test_the_region_data_names_its_edition_and_source():
    head = gb2260.DATA.read_text(encoding="utf-8").split("\n", 12)[:12]
    assert any("Edition" in line for line in head) and any("Source" in line for line in head)
    assert gb2260.periods()["132234"][-1].end == 1993 and gb2260.current("659012").name == "白杨市"
