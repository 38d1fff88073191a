"""Every built-in function: Python results, and the same results from its SQL
form on the test database (SQLite, or PostgreSQL with DANBAO_TEST_DATABASE_URL)."""
from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from danbao.expr import ExprError, compile_expression
from danbao.expr.functions import fn_add_days, fn_add_months
from test_expr_support import SCOPE, TODAY, DealTable, deal_values

d = dt.date
D = Decimal

CASES = [
    # add_months: clamped to the end of the target month
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=1), d(2024, 2, 29)),
    ("add_months(start, term)", dict(start=d(2023, 1, 31), term=1), d(2023, 2, 28)),
    ("add_months(start, term)", dict(start=d(2024, 2, 29), term=12), d(2025, 2, 28)),
    ("add_months(start, term)", dict(start=d(2024, 2, 29), term=48), d(2028, 2, 29)),
    ("add_months(start, term)", dict(start=d(2024, 3, 31), term=-1), d(2024, 2, 29)),
    ("add_months(start, term)", dict(start=d(2023, 3, 31), term=-1), d(2023, 2, 28)),
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=-2), d(2023, 11, 30)),
    ("add_months(start, term)", dict(start=d(2024, 5, 31), term=-13), d(2023, 4, 30)),
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=13), d(2025, 2, 28)),
    ("add_months(start, term)", dict(start=d(2024, 8, 31), term=1), d(2024, 9, 30)),
    ("add_months(start, term)", dict(start=d(2024, 12, 31), term=1), d(2025, 1, 31)),
    ("add_months(start, term)", dict(start=d(2024, 12, 15), term=-12), d(2023, 12, 15)),
    ("add_months(start, term)", dict(start=d(2024, 1, 15), term=0), d(2024, 1, 15)),
    ("add_months(start, term)", dict(start=d(2024, 2, 28), term=1), d(2024, 3, 28)),
    ("add_months(start, term)", dict(start=d(2000, 1, 31), term=-1), d(1999, 12, 31)),
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=-1200), d(1924, 1, 31)),
    ("add_months(start, amount)", dict(start=d(2024, 1, 31), amount=D("1.99")), d(2024, 2, 29)),
    ("add_months(start, amount)", dict(start=d(2024, 3, 31), amount=D("-1.99")), d(2024, 2, 29)),
    ("add_months(start, rate * 100)", dict(start=d(2024, 1, 31), rate=D("0.29")), d(2026, 6, 30)),
    ("add_months(start, term)", dict(start=None, term=1), None),
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=None), None),
    ("add_months(maturity, 1)", dict(maturity=d(2024, 1, 31)), d(2024, 2, 29)),
    ("add_months(start, term)", dict(start=d(1, 1, 31), term=-1), None),
    ("add_months(start, term)", dict(start=d(9999, 12, 31), term=1), None),
    ("add_months(start, term)", dict(start=d(9999, 11, 30), term=1), d(9999, 12, 30)),
    ("add_months(start, term)", dict(start=d(1, 1, 31), term=48000), d(4001, 1, 31)),
    ("add_months(start, term)", dict(start=d(1, 1, 31), term=48001), None),
    ("add_months(start, term)", dict(start=d(9999, 12, 31), term=-48000), d(5999, 12, 31)),
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=-24289), None),
    ("add_months(start, term)", dict(start=d(2024, 1, 31), term=10 ** 12), None),
    # add_days
    ("add_days(start, term)", dict(start=d(2024, 2, 28), term=1), d(2024, 2, 29)),
    ("add_days(start, term)", dict(start=d(2023, 2, 28), term=1), d(2023, 3, 1)),
    ("add_days(start, term)", dict(start=d(2024, 12, 31), term=1), d(2025, 1, 1)),
    ("add_days(start, term)", dict(start=d(2024, 3, 1), term=-1), d(2024, 2, 29)),
    ("add_days(start, term)", dict(start=d(2024, 3, 1), term=0), d(2024, 3, 1)),
    ("add_days(start, term)", dict(start=d(2024, 1, 1), term=366), d(2025, 1, 1)),
    ("add_days(start, amount)", dict(start=d(2024, 1, 1), amount=D("2.7")), d(2024, 1, 3)),
    ("add_days(start, amount)", dict(start=d(2024, 1, 3), amount=D("-2.7")), d(2024, 1, 1)),
    ("add_days(start, term / 2)", dict(start=d(2024, 1, 1), term=7), d(2024, 1, 4)),
    ("add_days(start, term)", dict(start=None, term=1), None),
    ("add_days(start, term)", dict(start=d(2024, 1, 1), term=None), None),
    ("add_days(today(), 1)", dict(), d(2024, 3, 1)),
    # ... outside years 1..9999, or further than 1 460 000 days: None (NULL)
    ("add_days(start, term)", dict(start=d(2024, 1, 1), term=-739000), None),
    ("add_days(start, term)", dict(start=d(9999, 12, 31), term=1), None),
    ("add_days(start, term)", dict(start=d(1, 1, 1), term=-1), None),
    ("add_days(start, term)", dict(start=d(1, 1, 1), term=1460000), d(3998, 5, 7)),
    ("add_days(start, term)", dict(start=d(1, 1, 1), term=1460001), None),
    ("add_days(start, term)", dict(start=d(9999, 12, 31), term=-1460000), d(6002, 8, 27)),
    ("add_days(start, term)", dict(start=d(9999, 12, 31), term=-10 ** 15), None),
    ("add_days(start, amount * 1000000)", dict(start=d(2024, 1, 1), amount=D("99999.99")), None),
    # years_between: whole years, the anniversary reached by month and day
    ("years_between(start, maturity)", dict(start=d(1996, 11, 30), maturity=d(2026, 11, 29)), 29),
    ("years_between(start, maturity)", dict(start=d(1996, 11, 30), maturity=d(2026, 11, 30)), 30),
    ("years_between(start, maturity)", dict(start=d(2000, 2, 29), maturity=d(2025, 2, 28)), 24),
    ("years_between(start, maturity)", dict(start=d(2000, 2, 29), maturity=d(2025, 3, 1)), 25),
    ("years_between(start, maturity)", dict(start=d(2026, 5, 1), maturity=d(2025, 5, 2)), -1),
    ("years_between(start, maturity)", dict(start=None, maturity=d(2025, 5, 2)), None),
    # days_between: b - a
    ("days_between(start, maturity)", dict(start=d(2024, 2, 1), maturity=d(2024, 3, 1)), 29),
    ("days_between(start, maturity)", dict(start=d(2023, 2, 1), maturity=d(2023, 3, 1)), 28),
    ("days_between(start, maturity)", dict(start=d(2024, 3, 1), maturity=d(2024, 2, 1)), -29),
    ("days_between(start, maturity)", dict(start=d(2024, 1, 1), maturity=d(2025, 1, 1)), 366),
    ("days_between(start, maturity)", dict(start=d(2024, 1, 1), maturity=d(2024, 1, 1)), 0),
    ("days_between(start, maturity)", dict(start=None, maturity=d(2024, 1, 1)), None),
    ("days_between(today(), maturity)", dict(maturity=d(2024, 3, 30)), 30),
    ("days_between(start, today())", dict(start=d(2023, 2, 28)), 366),
    # today
    ("today()", dict(), TODAY),
    # round_money: 0.01, halves away from zero
    ("round_money(amount * rate)", dict(amount=D("1000000.01"), rate=D("0.015")), D("15000.00")),
    ("round_money(rate)", dict(rate=D("2.675")), D("2.68")),
    ("round_money(rate)", dict(rate=D("-2.675")), D("-2.68")),
    ("round_money(rate)", dict(rate=D("1.005")), D("1.01")),
    ("round_money(rate)", dict(rate=D("0.125")), D("0.13")),
    ("round_money(rate)", dict(rate=D("2.674999")), D("2.67")),
    ("round_money(amount / 8)", dict(amount=D("1.00")), D("0.13")),
    ("round_money(amount * 0.5)", dict(amount=D("0.01")), D("0.01")),
    ("round_money(amount * 0.5)", dict(amount=D("-0.01")), D("-0.01")),
    ("round_money(term)", dict(term=5), D("5.00")),
    ("round_money(amount)", dict(), None),
    # abs
    ("abs(amount)", dict(amount=D("-1.50")), D("1.5")),
    ("abs(term)", dict(term=-3), 3),
    ("abs(amount)", dict(amount=D("0")), D("0")),
    ("abs(amount)", dict(), None),
    # min / max: None when any argument is None
    ("min(amount, rate)", dict(amount=D("1"), rate=D("0.5")), D("0.5")),
    ("max(amount, rate, term)", dict(amount=D("1"), rate=D("0.5"), term=2), 2),
    ("min(amount, 5)", dict(amount=None), None),
    ("max(amount, 5)", dict(amount=None), None),
    ("min(start, maturity)", dict(start=d(2024, 2, 29), maturity=d(2024, 3, 1)), d(2024, 2, 29)),
    ("max(start, maturity, today())", dict(start=d(2024, 1, 31), maturity=d(2023, 12, 31)), TODAY),
    ("min(start, maturity)", dict(start=d(2024, 2, 29)), None),
    # coalesce: the first value that is not None
    ("coalesce(amount, 0)", dict(), D("0")),
    ("coalesce(amount, rate, 1)", dict(rate=D("0.5")), D("0.5")),
    ("coalesce(amount, rate)", dict(), None),
    ("coalesce(start, today())", dict(), TODAY),
    ("coalesce(start, today())", dict(start=d(2020, 1, 1)), d(2020, 1, 1)),
    ("coalesce(flag, False)", dict(), False),
    ("coalesce(flag, False)", dict(flag=True), True),
    ("coalesce(status, 'none')", dict(), "none"),
    # date: a fixed date from literals
    ("date(2024, 2, 29)", dict(), d(2024, 2, 29)),
    ("add_months(date(2024, 1, 31), 1)", dict(), d(2024, 2, 29)),
]


