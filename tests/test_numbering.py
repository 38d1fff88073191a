"""Record numbers from metadata rules: scope per period, formatting, gaps never reused."""
import datetime as dt

from hypothesis import given, strategies as st

from danbao.engines.numbering import format_number, number_scope


def counter():
    seen: dict[str, int] = {}

    def next_seq(scope):
        seen[scope] = seen.get(scope, 0) + 1
        return seen[scope]
    return next_seq, seen


def test_yearly_rule_restarts_each_year():
    next_seq, seen = counter()
    rule = "DB-{year}-{seq:05d}"
    assert format_number(rule, dt.date(2026, 12, 31), next_seq) == "DB-2026-00001"
    assert format_number(rule, dt.date(2026, 12, 31), next_seq) == "DB-2026-00002"
    assert format_number(rule, dt.date(2027, 1, 1), next_seq) == "DB-2027-00001"
    assert seen == {"2026": 2, "2027": 1}


def test_monthly_and_unscoped_rules():
    assert number_scope("BH{year}{month}-{seq:04d}", dt.date(2026, 3, 9)) == "2026-03"
    assert number_scope("N{seq}", dt.date(2026, 3, 9)) == "*"
    next_seq, _ = counter()
    assert format_number("BH{year}{month}-{seq:04d}", dt.date(2026, 3, 9), next_seq) == "BH202603-0001"


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(9999, 12, 31)), st.integers(1, 200))
def test_numbers_are_distinct_and_ordered_within_a_scope(day, n):
    next_seq, _ = counter()
    numbers = [format_number("DB-{year}-{seq:06d}", day, next_seq) for _ in range(n)]
    assert len(set(numbers)) == n
    assert numbers == sorted(numbers)
    assert all(x.startswith(f"DB-{day.year:04d}-") for x in numbers)
