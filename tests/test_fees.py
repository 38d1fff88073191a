"""Guarantee fees: worked examples a finance officer can check by hand, and
properties that hold for any scheme, amount, term and start date."""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from danbao.engines.fees import (FREQUENCY_MONTHS, FeeError, Instalment, fee_schedule, fee_total,
                                 schedule_lines)
from danbao.expr.functions import fn_add_months
from danbao.meta.model import FeeSchemeMeta, FeeTier, Label, Meta, ProductMeta

L = Label("费", "fee")
START = dt.date(2026, 1, 15)


def scheme(**kw) -> FeeSchemeMeta:
    kw.setdefault("rate", D("0.02") if "tiers" not in kw and kw.get("basis") != "fixed" else None)
    return FeeSchemeMeta(code=kw.pop("code", "fee"), label=L, **kw)


LOAN_TIERS = (FeeTier(D(0), D(5_000_000), D("0.02")), FeeTier(D(5_000_000), D(20_000_000), D("0.018")),
              FeeTier(D(20_000_000), None, D("0.015")))


def amounts(schedule) -> list[str]:
    return [str(i.amount) for i in schedule]


# -- worked examples ------------------------------------------------------------------
def test_quarterly_annual_rate_is_four_equal_instalments():
    s = scheme(frequency="quarterly")
    assert fee_total(s, D("5000000"), 12) == D("100000.00")
    plan = fee_schedule(s, D("5000000"), 12, START)
    assert plan == [
        Instalment(dt.date(2026, 1, 15), dt.date(2026, 1, 15), dt.date(2026, 4, 15), D("25000.00")),
        Instalment(dt.date(2026, 4, 15), dt.date(2026, 4, 15), dt.date(2026, 7, 15), D("25000.00")),
        Instalment(dt.date(2026, 7, 15), dt.date(2026, 7, 15), dt.date(2026, 10, 15), D("25000.00")),
        Instalment(dt.date(2026, 10, 15), dt.date(2026, 10, 15), dt.date(2027, 1, 15), D("25000.00")),
    ]


def test_bases():
    assert fee_total(scheme(basis="annual_rate"), D("1000000"), 6) == D("10000.00")      # 2% × ½ year
    assert fee_total(scheme(basis="flat_rate"), D("1000000"), 6) == D("20000.00")        # 2% once
    assert fee_total(scheme(basis="fixed", amount=D("800")), D("1000000"), 6) == D("800.00")


def test_whole_tiers_change_rate_at_the_boundary():
    s = scheme(tiers=LOAN_TIERS, tier_mode="whole")
    assert fee_total(s, D("4999999.99"), 12) == D("100000.00")        # 2% (99 999.9998 rounded)
    assert fee_total(s, D("5000000.00"), 12) == D("90000.00")         # the next band: 1.8% of all of it
    assert fee_total(s, D("20000000.00"), 12) == D("300000.00")       # 1.5%
    # whole-amount tiers with falling rates are not monotone: a larger loan can pay less
    assert fee_total(s, D("5000000.00"), 12) < fee_total(s, D("4999999.99"), 12)


def test_progressive_tiers_charge_each_slice_at_its_rate():
    s = scheme(tiers=LOAN_TIERS, tier_mode="progressive")
    # 5 000 000 × 2% + 15 000 000 × 1.8% + 5 000 000 × 1.5%
    assert fee_total(s, D("25000000"), 12) == D("445000.00")
    assert fee_total(s, D("5000000"), 12) == D("100000.00")           # no slice in the second band
    assert fee_total(s, D("6000000"), 6) == D("59000.00")             # (100 000 + 18 000) × ½


def test_minimum_raises_and_maximum_lowers():
    s = scheme(minimum=D("3000"), maximum=D("50000"))
    assert fee_total(s, D("100000"), 3) == D("3000.00")               # 500.00 is below the minimum
    assert fee_total(s, D("1000000"), 12) == D("20000.00")
    assert fee_total(s, D("10000000"), 12) == D("50000.00")           # 200 000 capped
    # the minimum is spread over the instalments like any total
    assert amounts(fee_schedule(dataclasses.replace(s, frequency="monthly"), D("100000"), 3, START)) == \
        ["1000.00", "1000.00", "1000.00"]