def _literal(value) -> str:
    if isinstance(value, dt.date):
        return f"date({value.year}, {value.month}, {value.day})"
    if isinstance(value, str):
        return repr(value)
    return str(value)


@pytest.mark.parametrize("source, row, expected", CASES, ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CASES)])
def test_function_in_python(source, row, expected):
    result = compile_expression(source, SCOPE).evaluate(deal_values(**row), today=TODAY)
    assert result == expected and type(result) is type(expected), (result, expected)


@pytest.fixture(scope="module")
def deal_table(module_database_url):
    table = DealTable(module_database_url)
    yield table
    table.dispose()


@pytest.mark.parametrize("source, row, expected", CASES, ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CASES)])
def test_function_in_sql(deal_table, source, row, expected):
    """The SQL form gives the same value: ``(expr) == expected`` selects the row,
    and ``!=`` does not (``== None`` when the expected value is None)."""
    if expected is None:
        checks = [(f"({source}) == None", True), (f"({source}) != None", False)]
    elif isinstance(expected, bool):
        checks = [(source, expected), (f"not ({source})", not expected)]
    else:
        lit = _literal(expected)
        checks = [(f"({source}) == {lit}", True), (f"({source}) != {lit}", False)]
    t = deal_table.table
    with deal_table.engine.connect() as conn, conn.begin():
        conn.execute(t.insert(), [dict(deal_values(**row), id=1, version=1)])
        for cond_src, wanted in checks:
            cond = compile_expression(cond_src, SCOPE, expect="boolean")
            pred = cond.to_sql(deal_table.columns, today=TODAY, dialect_name=deal_table.dialect)
            selected = conn.scalar(sa.select(sa.func.count()).select_from(t).where(pred))
            assert selected == int(wanted), (cond_src, deal_table.dialect)
        conn.rollback()


