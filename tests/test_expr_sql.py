"""Python and SQL agree: for random yes/no expressions over random rows in a
real table, the ids where ``evaluate(row) is True`` are exactly the ids
``to_sql`` selects, and ``NOT to_sql`` selects all the others (the SQL
predicate is never NULL). Runs on SQLite, and on PostgreSQL when
DANBAO_TEST_DATABASE_URL is set."""
from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danbao.expr import ExprError, compile_expression
from test_expr_support import (SCOPE, STATUSES, TODAY, DealTable, assert_agree, deal_values)

d = dt.date
#: Examples per property test; raise it to hunt for disagreements (DANBAO_EXPR_EXAMPLES=5000).
EXAMPLES = int(os.environ.get("DANBAO_EXPR_EXAMPLES", "60"))

# ------------------------------------------------------------------ data
EDGE_DATES = [d(2024, 1, 31), d(2024, 2, 28), d(2024, 2, 29), d(2023, 2, 28), d(2023, 1, 31),
              d(2024, 12, 31), d(2023, 12, 31), d(2024, 3, 31), d(2024, 3, 1), d(2025, 2, 28),
              d(2024, 4, 30), d(2000, 2, 29), d(2024, 1, 1), d(1, 1, 31), d(9999, 12, 31), d(9999, 11, 30)]
dates = st.one_of(st.none(), st.sampled_from(EDGE_DATES), st.dates(d(2000, 1, 1), d(2040, 12, 31)))
money = st.one_of(st.none(), st.sampled_from([Decimal(x) for x in ("0", "0.01", "-0.01", "0.30", "1", "3",
                                                                     "15000.00", "99999.99", "1.5")]),
                  st.decimals(min_value=-100000, max_value=100000, places=2))
rates = st.one_of(st.none(), st.sampled_from([Decimal(x) for x in ("0", "0.015", "0.1", "1", "-0.5")]),
                  st.decimals(min_value=-1, max_value=1, places=6))
terms = st.one_of(st.none(), st.sampled_from([0, 1, 12, -1, 13, 30, 365]), st.integers(-400, 400))
rows_strategy = st.lists(st.fixed_dictionaries({
    "amount": money, "rate": rates, "term": terms,
    "status": st.one_of(st.none(), st.sampled_from(STATUSES)),
    "flag": st.one_of(st.none(), st.booleans()),
    "start": dates, "maturity": dates,
}), min_size=0, max_size=8)
todays = st.sampled_from([TODAY, d(2024, 1, 31), d(2023, 12, 31), d(2025, 2, 28), d(2030, 6, 15)])

# ------------------------------------------------------------------ expressions
NUM_LITERALS = ["0", "1", "2", "-3", "12", "0.015", "100", "0.5", "30", "365", "-0.01", "15000", "1000000.01"]
INT_LITERALS = ["0", "1", "-1", "2", "12", "-12", "13", "24", "31", "-31", "60", "-400",
                "48000", "-48001", "1460001", "-739000"]
DIVISORS = ["2", "3", "4", "7", "0", "100", "0.1", "360"]


CMP = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
NUM_LEAF = st.sampled_from(["amount", "rate", "term"] + NUM_LITERALS)
WHOLE_LEAF = st.sampled_from(["term"] + INT_LITERALS)
DATE_LEAF = st.sampled_from(["start", "maturity", "today()", "date(2024, 1, 31)", "date(2024, 2, 29)"])
BOOL_LEAF = st.one_of(
    st.just("flag"), st.sampled_from(["True", "False"]),
    st.builds(lambda a, op, b: f"{a} {op} {b}", NUM_LEAF, CMP, NUM_LEAF),
    st.builds(lambda s, op: f"status {op} {s!r}", st.sampled_from(STATUSES), st.sampled_from(["==", "!="])),
    st.builds(lambda n: f"{n} == None", st.sampled_from(["amount", "status", "flag", "start"])),
    st.builds(lambda n: f"{n} != None", st.sampled_from(["rate", "term", "maturity"])),
)


