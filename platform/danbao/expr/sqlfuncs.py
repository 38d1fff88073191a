"""SQL forms of the built-in functions, for SQLite and PostgreSQL.

Each builder is ``builder(ctx, *args) -> ColumnElement``. The arguments are
already translated (and, on SQLite, computed numbers already rounded to their
exact decimal places, see ``sql.py``). Every builder keeps the None rule: a
NULL argument gives NULL (``coalesce`` aside).

SQLite keeps dates as ``'YYYY-MM-DD'`` text, so date arithmetic goes through
``julianday`` and ``date(d, modifiers...)``; PostgreSQL has real dates.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
DIALECTS = (SQLITE, POSTGRESQL)


@dataclass(frozen=True)
class SqlContext:
    """What a SQL builder knows: the dialect, the as-of date, the checker
    types and decimal places of its arguments and, for folded calls, the value."""
    dialect_name: str
    today: dt.date
    arg_types: tuple[str, ...] = ()
    arg_scales: tuple[int | None, ...] = ()
    folded: object = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect_name == SQLITE


def date_literal(ctx: SqlContext, value: dt.date):
    lit = sa.literal(value, sa.Date())
    return lit if ctx.is_sqlite else sa.cast(lit, sa.Date())


def _whole_int(ctx: SqlContext, n):
    """A number cut toward zero to a whole number (as Python's ``int(Decimal)``)."""
    if ctx.is_sqlite:
        return sa.cast(n, sa.Integer())   # SQLite's CAST truncates toward zero
    # PostgreSQL's CAST rounds; trunc() first (over numeric, to avoid the float overload)
    return sa.cast(sa.func.trunc(sa.cast(n, sa.Numeric())), sa.Integer())


def concat(*parts):
    """``a || b || ...``; operands are parenthesised (``||`` binds tighter than
    ``+``/``-`` in both SQLite and PostgreSQL)."""
    out = parts[0]
    for p in parts[1:]:
        out = out.op("||", precedence=100, return_type=sa.String())(p)
    return out


def sql_today(ctx: SqlContext):
    return date_literal(ctx, ctx.today)


def sql_literal_date(ctx: SqlContext, *args):
    return date_literal(ctx, ctx.folded)


def sql_days_between(ctx: SqlContext, a, b):
    if ctx.is_sqlite:
        return sa.cast(sa.func.julianday(b) - sa.func.julianday(a), sa.Integer())
    return b.op("-", return_type=sa.Integer())(a)          # date - date = integer days


#: Days from 0001-01-01 to 9999-12-31: a result outside [0, LAST_DAY] is out of range.
LAST_DAY = 3_652_058
#: Month index (year * 12 + month - 1) of 0001-01 and 9999-12.
FIRST_MONTH, LAST_MONTH = 12, 9999 * 12 + 11


def _in_date_range(ctx: SqlContext, x):
    """NULL for dates outside 0001-01-01 .. 9999-12-31, as Python gives None.

    SQLite's date() already gives NULL beyond 9999 but writes years 0 and below
    as '0000-..' / '-0714-..' (text that sorts below '0000-12-31'). PostgreSQL
    has BC dates and dates after 9999; both ends are mapped onto a sentinel
    that NULLIF removes, so the date is computed once."""
    if ctx.is_sqlite:
        floor = sa.literal("0000-12-31", sa.String())
        return sa.func.nullif(sa.func.max(x, floor, type_=sa.String()), floor, type_=sa.String())
    lo = sa.literal_column("DATE '0001-12-31 BC'", sa.Date())
    hi = sa.literal_column("DATE '10000-01-01'", sa.Date())
    squeezed = sa.func.least(sa.func.greatest(x, lo, type_=sa.Date()), hi, type_=sa.Date())
    return sa.func.nullif(sa.func.nullif(squeezed, lo, type_=sa.Date()), hi, type_=sa.Date())


def _clamp(x, lo, hi):
    return sa.func.least(sa.func.greatest(x, lo), hi)


def sql_add_days(ctx: SqlContext, d, n):
    if ctx.is_sqlite:
        # CAST(NULL AS INTEGER) || ' days' is NULL, and date(d, NULL) is NULL
        days = concat(_whole_int(ctx, n), sa.literal(" days", sa.String()))
        return _in_date_range(ctx, sa.func.date(d, days, type_=sa.String()))
    # PostgreSQL: count days from 0001-01-01 so that no intermediate date can
    # leave PostgreSQL's own range (which would be an error, not NULL)
    epoch = sa.literal_column("DATE '0001-01-01'", sa.Date())
    offset = d.op("-", return_type=sa.Numeric())(epoch) + sa.func.trunc(sa.cast(n, sa.Numeric()))
    offset = _clamp(offset, -1, LAST_DAY + 1)
    return _in_date_range(ctx, epoch.op("+", return_type=sa.Date())(sa.cast(offset, sa.Integer())))


def sql_add_months(ctx: SqlContext, d, n):
    if ctx.is_sqlite:
        months = _whole_int(ctx, n)
        # first of the target month, plus (day - 1) days ...
        shifted = sa.func.date(
            d, "start of month", concat(months, sa.literal(" months", sa.String())),
            concat(sa.func.strftime("%d", d) - 1, sa.literal(" days", sa.String())),
            type_=sa.String())
        # ... but never past the last day of the target month
        last = sa.func.date(
            d, "start of month", concat(months + 1, sa.literal(" months", sa.String())),
            "-1 days", type_=sa.String())
        return _in_date_range(ctx, sa.func.min(shifted, last, type_=sa.String()))
    # PostgreSQL's date + interval 'n months' clamps to the month's end itself;
    # n is first bounded so the target month stays within 1 BC .. 10000 AD
    here = sa.extract("year", d) * 12 + sa.extract("month", d) - 1
    months = _clamp(sa.func.trunc(sa.cast(n, sa.Numeric())), FIRST_MONTH - 1 - here, LAST_MONTH + 1 - here)
    moved = d.op("+", return_type=sa.DateTime())(sa.func.make_interval(0, sa.cast(months, sa.Integer())))
    return _in_date_range(ctx, sa.cast(moved, sa.Date()))


def sql_round_money(ctx: SqlContext, x):
    if ctx.is_sqlite:
        return sa.func.round(x, 2, type_=sa.Numeric())
    return sa.func.round(sa.cast(x, sa.Numeric()), 2, type_=sa.Numeric())


def sql_abs(ctx: SqlContext, x):
    return sa.func.abs(x, type_=sa.Numeric())


def _null_if_any_null(args, expr):
    """PostgreSQL's LEAST/GREATEST skip NULLs; the None rule wants NULL."""
    return sa.case((sa.or_(*(a.is_(None) for a in args)), sa.null()), else_=expr)


def sql_min(ctx: SqlContext, *args):
    if ctx.is_sqlite:
        return sa.func.min(*args)                  # scalar min(): NULL if any is NULL
    return _null_if_any_null(args, sa.func.least(*args))


def sql_max(ctx: SqlContext, *args):
    if ctx.is_sqlite:
        return sa.func.max(*args)
    return _null_if_any_null(args, sa.func.greatest(*args))


def sql_coalesce(ctx: SqlContext, *args):
    return sa.func.coalesce(*args)