def test_function_values_through_sql(deal_table):
    """Non-boolean expressions translate to their value too."""
    t = deal_table.table
    with deal_table.engine.connect() as conn, conn.begin():
        conn.execute(t.insert(), [dict(deal_values(start=d(2024, 1, 31), term=1, amount=D("2.675")),
                                       id=1, version=1)])
        cols = deal_table.columns
        kw = dict(today=TODAY, dialect_name=deal_table.dialect)
        months = compile_expression("add_months(start, term)", SCOPE).to_sql(cols, **kw)
        days = compile_expression("days_between(start, today())", SCOPE).to_sql(cols, **kw)
        money = compile_expression("round_money(amount)", SCOPE).to_sql(cols, **kw)
        row = conn.execute(sa.select(months, days, money)).one()
        assert str(row[0]) == "2024-02-29"
        assert int(row[1]) == 29
        assert Decimal(str(row[2])) == D("2.68")
        conn.rollback()


def test_month_end_rules_exhaustively_in_python():
    """add_months never overflows a month and round-trips inside long months."""
    for year in (2023, 2024, 2100):
        for month in range(1, 13):
            for day in (1, 15, 28, 29, 30, 31):
                try:
                    start = d(year, month, day)
                except ValueError:
                    continue
                for n in range(-25, 26):
                    got = fn_add_months(start, n)
                    assert got.year * 12 + got.month - 1 == year * 12 + month - 1 + n
                    assert got.day == min(day, calendar.monthrange(got.year, got.month)[1])


def test_date_range_edges_give_none_in_python():
    assert fn_add_days(d(9999, 12, 31), 1) is None
    assert fn_add_days(d(1, 1, 1), -1) is None
    assert fn_add_days(d(2024, 1, 1), 10 ** 9) is None
    assert fn_add_months(d(9999, 12, 31), 1) is None
    assert fn_add_months(d(2024, 1, 31), 10 ** 9) is None
    assert compile_expression("add_days(start, term)", SCOPE).evaluate(
        deal_values(start=d(9999, 12, 31), term=1), today=TODAY) is None


def test_to_sql_needs_columns_and_a_known_dialect():
    ce = compile_expression("add_days(start, 1) > today()", SCOPE)
    with pytest.raises(ExprError) as info:
        ce.to_sql({}, today=TODAY, dialect_name="sqlite")
    assert info.value.code == "EX041"
    with pytest.raises(ExprError) as info:
        ce.to_sql({"start": sa.column("start")}, today=TODAY, dialect_name="mssql")
    assert info.value.code == "EX042"