def _levels(top: int):
    """Strategies for numbers, whole numbers (day/month counts), dates and
    yes/no expressions, each level built once from the level below."""
    num, whole, date, cond = [NUM_LEAF], [WHOLE_LEAF], [DATE_LEAF], [BOOL_LEAF]
    for _ in range(top):
        n, w, d_, b = num[-1], whole[-1], date[-1], cond[-1]
        whole.append(st.one_of(
            WHOLE_LEAF,
            st.builds(lambda a, c: f"({a} + {c})", w, st.sampled_from(INT_LITERALS)),
            st.builds(lambda a: f"({a} * 2)", w),
            st.builds(lambda a, c: f"days_between({a}, {c})", d_, d_),
            st.builds(lambda a, c: f"years_between({a}, {c})", d_, d_),
            st.builds(lambda a: f"({a} // 3)", w),
            st.builds(lambda a: f"coalesce({a}, 1)", w),
            st.builds(lambda a: f"(amount * {a})", st.sampled_from(["1", "-1", "0.5"])),
        ))
        num.append(st.one_of(
            NUM_LEAF,
            st.builds(lambda a, op, c: f"({a} {op} {c})", n, st.sampled_from(["+", "-"]), n),
            st.builds(lambda a, c: f"({a} * {c})", NUM_LEAF, st.sampled_from(NUM_LITERALS)),
            st.just("(amount * rate)"),
            st.builds(lambda a, c: f"({a} / {c})", NUM_LEAF, st.sampled_from(DIVISORS)),
            st.builds(lambda a, c: f"({a} // {c})", NUM_LEAF, st.sampled_from(DIVISORS)),
            st.builds(lambda a, c: f"({a} % {c})", NUM_LEAF, st.sampled_from(DIVISORS)),
            st.builds(lambda a, k: f"{a} ** {k}", st.sampled_from(["amount", "rate", "term"]),
                      st.sampled_from(["0", "1", "2", "3"])),
            st.builds(lambda a: f"-{a}", n),
            st.builds(lambda a: f"round_money({a})", n),
            st.builds(lambda a: f"abs({a})", n),
            st.builds(lambda f, a, c: f"{f}({a}, {c})", st.sampled_from(["min", "max"]), n, n),
            st.builds(lambda a, c: f"coalesce({a}, {c})", n, st.sampled_from(NUM_LITERALS)),
            st.builds(lambda a, c: f"days_between({a}, {c})", d_, d_),
            st.builds(lambda c, a, e: f"({a} if {c} else {e})", b, n, n),
        ))
        date.append(st.one_of(
            DATE_LEAF,
            st.builds(lambda a, k: f"add_days({a}, {k})", d_, w),
            st.builds(lambda a, k: f"add_months({a}, {k})", d_, w),
            st.builds(lambda f, a, c: f"{f}({a}, {c})", st.sampled_from(["min", "max"]), d_, d_),
            st.builds(lambda a: f"coalesce({a}, today())", d_),
            st.builds(lambda c, a, e: f"({a} if {c} else {e})", b, d_, d_),
        ))
        cond.append(st.one_of(
            BOOL_LEAF,
            st.builds(lambda a, op, c: f"{a} {op} {c}", n, CMP, n),
            st.builds(lambda a, op, c: f"{a} {op} {c}", d_, CMP, d_),
            st.builds(lambda a, c, e: f"{a} <= {c} < {e}", n, NUM_LEAF, n),
            st.builds(lambda a, op, items: f"{a} {op} ({', '.join(items)},)",
                      st.sampled_from(["term", "amount", "(amount * 2)", "(term - 1)", "abs(rate)"]),
                      st.sampled_from(["in", "not in"]),
                      st.lists(st.sampled_from(["0", "1", "12", "-1", "0.6", "2000000.02", "0.015"]),
                               min_size=1, max_size=4)),
            st.builds(lambda op, items: f"status {op} ({', '.join(repr(i) for i in items)},)",
                      st.sampled_from(["in", "not in"]),
                      st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3)),
            st.builds(lambda x: f"(status + '_x') == {x!r}", st.sampled_from(["active_x", "draft_x", "x"])),
            st.builds(lambda a: f"not ({a})", b),
            st.builds(lambda a, op, c: f"({a} {op} {c})", b, st.sampled_from(["and", "or"]), b),
            st.builds(lambda a, c, e: f"({c} if {a} else {e})", b, b, b),
            st.builds(lambda a, op: f"flag {op} ({a})", b, st.sampled_from(["==", "!="])),
            st.builds(lambda a: f"coalesce(flag, {a})", b),
            st.builds(lambda a: f"({a}) == None", n),
            st.builds(lambda a: f"({a}) != None", d_),
        ))
    return cond[-1]


expressions = _levels(3)


def _compiles(src: str) -> bool:
    compile_expression(src, SCOPE, expect="boolean")   # a generator bug would raise here
    return True


