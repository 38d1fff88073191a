"""Enterprise size by the MIIT 2011/300 table kept in settings."""
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from danbao.engines.enterprise_size import classify, industry_row
from wfhelpers import WfWorld, core_build, make_uscc

ORDER = ("micro", "small", "medium", "large")


def table():
    meta, _ = core_build()
    return meta, meta.setting("enterprise_size_table")


def parents(meta):
    return {i.code: i.parent for i in meta.codelists["industry_gb4754"].items}.get


@pytest.mark.parametrize("staff, revenue, size", [
    (1000, 40000, "large"), (300, 2000, "medium"), (299, 40000, "small"), (20, 300, "small"),
    (19, 100000, "micro"), (500, 299, "micro")])
def test_industrial_thresholds_from_the_rule(staff, revenue, size):
    meta, t = table()
    row = industry_row(t, "13", parents(meta))            # 农副食品加工业, in section C
    assert classify(row, {"staff": staff, "revenue": revenue}) == size


def test_a_division_finds_its_section_row_and_unknown_codes_the_fallback():
    meta, t = table()
    assert industry_row(t, "C", parents(meta)) is industry_row(t, "13", parents(meta))
    assert not industry_row(t, "ZZ", parents(meta)).get("industries")


@given(st.sampled_from(["01", "13", "47", "51", "52", "65", "71", "90"]),
       st.integers(0, 5000), st.integers(0, 500000), st.integers(0, 500), st.integers(0, 50000))
def test_more_staff_or_revenue_never_makes_a_company_smaller(code, staff, revenue, more_staff, more_revenue):
    meta, t = table()
    row = industry_row(t, code, parents(meta))
    small = classify(row, {"staff": staff, "revenue": Decimal(revenue)})
    big = classify(row, {"staff": staff + more_staff, "revenue": Decimal(revenue + more_revenue)})
    assert ORDER.index(big) >= ORDER.index(small)


def test_saving_a_company_classifies_it(database_url):
    w = WfWorld(database_url)
    try:
        c = w.records().create("corporate_customer", {"name": "苏州精工机械有限公司", "uscc": make_uscc(901),
                                                      "industry": "34", "employees": 120, "annual_revenue": "8500"})
        assert c.enterprise_size == "small"
        c = w.records().update("corporate_customer", c.id, {"employees": 320, "annual_revenue": "26000"},
                               expected_version=c.version)
        assert c.enterprise_size == "medium"
        bare = w.records().create("corporate_customer", {"name": "无数据公司", "uscc": make_uscc(902),
                                                         "enterprise_size": "small"})
        assert bare.enterprise_size == "small"          # nothing to judge by: left as entered
        # construction (48) is sized by revenue and total assets, both reached (万元): CNY 900m
        # revenue with CNY 40m assets is only small; with CNY 900m assets it is large
        build = w.records().create("corporate_customer", {"name": "江苏建工集团有限公司", "uscc": make_uscc(903),
                                                          "industry": "48", "annual_revenue": "90000",
                                                          "total_assets": "4000"})
        assert build.enterprise_size == "small"         # assets 4000 < 5000 for medium, ≥ 300 for small
        build = w.records().update("corporate_customer", build.id, {"total_assets": "90000"},
                                   expected_version=build.version)
        assert build.enterprise_size == "large"
    finally:
        w.s.close()
        w.engine.dispose()
