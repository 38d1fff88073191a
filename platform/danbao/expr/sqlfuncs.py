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
from sqlalchemy.sql.elements import Grouping

#: add_days / add_months give None (NULL) when asked to move further than this
#: (about 4000 years); danbao.expr.functions uses the same numbers.
MAX_DAYS = 1_460_000
MAX_MONTHS = 48_000

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
    return sa.cast(_trunc_numeric(n), sa.Integer())


def _trunc_numeric(n):
    return sa.func.trunc(sa.cast(n, sa.Numeric()))


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


def sql_years_between(ctx: SqlContext, a, b):
    """Year difference, less one while b's month-day is before a's (as Python)."""
    if ctx.is_sqlite:
        year = lambda d: sa.cast(sa.func.strftime("%Y", d), sa.Integer())
        md = lambda d: sa.func.strftime("%m-%d", d, type_=sa.String())
    else:
        year = lambda d: sa.cast(sa.func.extract("year", d), sa.Integer())
        md = lambda d: sa.func.to_char(d, "MM-DD", type_=sa.String())
    early = sa.case((md(b) < md(a), 1), else_=0)
    return Grouping((year(b) - year(a)).op("-", return_type=sa.Integer())(early))


def _in_date_range(ctx: SqlContext, x):
    """NULL for dates outside 0001-01-01 .. 9999-12-31, as Python gives None.

    SQLite's date() already gives NULL beyond 9999 but writes years 0 and below
    as '0000-..' / '-0714-..' (text that sorts below '0000-12-31'). PostgreSQL
    has BC dates and dates after 9999; both ends are squeezed onto a sentinel
    that NULLIF removes, so the date is computed once."""
    if ctx.is_sqlite:
        floor = sa.literal("0000-12-31", sa.String())
        return sa.func.nullif(sa.func.max(x, floor, type_=sa.String()), floor, type_=sa.String())
    lo = sa.literal_column("DATE '0001-12-31 BC'", sa.Date())
    hi = sa.literal_column("DATE '10000-01-01'", sa.Date())
    squeezed = sa.func.least(sa.func.greatest(x, lo, type_=sa.Date()), hi, type_=sa.Date())
    return sa.func.nullif(sa.func.nullif(squeezed, lo, type_=sa.Date()), hi, type_=sa.Date())


def _bounded_whole(ctx: SqlContext, n, limit: int):
    """``n`` cut toward zero, or NULL when that is beyond ±limit (Python gives
    None there too). Keeps every intermediate date inside PostgreSQL's range
    (4713 BC ..), so out-of-range input gives NULL, never an error."""
    if ctx.is_sqlite:
        whole = _whole_int(ctx, n)
        # whole / (abs(whole) <= limit): divided by 1, or by 0, which SQLite makes NULL
        ok = Grouping(sa.func.abs(whole) <= limit)
        return whole.op("/", return_type=sa.Integer())(ok)
    squeezed = sa.func.least(sa.func.greatest(_trunc_numeric(n), -(limit + 1)), limit + 1)
    inside = sa.func.nullif(sa.func.nullif(squeezed, -(limit + 1)), limit + 1)
    return sa.cast(inside, sa.Integer())


def sql_add_days(ctx: SqlContext, d, n):
    days = _bounded_whole(ctx, n, MAX_DAYS)
    if ctx.is_sqlite:
        # NULL || ' days' is NULL, and date(d, NULL) is NULL
        moved = sa.func.date(d, concat(days, sa.literal(" days", sa.String())), type_=sa.String())
    else:
        moved = d.op("+", return_type=sa.Date())(days)          # date + integer = date
    return _in_date_range(ctx, moved)


def sql_add_months(ctx: SqlContext, d, n):
    months = _bounded_whole(ctx, n, MAX_MONTHS)
    if ctx.is_sqlite:
        # the first of the target month, plus (day - 1) days ...
        shifted = sa.func.date(
            d, "start of month", concat(months, sa.literal(" months", sa.String())),
            concat(sa.func.strftime("%d", d) - 1, sa.literal(" days", sa.String())),
            type_=sa.String())
        # ... but never past the last day of the target month (the first of the
        # next month, less a day; for 9999-12 that is NULL, and 31 days fit anyway)
        last = sa.func.date(
            d, "start of month", concat(months + 1, sa.literal(" months", sa.String())),
            "-1 days", type_=sa.String())
        last = sa.func.coalesce(last, sa.literal("9999-12-31", sa.String()), type_=sa.String())
        return _in_date_range(ctx, sa.func.min(shifted, last, type_=sa.String()))
    # PostgreSQL's date + interval 'n months' clamps to the end of the month itself
    moved = d.op("+", return_type=sa.DateTime())(sa.func.make_interval(0, months))
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
