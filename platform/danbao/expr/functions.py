"""The function registry: every function an expression may call.

A function is declared with its argument and result types, a pure Python
implementation over plain values, and (optionally) a SQL form so that yes/no
rules using it can be pushed down to the database. Plugins add functions with
:func:`register_function`; the built-in ones are registered at import.

The None rule for functions: unless a function is declared ``strict=False``
(only ``coalesce`` is), any None argument makes the result None without the
function being called.
"""
from __future__ import annotations

import calendar
import datetime as dt
import difflib
import keyword
import threading
import types as pytypes
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable, Iterable, Sequence

import simpleeval

from danbao.expr import sqlfuncs
from danbao.expr.kinds import ANY, DATE, DATETIME, NULL, NUMBER, VALUE_TYPES, word

CENT = Decimal("0.01")
#: add_days / add_months give None when asked to move further than this (about
#: 4000 years): the SQL forms then never meet a date PostgreSQL cannot hold.
MAX_DAYS = sqlfuncs.MAX_DAYS
MAX_MONTHS = sqlfuncs.MAX_MONTHS


class ArgError(Exception):
    """Raised by a typer when arguments do not fit; becomes EX013."""


@dataclass(frozen=True)
class FunctionSpec:
    """One registered function.

    * ``args`` — declared argument types (``number``, ``text``, ``boolean``,
      ``date``, ``datetime`` or ``any``); with ``variadic`` the last one repeats
      and at least ``len(args)`` arguments are needed.
    * ``returns`` — the result type.
    * ``fn`` — the Python implementation: ``fn(*values)``, or ``fn(ctx, *values)``
      with ``context=True`` (``ctx.today`` is the as-of date).
    * ``sql`` — ``sql(ctx, *columns) -> ColumnElement`` or None (then rules using
      the function cannot be pushed down to SQL: EX040).
    * ``strict`` — a None argument gives None without calling ``fn``.
    * ``typer`` — for built-ins with polymorphic types: ``typer(arg_types) -> type``.
    * ``scale`` — ``scale(arg_scales) -> decimals of the result`` (None = unknown).
    * ``literal_args`` — arguments must be literal whole numbers; the call is
      folded at compile time (``date(2024, 1, 31)``).
    """
    name: str
    fn: Callable
    args: tuple[str, ...]
    returns: str
    sql: Callable | None = None
    variadic: bool = False
    strict: bool = True
    context: bool = False
    typer: Callable[[Sequence[str]], str] | None = None
    scale: Callable[[Sequence[int | None]], int | None] | None = None
    literal_args: bool = False
    doc: str = ""
    builtin: bool = False

    def signature(self) -> str:
        parts = list(self.args)
        if self.variadic and parts:
            parts.append("...")
        return f"{self.name}({', '.join(parts)}) -> {self.returns}"

    def result_type(self, arg_types: Sequence[str]) -> str:
        """The result type for these argument types; raises ArgError."""
        if self.typer is not None:
            return self.typer(arg_types)
        n, need = len(arg_types), len(self.args)
        if self.variadic:
            if n < need:
                raise ArgError(f"{self.name}() takes at least {need} argument{'s' * (need != 1)}, got {n}")
        elif n != need:
            raise ArgError(f"{self.name}() takes {need} argument{'s' * (need != 1)}, got {n}")
        for i, actual in enumerate(arg_types):
            expected = self.args[min(i, need - 1)] if need else ANY
            if expected != ANY and actual not in (expected, NULL, ANY):
                raise ArgError(f"{self.name}() argument {i + 1} must be {word(expected)}, got {word(actual)}")
        return self.returns

    def result_scale(self, arg_scales: Sequence[int | None]) -> int | None:
        return self.scale(arg_scales) if self.scale is not None else None


