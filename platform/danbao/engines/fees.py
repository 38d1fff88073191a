"""Guarantee fees (担保费) from a fee scheme: the total and its instalments.

Pure functions over Decimals and dates, no database:

* ``fee_total(scheme, amount, term_months)`` — the fee for the whole term:
  ``annual_rate`` = rate × amount × months ÷ 12, ``flat_rate`` = rate ×
  amount, ``fixed`` = the scheme's amount. Tiers replace the rate by bands
  of the amount: ``whole`` charges the whole amount at the rate of its band,
  ``progressive`` each slice at its own band's rate. The exact value is
  rounded once to cents with the scheme's rounding, then raised to
  ``minimum`` and lowered to ``maximum``.
* ``fee_schedule(scheme, amount, term_months, start)`` — the instalments:
  ``once`` is one instalment due on the start date; ``monthly`` /
  ``quarterly`` / ``yearly`` cut the term into periods of 1 / 3 / 12 months
  from the start (the last one may be shorter), each due when it begins.
  Each instalment is the total × its months ÷ the term, rounded the
  scheme's way; the cents left over (either sign) go to the ``remainder``
  instalment (``last`` or ``first``), so the instalments always add up to
  the total exactly. Should that make the remainder instalment negative
  (only possible when rounding up many tiny shares: 0.05 over 10 months
  half-up is 10 × 0.01), the cents are shared by largest remainder instead:
  every share rounded down, the missing cents one each to the instalments
  whose shares lost most, ties going to the remainder end. No instalment is
  ever negative.
* ``schedule_lines(product, meta, amount, term_months, start)`` — the rows
  of a project's fee plan: the guarantee fee instalments, the review fee and
  the deposit.

Periods run from ``period_from`` to ``period_to``, the start of the next
period (months added with the day clamped to the month's end, counted from
the start date each time so 31 January gives 28/29 February, then 31 March);
the last period ends on ``add_months(start, term_months)``, the project's due
date.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from danbao.expr.functions import fn_add_months
from danbao.meta.model import FeeSchemeMeta, Label, Meta, ProductMeta

CENT = Decimal("0.01")
BASES = ("annual_rate", "flat_rate", "fixed")
TIER_MODES = ("whole", "progressive")
#: months per instalment period; ``once`` is the whole term
FREQUENCY_MONTHS = {"once": None, "monthly": 1, "quarterly": 3, "yearly": 12}
REMAINDERS = ("last", "first")
ROUNDINGS = {name: getattr(decimal, name) for name in (
    "ROUND_UP", "ROUND_DOWN", "ROUND_CEILING", "ROUND_FLOOR", "ROUND_HALF_UP", "ROUND_HALF_DOWN",
    "ROUND_HALF_EVEN", "ROUND_05UP")}
#: a longer term is refused (projects allow 360 months)
MAX_TERM_MONTHS = 1200
#: amounts must stay within a money column (Numeric(18, 2))
MAX_AMOUNT = Decimal("9999999999999999.99")
#: working precision: every product of an amount, a rate and a term is exact
_PRECISION = 60


class FeeError(Exception):
    """The fee cannot be calculated from these inputs; ``message`` says why, in both languages."""

    def __init__(self, message: Label):
        super().__init__(message.en)
        self.message = message


@dataclass(frozen=True)
class Instalment:
    due_on: dt.date
    period_from: dt.date
    period_to: dt.date            # the next period's start; the last one's is the project's due date
    amount: Decimal


# -- the total -------------------------------------------------------------------
def fee_total(scheme: FeeSchemeMeta, amount: Decimal, term_months: int) -> Decimal:
    """The fee for the whole term, in cents (see the module docstring)."""
    _check_scheme(scheme)
    amount = _check_amount(amount)
    term = _check_term(term_months)
    rounding = ROUNDINGS[scheme.rounding]
    with decimal.localcontext() as ctx:
        ctx.prec = _PRECISION
        if scheme.basis == "fixed":
            exact = Decimal(scheme.amount)
        else:
            exact = _rated(scheme, amount)
            if scheme.basis == "annual_rate":
                exact = exact * term / 12
        total = exact.quantize(CENT, rounding=rounding)
        if scheme.minimum is not None:
            total = max(total, Decimal(scheme.minimum).quantize(CENT, rounding=rounding))
        if scheme.maximum is not None:
            total = min(total, Decimal(scheme.maximum).quantize(CENT, rounding=rounding))
    return total


def _rated(scheme: FeeSchemeMeta, amount: Decimal) -> Decimal:
    """amount × rate, by band when the scheme has tiers (exact, not rounded)."""
    if not scheme.tiers:
        return amount * scheme.rate
    if scheme.tier_mode == "whole":
        for tier in scheme.tiers:
            if tier.min <= amount and (tier.below is None or amount < tier.below):
                return amount * tier.rate
        raise FeeError(Label(f"金额 {amount} 不在收费方案“{scheme.label.zh}”的任何档位内",
                             f"The amount {amount} falls in no band of fee scheme '{scheme.label.en}'"))
    total = Decimal(0)
    for tier in scheme.tiers:                       # progressive: each slice at its band's rate
        top = amount if tier.below is None else min(amount, tier.below)
        if top > tier.min:
            total += (top - tier.min) * tier.rate
    return total


# -- the instalments -----------------------------------------------------------------
def fee_schedule(scheme: FeeSchemeMeta, amount: Decimal, term_months: int, start: dt.date) -> list[Instalment]:
    """The instalments of the fee, in order; they add up to ``fee_total`` exactly."""
    total = fee_total(scheme, amount, term_months)
    start = _check_date(start)
    periods = _periods(start, term_months, FREQUENCY_MONTHS[scheme.frequency])
    amounts = _split(total, [months for _, _, months in periods], term_months,
                     ROUNDINGS[scheme.rounding], scheme.remainder)
    return [Instalment(due_on=begin, period_from=begin, period_to=end, amount=share)
            for (begin, end, _), share in zip(periods, amounts)]


def _periods(start: dt.date, term: int, step: int | None) -> list[tuple[dt.date, dt.date, int]]:
    """(from, to, months) of each period; boundaries are counted from ``start`` each time."""
    step = step or term
    out = []
    for first in range(0, term, step):
        months = min(step, term - first)
        out.append((_add_months(start, first), _add_months(start, first + months), months))
    return out


def _add_months(start: dt.date, months: int) -> dt.date:
    moved = fn_add_months(start, months)
    if moved is None:
        raise FeeError(Label("收费期间超出日期范围", "The fee periods run beyond the calendar"))
    return moved


def _split(total: Decimal, months: list[int], term: int, rounding: str, remainder: str) -> list[Decimal]:
    """``total`` shared by ``months`` (which add up to ``term``) in cents that add up to it exactly."""
    last = len(months) - 1 if remainder == "last" else 0
    with decimal.localcontext() as ctx:
        ctx.prec = _PRECISION
        shares = [(total * m / term).quantize(CENT, rounding=rounding) for m in months]
        shares[last] += total - sum(shares)
    if total < 0 or shares[last] >= 0:
        return shares
    # largest remainder: floors in cents, then one cent each where most was cut off
    cents = int(total.scaleb(2))
    exact = [cents * m for m in months]
    floors = [e // term for e in exact]
    missing = cents - sum(floors)
    nearness = (lambda i: len(months) - 1 - i) if remainder == "last" else (lambda i: i)
    for i in sorted(range(len(months)), key=lambda i: (-(exact[i] % term), nearness(i)))[:missing]:
        floors[i] += 1
    return [Decimal(c).scaleb(-2) for c in floors]


# -- a project's fee plan -------------------------------------------------------------
def schedule_lines(product: ProductMeta, meta: Meta, amount: Decimal, term_months: int, start: dt.date,
                   *, rate: Decimal | None = None, deposit_rate: Decimal | None = None) -> list[dict]:
    """The rows of a project's fee plan, each ``{kind, due_on, period_from, period_to, amount}``:

    * ``guarantee_fee`` — the instalments of the product's fee scheme; ``rate``
      (the project's approved rate, when set) replaces the scheme's rate and
      tiers (not for a ``fixed`` scheme); minimum and maximum still apply;
    * ``review_fee`` — the product's review fee scheme's total, once, due on
      the start date (left out when the product has none or it is zero);
    * ``deposit`` — amount × the deposit rate (``deposit_rate``, the project's
      own, when set, else the product's), rounded half-up to cents, due on the
      start date (left out when there is none or it is zero).

    Rows are ordered by due date (the guarantee fee first on the same day).
    """
    scheme = _scheme(meta, product.fee_scheme, product)
    if rate is not None:
        rate = _check_rate(rate, Label("项目担保费率", "the project's fee rate"))
        if scheme.basis != "fixed":
            scheme = dataclasses.replace(scheme, rate=rate, tiers=())
    lines = [_line("guarantee_fee", i.due_on, i.period_from, i.period_to, i.amount)
             for i in fee_schedule(scheme, amount, term_months, start)]
    start = _check_date(start)
    end = _add_months(start, term_months)
    if product.review_fee:
        review = fee_total(_scheme(meta, product.review_fee, product), amount, term_months)
        if review > 0:
            lines.append(_line("review_fee", start, start, end, review))
    if deposit_rate is None:
        deposit_rate = product.deposit_rate
    if deposit_rate is not None:
        share = _check_rate(deposit_rate, Label("保证金比例", "the deposit rate"))
        deposit = (_check_amount(amount) * share).quantize(CENT, rounding=ROUND_HALF_UP)
        if deposit > 0:
            lines.append(_line("deposit", start, start, end, deposit))
    return sorted(lines, key=lambda line: line["due_on"])


def _line(kind: str, due_on, period_from, period_to, amount: Decimal) -> dict:
    return {"kind": kind, "due_on": due_on, "period_from": period_from, "period_to": period_to, "amount": amount}


def _scheme(meta: Meta, code: str | None, product: ProductMeta) -> FeeSchemeMeta:
    scheme = meta.fee_schemes.get(code or "")
    if scheme is None:
        raise FeeError(Label(f"产品“{product.label.zh}”的收费方案不存在：{code or '（未指定）'}",
                             f"Product '{product.label.en}' names a fee scheme that does not exist: {code or '(none)'}"))
    return scheme


# -- checking the inputs ----------------------------------------------------------------
def _is_number(value) -> bool:
    return isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool))


def _check_amount(amount) -> Decimal:
    if not _is_number(amount) or not Decimal(amount).is_finite():
        raise FeeError(Label("金额应为数值（Decimal）", "The amount must be a number (Decimal)"))
    amount = Decimal(amount)
    if amount <= 0:
        raise FeeError(Label("金额必须大于零", "The amount must be greater than zero"))
    if amount > MAX_AMOUNT:
        raise FeeError(Label("金额过大", "The amount is too large"))
    return amount


def _check_term(term) -> int:
    if not isinstance(term, int) or isinstance(term, bool) or not 1 <= term <= MAX_TERM_MONTHS:
        raise FeeError(Label(f"期限应为 1 至 {MAX_TERM_MONTHS} 个月的整数",
                             f"The term must be a whole number of months from 1 to {MAX_TERM_MONTHS}"))
    return term


def _check_date(start) -> dt.date:
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise FeeError(Label("起始日应为日期", "The start must be a date"))
    return start


def _check_rate(rate, what: Label) -> Decimal:
    if not _is_number(rate) or not Decimal(rate).is_finite() or rate < 0:
        raise FeeError(Label(f"{what.zh}应为不小于零的数值", f"{what.en} must be a number not below zero"))
    return Decimal(rate)


def _check_scheme(scheme) -> None:
    """A scheme the calculation can follow (the loader should have refused anything else)."""
    if not isinstance(scheme, FeeSchemeMeta):
        raise FeeError(Label("收费方案不存在", "No such fee scheme"))

    def bad(zh: str, en: str) -> FeeError:
        return FeeError(Label(f"收费方案“{scheme.label.zh}”有误：{zh}", f"Fee scheme '{scheme.label.en}' is wrong: {en}"))

    if scheme.basis not in BASES:
        raise bad(f"计费方式应为 {'/'.join(BASES)}", f"basis must be one of {', '.join(BASES)}")
    if scheme.frequency not in FREQUENCY_MONTHS:
        raise bad("收费频率无效", f"frequency must be one of {', '.join(FREQUENCY_MONTHS)}")
    if scheme.rounding not in ROUNDINGS:
        raise bad("舍入方式无效", f"rounding must be one of {', '.join(ROUNDINGS)}")
    if scheme.remainder not in REMAINDERS:
        raise bad("尾差归属应为 first 或 last", "remainder must be first or last")
    if scheme.tier_mode not in TIER_MODES:
        raise bad("分档方式应为 whole 或 progressive", "tier_mode must be whole or progressive")
    if scheme.basis == "fixed":
        if scheme.amount is None or not _is_number(scheme.amount) or scheme.amount < 0:
            raise bad("固定收费须有不小于零的金额", "a fixed fee needs an amount not below zero")
    elif not scheme.tiers:
        if scheme.rate is None:
            raise bad("缺少费率", "it has no rate")
        _check_rate(scheme.rate, Label("费率", "the rate"))
    else:
        for tier in scheme.tiers:
            _check_rate(tier.rate, Label("档位费率", "a band's rate"))
    for limit in (scheme.minimum, scheme.maximum):
        if limit is not None and (not _is_number(limit) or limit < 0):
            raise bad("最低/最高收费不能为负", "minimum and maximum cannot be negative")



# -- a plan that follows changed terms ------------------------------------------------------
def follow_unpaid(kept: list[dict], lines: list[dict]) -> list[dict]:
    """The plan after the terms changed, when some rows already carry money.

    ``kept`` are the rows with money received (each ``{kind, due_on, amount, …}``,
    kept exactly as they are); ``lines`` the plan the new terms give. Per kind,
    the new lines due after the last kept row of that kind replace the unpaid
    rows, and the last of them takes the difference, so the kind's total is the
    new terms' total (a total already exceeded by the money received leaves no
    unpaid row: the excess is the ledger's to refund). Pure; returns new rows
    for the unpaid part only.
    """
    out: list[dict] = []
    for kind in dict.fromkeys(line["kind"] for line in lines):
        new = [line for line in lines if line["kind"] == kind]
        mine = [row for row in kept if row["kind"] == kind]
        total = sum((line["amount"] for line in new), Decimal(0))
        held = sum((row["amount"] for row in mine), Decimal(0))
        last = max((row["due_on"] for row in mine), default=None)
        rest = [dict(line) for line in new if last is None or line["due_on"] > last]
        left = total - held
        if left <= 0:
            continue
        if not rest:                                   # the new plan ends before the money already in
            rest = [dict(new[-1])]
            rest[0]["amount"] = Decimal(0)
        rest[-1]["amount"] = left - sum((line["amount"] for line in rest[:-1]), Decimal(0))
        while rest and rest[-1]["amount"] < 0:         # fewer, later rows than the money left: fold back
            extra = rest.pop()["amount"]
            if rest:
                rest[-1]["amount"] += extra
        out += [line for line in rest if line["amount"] > 0]
    return sorted(out, key=lambda line: (line["due_on"], line["kind"]))