def test_rounding_of_the_total():
    # 1 234 567.89 × 1.23% × 5 ÷ 12 = 6 327.1604…
    exact = D("1234567.89") * D("0.0123") * 5 / 12
    assert str(exact)[:9] == "6327.1604"
    assert fee_total(scheme(rate=D("0.0123")), D("1234567.89"), 5) == D("6327.16")
    assert fee_total(scheme(rate=D("0.0123"), rounding="ROUND_UP"), D("1234567.89"), 5) == D("6327.17")
    # a tie: 0.125 → half-up 0.13, half-even 0.12, down 0.12
    for rounding, want in (("ROUND_HALF_UP", "0.13"), ("ROUND_HALF_EVEN", "0.12"), ("ROUND_DOWN", "0.12")):
        assert fee_total(scheme(basis="flat_rate", rate=D("0.125"), rounding=rounding), D("1"), 1) == D(want)


def test_odd_cents_go_to_the_remainder_instalment():
    # 10 000 000.01 × 2% × 7 ÷ 12 = 116 666.6678… → 116 666.67 over 7 months
    s = scheme(frequency="monthly")
    assert fee_total(s, D("10000000.01"), 7) == D("116666.67")
    assert amounts(fee_schedule(s, D("10000000.01"), 7, START)) == ["16666.67"] * 6 + ["16666.65"]
    first = dataclasses.replace(s, remainder="first")
    assert amounts(fee_schedule(first, D("10000000.01"), 7, START)) == ["16666.65"] + ["16666.67"] * 6
    down = dataclasses.replace(s, rounding="ROUND_DOWN")
    assert amounts(fee_schedule(down, D("10000000.01"), 7, START)) == ["16666.66"] * 6 + ["16666.70"]
    # 10 000 000.01 quarterly for a year: 200 000.00 in four
    assert amounts(fee_schedule(scheme(frequency="quarterly"), D("10000000.01"), 12, START)) == ["50000.00"] * 4


def test_shorter_last_period_pays_for_its_months():
    plan = fee_schedule(scheme(frequency="quarterly"), D("6000000"), 7, START)   # 70 000.00 over 3 + 3 + 1
    assert amounts(plan) == ["30000.00", "30000.00", "10000.00"]
    assert [(i.period_from, i.period_to) for i in plan][-1] == (dt.date(2026, 7, 15), dt.date(2026, 8, 15))
    yearly = fee_schedule(scheme(frequency="yearly"), D("1000000"), 18, START)
    assert amounts(yearly) == ["20000.00", "10000.00"]


def test_month_end_start_is_clamped_not_drifting():
    plan = fee_schedule(scheme(frequency="monthly"), D("1200000"), 4, dt.date(2026, 1, 31))
    assert [i.due_on for i in plan] == [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31),
                                        dt.date(2026, 4, 30)]
    assert plan[-1].period_to == dt.date(2026, 5, 31)
    leap = fee_schedule(scheme(frequency="monthly"), D("1200000"), 2, dt.date(2028, 1, 31))
    assert leap[1].due_on == dt.date(2028, 2, 29)


def test_once_is_one_instalment_for_the_term():
    plan = fee_schedule(scheme(frequency="once"), D("3000000"), 9, START)
    assert plan == [Instalment(START, START, dt.date(2026, 10, 15), D("45000.00"))]