# ------------------------------------------------------------------ the tests
def test_random_expressions_over_random_rows(database_url):
    table = DealTable(database_url)
    try:
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(rows=rows_strategy, source=expressions.filter(_compiles), today=todays)
        def check(rows, source, today):
            with table.engine.connect() as conn, conn.begin():
                table.insert(conn, rows)
                assert_agree(table.compare(conn, [source], today))
                conn.rollback()
        check()
    finally:
        table.dispose()


EDGE_ROWS = [
    deal_values(),
    deal_values(amount=Decimal("1000000.01"), rate=Decimal("0.015"), term=12, status="active", flag=True,
                start=d(2024, 1, 31), maturity=d(2025, 1, 31)),
    deal_values(amount=Decimal("0.30"), rate=Decimal("0.1"), term=-3, status="closed", flag=False,
                start=d(2024, 2, 29), maturity=d(2024, 3, 31)),
    deal_values(amount=Decimal("-0.01"), rate=Decimal("0"), term=0, status="draft", flag=None,
                start=d(2023, 2, 28), maturity=d(2023, 12, 31)),
    deal_values(amount=Decimal("15000.00"), rate=Decimal("1"), term=1, status="active", flag=True,
                start=d(2023, 1, 31), maturity=d(2024, 2, 28)),
    deal_values(amount=Decimal("0"), term=13, start=d(2024, 12, 31), maturity=d(2024, 12, 31)),
    deal_values(amount=Decimal("3"), rate=Decimal("-0.5"), term=365, flag=False,
                start=d(2000, 2, 29), maturity=None),
    deal_values(rate=Decimal("0.333333"), term=-12, status="draft", start=d(2024, 3, 31),
                maturity=d(2024, 4, 30)),
    deal_values(amount=Decimal("99999.99"), rate=Decimal("-1"), term=30, status="closed", flag=True,
                start=d(2024, 1, 1), maturity=d(2024, 2, 29)),
]


def test_random_expressions_over_edge_rows(database_url):
    """Many expressions against one set of month-end and None-laden rows."""
    table = DealTable(database_url)
    try:
        with table.engine.begin() as conn:
            table.insert(conn, EDGE_ROWS)

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(sources=st.lists(expressions.filter(_compiles), min_size=1, max_size=5), today=todays)
        def check(sources, today):
            with table.engine.connect() as conn:
                assert_agree(table.compare(conn, sources, today))
        check()
    finally:
        table.dispose()


HAND_PICKED = [
    "status == 'active' and days_between(today(), maturity) <= 366",
    "amount * 0.015 > 15000",
    "amount * 0.015 == 15000.00015",
    "round_money(amount * rate) == 15000.00",
    "add_months(start, 1) == date(2024, 2, 29)",
    "add_months(start, term) > maturity",
    "add_months(start, 12) == maturity",
    "add_days(start, term * 2.5) < today()",
    "days_between(start, maturity) == 366",
    "not flag",
    "not (status in ('active',))",
    "status not in ('active', 'draft')",
    "flag == (amount > 5)",
    "flag != (amount > 5)",
    "not (flag == True)",
    "(amount if flag else rate) > 0.2",
    "not ((amount if flag else rate) > 0.2)",
    "amount // 0.1 == 3",
    "amount % 0.1 == 0",
    "amount / 0 == None",
    "not (amount / term > 0)",
    "amount ** 0 == 1",
    "1 < term <= 13",
    "-amount < 0",
    "min(start, maturity) == start",
    "max(amount, rate) > 1",
    "coalesce(amount, 0) == 0",
    "coalesce(flag, True)",
    "not coalesce(flag, True)",
    "maturity == None or maturity < start",
    "(status + '_x') == 'active_x'",
    "True", "False", "not True",
    "None == None", "not (None != None)",
    "(amount * rate) in (15000.00015, 0.03, 0)",
    "rate * 3 == 0.999999",
    "abs(rate) * 100 // 1 == 33",
]


def test_hand_picked_expressions_agree(database_url):
    table = DealTable(database_url)
    try:
        with table.engine.begin() as conn:
            table.insert(conn, EDGE_ROWS)
        with table.engine.connect() as conn:
            for today in (TODAY, d(2024, 12, 31)):
                assert_agree(table.compare(conn, HAND_PICKED, today))
    finally:
        table.dispose()


def test_the_predicate_is_never_null(database_url):
    """Negating the SQL predicate selects exactly the other rows, even where
    the fields are NULL (a plain SQL comparison would be NULL both ways)."""
    table = DealTable(database_url)
    try:
        with table.engine.begin() as conn:
            table.insert(conn, EDGE_ROWS)
        pred = compile_expression("amount > 1", SCOPE).to_sql(
            table.columns, today=TODAY, dialect_name=table.dialect)
        with table.engine.connect() as conn:
            yes = set(conn.scalars(sa.select(table.table.c.id).where(pred)))
            no = set(conn.scalars(sa.select(table.table.c.id).where(sa.not_(pred))))
        assert yes and no and yes.isdisjoint(no) and len(yes | no) == len(EDGE_ROWS)
    finally:
        table.dispose()