class FunctionRegistry:
    """Name -> FunctionSpec, with clear errors on bad registrations."""

    def __init__(self, specs: Iterable[FunctionSpec] = ()):
        self._specs: dict[str, FunctionSpec] = {}
        self._lock = threading.Lock()
        for spec in specs:
            self._add(spec, replace=False)

    def register(self, name: str, fn: Callable, *, args: Sequence[str] = (), returns: str,
                 sql: Callable | None = None, variadic: bool = False, strict: bool = True,
                 context: bool = False, doc: str = "", replace: bool = False) -> FunctionSpec:
        """Declare a function (see :class:`FunctionSpec`); returns its spec."""
        spec = FunctionSpec(name=name, fn=fn, args=tuple(args), returns=returns, sql=sql,
                            variadic=variadic, strict=strict, context=context, doc=doc)
        self._add(spec, replace=replace)
        return spec

    def _add(self, spec: FunctionSpec, *, replace: bool) -> None:
        name = spec.name
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
                or name.startswith("_") or name in ("True", "False", "None"):
            raise ValueError(f"{name!r} cannot be a function name")
        if not callable(spec.fn) or isinstance(spec.fn, (type, pytypes.ModuleType)):
            raise TypeError(f"function {name!r}: fn must be a plain function")
        if any(spec.fn is f for f in (*simpleeval.DISALLOW_FUNCTIONS, *_FORBIDDEN)):
            raise ValueError(f"function {name!r}: {spec.fn!r} may not be exposed to expressions")
        if spec.sql is not None and not callable(spec.sql):
            raise TypeError(f"function {name!r}: sql must be callable or None")
        for t in spec.args:
            if t not in VALUE_TYPES:
                raise ValueError(f"function {name!r}: unknown argument type {t!r}")
        if spec.returns not in VALUE_TYPES:
            raise ValueError(f"function {name!r}: unknown result type {spec.returns!r}")
        if spec.variadic and not spec.args:
            raise ValueError(f"function {name!r}: a variadic function declares at least one argument type")
        with self._lock:
            if name in self._specs and not replace:
                raise ValueError(f"function {name!r} is already registered (pass replace=True to replace it)")
            self._specs[name] = spec

    def unregister(self, name: str) -> None:
        with self._lock:
            if name not in self._specs:
                raise KeyError(f"no function {name!r} is registered")
            del self._specs[name]

    def get(self, name: str) -> FunctionSpec | None:
        return self._specs.get(name)

    def __contains__(self, name) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[FunctionSpec]:
        return [self._specs[n] for n in self.names()]

    def close_matches(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, list(self._specs), n=3, cutoff=0.6)

    def copy(self) -> "FunctionRegistry":
        return FunctionRegistry(self._specs.values())


#: Built-ins that must never be reachable, whatever simpleeval's own list says.
_FORBIDDEN = {__import__, exec, eval, compile, open, getattr, setattr, delattr, globals,
              locals, vars, dir, input, breakpoint, type, isinstance, issubclass, super}


# ---------------------------------------------------------------- built-in functions
class EvalContext:
    """What context functions receive: the as-of date (never the wall clock)."""
    __slots__ = ("today",)

    def __init__(self, today: dt.date):
        self.today = today


def _whole(n) -> int:
    """A number as a whole number, cut toward zero (SQL does the same)."""
    if type(n) is bool or type(n) not in (int, Decimal):
        raise TypeError(f"expected a number, got {type(n).__name__}")
    return int(n)


def _date(d) -> dt.date:
    if type(d) is not dt.date:
        raise TypeError(f"expected a date, got {type(d).__name__}")
    return d


def fn_today(ctx: EvalContext) -> dt.date:
    return ctx.today


def fn_days_between(a, b) -> int:
    return (_date(b) - _date(a)).days


def fn_years_between(a, b) -> int:
    """Whole years from ``a`` to ``b`` (an age): the anniversary counts once
    ``b``'s month and day reach ``a``'s, so a 29 February birthday counts on 1 March."""
    a, b = _date(a), _date(b)
    return b.year - a.year - ((b.month, b.day) < (a.month, a.day))


def fn_add_days(d, n):
    """``d`` moved by ``n`` days; None beyond MAX_DAYS or outside 0001..9999."""
    n = _whole(n)
    if abs(n) > MAX_DAYS:
        return None
    try:
        return _date(d) + dt.timedelta(days=n)
    except OverflowError:
        return None


def fn_add_months(d, n):
    """``d`` moved by ``n`` months, the day clamped to the end of the target
    month: 2024-01-31 + 1 month = 2024-02-29. None beyond MAX_MONTHS or
    outside 0001..9999."""
    d, n = _date(d), _whole(n)
    if abs(n) > MAX_MONTHS:
        return None
    year, month0 = divmod(d.year * 12 + d.month - 1 + n, 12)
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        return None
    last = calendar.monthrange(year, month0 + 1)[1]
    return dt.date(year, month0 + 1, min(d.day, last))


def _number(x):
    if type(x) is bool or type(x) not in (int, Decimal):
        raise TypeError(f"expected a number, got {type(x).__name__}")
    return x


def fn_round_money(x) -> Decimal:
    return Decimal(_number(x)).quantize(CENT, rounding=ROUND_HALF_UP)


def fn_abs(x):
    return abs(_number(x))


def fn_min(*xs):
    return min(xs)


def fn_max(*xs):
    return max(xs)


def fn_coalesce(*xs):
    for x in xs:
        if x is not None:
            return x
    return None


def fn_date(y, m, d) -> dt.date:
    return dt.date(_whole(y), _whole(m), _whole(d))