def test_tiny_total_never_gives_a_negative_instalment():
    """0.05 over 10 months, half-up: each share (0.005) rounds up to 0.01, so
    the last would be 0.05 − 0.09 = −0.04. The cents are shared by largest
    remainder instead: five of them, nearest the remainder end."""
    s = scheme(basis="fixed", amount=D("0.05"), frequency="monthly")
    assert amounts(fee_schedule(s, D("1"), 10, START)) == ["0.00"] * 5 + ["0.01"] * 5
    first = dataclasses.replace(s, remainder="first")
    assert amounts(fee_schedule(first, D("1"), 10, START)) == ["0.01"] * 5 + ["0.00"] * 5
    # uneven periods: the longer ones lost more and get the cents first
    q = scheme(basis="fixed", amount=D("0.03"), frequency="quarterly", rounding="ROUND_UP")
    assert amounts(fee_schedule(q, D("1"), 7, START)) == ["0.01", "0.01", "0.01"]
    q = scheme(basis="fixed", amount=D("0.02"), frequency="quarterly", rounding="ROUND_UP")
    assert amounts(fee_schedule(q, D("1"), 7, START)) == ["0.01", "0.01", "0.00"]


def test_zero_rate_gives_zero_instalments():
    plan = fee_schedule(scheme(rate=D(0), frequency="monthly"), D("5000000"), 3, START)
    assert amounts(plan) == ["0.00"] * 3


# -- a project's fee plan -----------------------------------------------------------------
def _meta(**schemes) -> Meta:
    return Meta(packs=(), entities={}, codelists={}, roles={}, menus={}, digest="x" * 64,
                fee_schemes={code: dataclasses.replace(s, code=code) for code, s in schemes.items()})


def _product(**kw) -> ProductMeta:
    return ProductMeta(code=kw.pop("code", "bank_loan"), label=Label("银行贷款担保", "Bank loan guarantee"),
                       entity="guarantee_project", category="financing", **kw)


def test_schedule_lines_guarantee_fee_review_fee_and_deposit():
    meta = _meta(loan=scheme(frequency="quarterly", minimum=D("3000")),
                 review=scheme(basis="flat_rate", rate=D("0.005")))
    product = _product(fee_scheme="loan", review_fee="review", deposit_rate=D("0.10"))
    lines = schedule_lines(product, meta, D("5000000.05"), 6, START)
    end = dt.date(2026, 7, 15)
    assert lines == [
        {"kind": "guarantee_fee", "due_on": START, "period_from": START, "period_to": dt.date(2026, 4, 15),
         "amount": D("25000.00")},
        {"kind": "review_fee", "due_on": START, "period_from": START, "period_to": end, "amount": D("25000.00")},
        {"kind": "deposit", "due_on": START, "period_from": START, "period_to": end, "amount": D("500000.01")},
        {"kind": "guarantee_fee", "due_on": dt.date(2026, 4, 15), "period_from": dt.date(2026, 4, 15),
         "period_to": end, "amount": D("25000.00")},
    ]
    assert sum(line["amount"] for line in lines if line["kind"] == "guarantee_fee") == \
        fee_total(meta.fee_schemes["loan"], D("5000000.05"), 6)


def test_schedule_lines_project_rate_replaces_the_scheme_rate():
    meta = _meta(loan=scheme(tiers=LOAN_TIERS, frequency="once", minimum=D("3000")))
    product = _product(fee_scheme="loan")
    assert [line["amount"] for line in schedule_lines(product, meta, D("5000000"), 12, START)] == [D("90000.00")]
    assert [line["amount"] for line in schedule_lines(product, meta, D("5000000"), 12, START, rate=D("0.025"))] \
        == [D("125000.00")]
    assert [line["amount"] for line in schedule_lines(product, meta, D("100000"), 12, START, rate=D("0.01"))] \
        == [D("3000.00")]                                                    # the minimum still applies


def test_schedule_lines_project_deposit_rate_replaces_the_products():
    meta = _meta(loan=scheme(frequency="once"))
    product = _product(fee_scheme="loan", deposit_rate=D("0.10"))
    deposits = [line["amount"] for line in schedule_lines(product, meta, D("1000000"), 12, START,
                                                          deposit_rate=D("0.2")) if line["kind"] == "deposit"]
    assert deposits == [D("200000.00")]
    assert [line["kind"] for line in schedule_lines(product, meta, D("1000000"), 12, START, deposit_rate=D(0))] \
        == ["guarantee_fee"]


