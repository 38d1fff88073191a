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


def sql_add_days(ctx: SqlContext, d, n):
    days = _whole_int(ctx, n)
    if ctx.is_sqlite:
        # CAST(NULL AS INTEGER) || ' days' is NULL, and date(d, NULL) is NULL
        return sa.func.date(d, concat(days, sa.literal(" days", sa.String())), type_=sa.String())
    return d.op("+", return_type=sa.Date())(days)           # date + integer = date


def sql_add_months(ctx: SqlContext, d, n):
    months = _whole_int(ctx, n)
    if ctx.is_sqlite:
        # first of the target month, plus (day - 1) days ...
        shifted = sa.func.date(
            d, "start of month", concat(months, sa.literal(" months", sa.String())),
            concat(sa.func.strftime("%d", d) - 1, sa.literal(" days", sa.String())),
            type_=sa.String())
        # ... but never past the last day of the target month
        last = sa.func.date(
            d, "start of month", concat(months + 1, sa.literal(" months", sa.String())),
            "-1 days", type_=sa.String())
        return sa.func.min(shifted, last, type_=sa.String())
    # PostgreSQL's date + interval 'n months' already clamps to the month's end
    return sa.cast(d.op("+", return_type=sa.DateTime())(sa.func.make_interval(0, months)), sa.Date())


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