# -- typers and scales
def _typer_minmax(name: str):
    def typer(types: Sequence[str]) -> str:
        if len(types) < 2:
            raise ArgError(f"{name}() takes at least 2 arguments, got {len(types)}")
        kinds = {t for t in types if t not in (NULL, ANY)}
        if len(kinds) > 1:
            raise ArgError(f"{name}() arguments must all be of one type, got "
                           f"{' and '.join(sorted(word(k) for k in kinds))}")
        kind = kinds.pop() if kinds else ANY
        if kind not in (NUMBER, DATE, DATETIME, ANY):
            raise ArgError(f"{name}() works on numbers or dates, got {word(kind)}")
        return kind
    return typer


def _typer_coalesce(types: Sequence[str]) -> str:
    if len(types) < 2:
        raise ArgError(f"coalesce() takes at least 2 arguments, got {len(types)}")
    kinds = {t for t in types if t not in (NULL, ANY)}
    if len(kinds) > 1:
        raise ArgError(f"coalesce() arguments must all be of one type, got "
                       f"{' and '.join(sorted(word(k) for k in kinds))}")
    return kinds.pop() if kinds else (ANY if ANY in types else NULL)


def _max_scale(scales: Sequence[int | None]) -> int | None:
    known = [s for s in scales if s is not None]
    if len(known) != len(scales):
        return None
    return max(known, default=0)


BUILTINS: tuple[FunctionSpec, ...] = (
    FunctionSpec("today", fn_today, (), DATE, sqlfuncs.sql_today, context=True, builtin=True,
                 doc="the as-of date the caller passes (never the wall clock)"),
    FunctionSpec("days_between", fn_days_between, (DATE, DATE), NUMBER, sqlfuncs.sql_days_between,
                 scale=lambda s: 0, builtin=True, doc="b - a in days, a whole number"),
    FunctionSpec("years_between", fn_years_between, (DATE, DATE), NUMBER, sqlfuncs.sql_years_between,
                 scale=lambda s: 0, builtin=True, doc="whole years from a to b (an age); negative if b is before a"),
    FunctionSpec("add_days", fn_add_days, (DATE, NUMBER), DATE, sqlfuncs.sql_add_days,
                 builtin=True, doc="d moved by n days (n cut to a whole number toward zero); "
                                   "None outside years 1..9999 or beyond 1 460 000 days"),
    FunctionSpec("add_months", fn_add_months, (DATE, NUMBER), DATE, sqlfuncs.sql_add_months,
                 builtin=True, doc="d moved by n months, clamped to the end of the month; "
                                   "None outside years 1..9999 or beyond 48 000 months"),
    FunctionSpec("round_money", fn_round_money, (NUMBER,), NUMBER, sqlfuncs.sql_round_money,
                 scale=lambda s: 2, builtin=True, doc="x rounded to 0.01, halves away from zero"),
    FunctionSpec("abs", fn_abs, (NUMBER,), NUMBER, sqlfuncs.sql_abs, scale=_max_scale,
                 builtin=True, doc="absolute value"),
    FunctionSpec("min", fn_min, (ANY,), ANY, sqlfuncs.sql_min, variadic=True,
                 typer=_typer_minmax("min"), scale=_max_scale, builtin=True,
                 doc="the smallest of two or more numbers or dates"),
    FunctionSpec("max", fn_max, (ANY,), ANY, sqlfuncs.sql_max, variadic=True,
                 typer=_typer_minmax("max"), scale=_max_scale, builtin=True,
                 doc="the largest of two or more numbers or dates"),
    FunctionSpec("coalesce", fn_coalesce, (ANY,), ANY, sqlfuncs.sql_coalesce, variadic=True,
                 strict=False, typer=_typer_coalesce, scale=_max_scale, builtin=True,
                 doc="the first argument that is not None"),
    FunctionSpec("date", fn_date, (NUMBER, NUMBER, NUMBER), DATE, sqlfuncs.sql_literal_date,
                 literal_args=True, builtin=True, doc="a fixed date from literal year, month, day"),
)

#: The registry compile_expression uses unless given another.
REGISTRY = FunctionRegistry(BUILTINS)


def register_function(name: str, fn: Callable, args: Sequence[str] = (), returns: str = ANY, *,
                      sql: Callable | None = None, variadic: bool = False, strict: bool = True,
                      context: bool = False, doc: str = "", replace: bool = False) -> FunctionSpec:
    """Add a function to the default registry (the plugin hook).

    ``fn`` must be pure and bounded: it gets plain values and must return a plain
    value of type ``returns`` (checked at run time, EX102).
    """
    return REGISTRY.register(name, fn, args=args, returns=returns, sql=sql, variadic=variadic,
                             strict=strict, context=context, doc=doc, replace=replace)


def unregister_function(name: str) -> None:
    """Remove a function from the default registry (expressions compiled
    before keep the function they resolved)."""
    REGISTRY.unregister(name)


__all__ = ["ArgError", "BUILTINS", "EvalContext", "FunctionRegistry", "FunctionSpec", "REGISTRY",
           "register_function", "unregister_function"]