def test_schedule_lines_without_review_fee_or_deposit():
    meta = _meta(loan=scheme(frequency="yearly"))
    lines = schedule_lines(_product(fee_scheme="loan", deposit_rate=D(0)), meta, D("1000000"), 24, START)
    assert [(line["kind"], line["amount"]) for line in lines] == [("guarantee_fee", D("20000.00"))] * 2


# -- refusals ----------------------------------------------------------------------------
@pytest.mark.parametrize("amount", [D(0), D("-1"), D("NaN"), D("Infinity"), 1.5, "100", None, True])
def test_impossible_amounts_are_refused(amount):
    with pytest.raises(FeeError) as err:
        fee_total(scheme(), amount, 12)
    assert err.value.message.zh and err.value.message.en


@pytest.mark.parametrize("term", [0, -3, 1201, 1.0, True, None, "12"])
def test_impossible_terms_are_refused(term):
    with pytest.raises(FeeError):
        fee_schedule(scheme(), D("1000"), term, START)


@pytest.mark.parametrize("start", [dt.datetime(2026, 1, 1, 9), "2026-01-01", None])
def test_start_must_be_a_date(start):
    with pytest.raises(FeeError):
        fee_schedule(scheme(), D("1000"), 12, start)


@pytest.mark.parametrize("bad", [
    {"basis": "daily"}, {"frequency": "weekly"}, {"rounding": "ROUND_NEAREST"}, {"remainder": "middle"},
    {"tier_mode": "stepped", "tiers": LOAN_TIERS}, {"rate": None}, {"rate": D("-0.01")},
    {"basis": "fixed", "amount": None}, {"minimum": D("-1")},
    {"tiers": (FeeTier(D(0), None, D("-0.02")),)},
])
def test_impossible_schemes_are_refused(bad):
    with pytest.raises(FeeError) as err:
        fee_total(scheme(**bad), D("1000000"), 12)
    assert "fee" in err.value.message.en.lower() or "rate" in err.value.message.en.lower()


def test_amount_outside_every_band_is_refused():
    s = scheme(tiers=(FeeTier(D(100), None, D("0.02")),))
    with pytest.raises(FeeError):
        fee_total(s, D("50"), 12)
    assert fee_total(dataclasses.replace(s, tier_mode="progressive"), D("50"), 12) == D("0.00")


def test_unknown_scheme_is_refused():
    meta = _meta(loan=scheme())
    with pytest.raises(FeeError) as err:
        schedule_lines(_product(fee_scheme="nope"), meta, D("1000"), 12, START)
    assert "nope" in err.value.message.en and "nope" in err.value.message.zh
    with pytest.raises(FeeError):
        schedule_lines(_product(fee_scheme="loan", review_fee="gone"), meta, D("1000"), 12, START)
    with pytest.raises(FeeError):
        fee_total(None, D("1000"), 12)
    with pytest.raises(FeeError):
        schedule_lines(_product(fee_scheme="loan"), meta, D("1000"), 12, START, rate=D("-0.1"))


# -- properties -----------------------------------------------------------------------------
MONEY = st.decimals(min_value=D("0.01"), max_value=D("10000000000"), places=2, allow_nan=False,
                    allow_infinity=False)
RATES = st.decimals(min_value=D(0), max_value=D("0.2"), places=6, allow_nan=False, allow_infinity=False)
ROUNDING = st.sampled_from(["ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_DOWN"])