@pytest.mark.parametrize("n", [60, 98])
def test_long_sums_translate(database_url, n):
    """Chains near the node cap still compile to SQL without recursion trouble."""
    table = DealTable(database_url)
    try:
        src = "amount" + " + rate" * n + " > 0"
        with table.engine.begin() as conn:
            table.insert(conn, EDGE_ROWS)
        with table.engine.connect() as conn:
            assert_agree(table.compare(conn, [src], TODAY))
    finally:
        table.dispose()


def _nest(template: str, inner: str, times: int) -> str:
    for _ in range(times):
        inner = template.format(inner)
    return inner


@pytest.mark.parametrize("source, dialect", [
    (_nest("add_months({}, 1)", "start", 8) + " > today()", "sqlite"),
    (_nest("min({}, term)", "amount", 16) + " > 0", "postgresql"),
    (_nest("({} / 2)", "amount", 18) + " > 0", "sqlite"),
    (_nest("add_days({}, 1)", "start", 12) + " > today()", "sqlite"),
])
def test_sql_too_large_or_too_deep_is_refused_quickly(source, dialect):
    """Python evaluates these fine; their SQL form would repeat parts
    exponentially or overflow SQLite's parser stack, so to_sql says EX043
    (fast: the size is counted, never rendered)."""
    import time
    ce = compile_expression(source, SCOPE)
    ce.evaluate(deal_values(start=d(2024, 1, 31), amount=Decimal("5"), term=1), today=TODAY)
    started = time.perf_counter()
    with pytest.raises(ExprError) as info:
        ce.check_sql(dialect)
    assert info.value.code == "EX043"
    assert time.perf_counter() - started < 2


def test_check_sql():
    compile_expression("add_months(start, 2) > today()", SCOPE).check_sql("sqlite")
    compile_expression("add_months(start, 2) > today()", SCOPE).check_sql("postgresql")
    with pytest.raises(ExprError) as info:
        compile_expression("amount > 1", SCOPE).check_sql("oracle")
    assert info.value.code == "EX042"


def test_related_names_translate_through_a_join(database_url):
    """``customer__grade`` style names: the caller joins, entity_columns maps."""
    from danbao.expr import Scope, entity_columns
    from danbao.model.builder import build_models
    from metafactory import entity, field, meta
    m = meta(entity("customer", field("grade", "enum", options=["A", "B"]), field("limit_amount", "money")),
             entity("loan", field("amount", "money"), field("customer", "reference", target="customer")))
    models = build_models(m)
    engine = sa.create_engine(database_url)
    try:
        models.metadata.create_all(engine)
        loan, customer = models.table("loan"), models.table("customer")
        with engine.begin() as conn:
            conn.execute(customer.insert(), [dict(id=1, grade="A", limit_amount=Decimal("100"), version=1),
                                             dict(id=2, grade="B", limit_amount=None, version=1)])
            conn.execute(loan.insert(), [dict(id=1, amount=Decimal("50"), customer_id=1, version=1),
                                         dict(id=2, amount=Decimal("150"), customer_id=1, version=1),
                                         dict(id=3, amount=Decimal("10"), customer_id=2, version=1),
                                         dict(id=4, amount=Decimal("10"), customer_id=None, version=1)])
        scope = Scope.for_entity(m, "loan", related=("customer",))
        rule = compile_expression("customer__grade == 'A' and amount > customer__limit_amount * 0.9", scope,
                                  expect="boolean")
        cols = entity_columns(m.entity("loan"), loan, related={"customer": (m.entity("customer"), customer)})
        query = sa.select(loan.c.id).select_from(loan.outerjoin(customer, loan.c.customer_id == customer.c.id))
        pred = rule.to_sql(cols, today=TODAY, dialect_name=engine.dialect.name)
        with engine.connect() as conn:
            assert set(conn.scalars(query.where(pred))) == {2}
            assert set(conn.scalars(query.where(sa.not_(pred)))) == {1, 3, 4}
        assert rule.evaluate({"customer__grade": "A", "customer__limit_amount": Decimal("100"),
                              "amount": Decimal("150")}, today=TODAY) is True
    finally:
        engine.dispose()