@st.composite
def tiers(draw, ascending_rates: bool = False):
    cuts = sorted(set(draw(st.lists(st.decimals(min_value=D("0.01"), max_value=D("1000000000"), places=2),
                                    min_size=0, max_size=4))))
    rates = draw(st.lists(RATES, min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    if ascending_rates:
        rates.sort()
    bounds = [D(0), *cuts]
    return tuple(FeeTier(lo, hi, rate) for lo, hi, rate in zip(bounds, [*cuts, None], rates))


@st.composite
def schemes(draw):
    basis = draw(st.sampled_from(["annual_rate", "annual_rate", "flat_rate", "fixed"]))
    mode = draw(st.sampled_from(["rate", "whole", "progressive"]))
    kw = {"basis": basis, "frequency": draw(st.sampled_from(sorted(FREQUENCY_MONTHS))),
          "rounding": draw(ROUNDING), "remainder": draw(st.sampled_from(["first", "last"]))}
    if basis == "fixed":
        kw["amount"] = draw(st.decimals(min_value=D(0), max_value=D("1000000"), places=2))
    elif mode == "rate":
        kw["rate"] = draw(RATES)
    else:
        kw["tiers"], kw["tier_mode"] = draw(tiers()), mode
    if draw(st.booleans()):
        kw["minimum"] = draw(st.decimals(min_value=D(0), max_value=D("10000"), places=2))
    if draw(st.booleans()):
        kw["maximum"] = draw(st.decimals(min_value=D(0), max_value=D("100000000"), places=2))
    return scheme(**kw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=schemes(), amount=MONEY, term=st.integers(1, 120),
       start=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_schedule_properties(s, amount, term, start):
    total = fee_total(s, amount, term)
    plan = fee_schedule(s, amount, term, start)
    # the instalments add up to the total exactly, in cents, none negative
    assert isinstance(total, D) and total.as_tuple().exponent == -2 and total >= 0
    assert sum(i.amount for i in plan) == total
    for i in plan:
        assert isinstance(i.amount, D) and i.amount.as_tuple().exponent == -2
        assert i.amount >= 0
    # how many, and when
    step = FREQUENCY_MONTHS[s.frequency]
    assert len(plan) == (1 if step is None else -(-term // step))
    assert all(a.due_on < b.due_on for a, b in zip(plan, plan[1:]))
    assert all(i.due_on == i.period_from < i.period_to for i in plan)
    assert plan[0].period_from == start
    assert all(a.period_to == b.period_from for a, b in zip(plan, plan[1:]))
    assert plan[-1].period_to == fn_add_months(start, term)
    # every instalment but the remainder one is its share within a cent
    months = [term] if step is None else [min(step, term - k) for k in range(0, term, step)]
    rest = len(plan) - 1 if s.remainder == "last" else 0
    for k, (i, m) in enumerate(zip(plan, months)):
        if k != rest:
            assert abs(i.amount - total * m / term) < D("0.01")


@settings(max_examples=300, deadline=None)
@given(s=schemes(), amount=MONEY, term=st.integers(1, 120))
def test_total_within_minimum_and_maximum(s, amount, term):
    total = fee_total(s, amount, term)
    if s.maximum is not None:
        assert total <= s.maximum
    elif s.minimum is not None:
        assert total >= s.minimum


@settings(max_examples=300, deadline=None)
@given(data=st.data(), a=MONEY, b=MONEY, term=st.integers(1, 120), rounding=ROUNDING,
       basis=st.sampled_from(["annual_rate", "flat_rate"]))
def test_total_is_monotone_in_the_amount_when_rates_do_not_fall(data, a, b, term, rounding, basis):
    """Progressive tiers (any rates), a single rate, and whole-amount tiers
    whose rates rise: a larger amount never pays less. (Whole-amount tiers with
    falling rates are not monotone: see the boundary example above.)"""
    assume(a != b)
    low, high = min(a, b), max(a, b)
    mode = data.draw(st.sampled_from(["rate", "whole", "progressive"]))
    if mode == "rate":
        s = scheme(basis=basis, rate=data.draw(RATES), rounding=rounding)
    else:
        s = scheme(basis=basis, tiers=data.draw(tiers(ascending_rates=mode == "whole")), tier_mode=mode,
                   rounding=rounding)
    assert fee_total(s, low, term) <= fee_total(s, high, term)


@settings(max_examples=200, deadline=None)
@given(amount=MONEY, term=st.integers(1, 120), rate=RATES, rounding=ROUNDING)
def test_annual_fee_grows_with_the_term(amount, term, rate, rounding):
    s = scheme(rate=rate, rounding=rounding)
    assert fee_total(s, amount, term) <= fee_total(s, amount, term + 1)
