"""compile_expression and the CompiledExpr it returns."""
from __future__ import annotations

import datetime as dt
import threading
from typing import Mapping

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from danbao.expr import evaluate as _evaluate
from danbao.expr import sql as _sql
from danbao.expr.checker import Checked, check
from danbao.expr.functions import REGISTRY, FunctionRegistry
from danbao.expr.kinds import BOOLEAN, DATE, DATETIME, NUMBER, TEXT
from danbao.expr.scope import Scope


_SQL_TYPES = {NUMBER: sa.Numeric, TEXT: sa.String, BOOLEAN: sa.Boolean, DATE: sa.Date,
              DATETIME: sa.DateTime}


class CompiledExpr:
    """A checked expression, ready to evaluate over plain values or to
    translate to SQL. Immutable and safe to share between threads."""

    __slots__ = ("_checked", "_scope", "_local")

    def __init__(self, checked: Checked, scope: Scope):
        self._checked = checked
        self._scope = scope
        self._local = threading.local()     # one reusable evaluator per thread

    @property
    def source(self) -> str:
        return self._checked.source

    @property
    def names(self) -> frozenset[str]:
        """The scope names the expression uses."""
        return self._checked.names

    @property
    def type(self) -> str:
        """The result type: number, text, boolean, date, datetime, null or any."""
        return self._checked.type

    @property
    def functions(self) -> frozenset[str]:
        """The functions the expression calls."""
        return frozenset(self._checked.functions)

    @property
    def supports_sql(self) -> bool:
        """Whether every function used has a SQL form (else ``to_sql`` raises EX040)."""
        return all(spec.sql is not None for spec in self._checked.functions.values())

    def evaluate(self, values: Mapping[str, object], *, today: dt.date) -> object:
        """The value over ``values`` (name -> plain value; missing names are None).

        Raises TypeError for a values mapping holding anything but plain values
        (None, bool, int, Decimal, str, date, datetime) or a value of the wrong
        type for its name, and ExprEvalError (EX1xx) for run-time problems.
        """
        runner = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._local.runner = _evaluate.make_runner(self._checked)
        return _evaluate.run(self._checked, self._scope, values, today=today, runner=runner)

    def holds(self, values: Mapping[str, object], *, today: dt.date) -> bool:
        """For conditions: True only when the expression evaluates to True
        (None counts as False)."""
        if self._checked.type != BOOLEAN:
            raise TypeError(f"{self.source!r} is not a yes/no expression")
        return self.evaluate(values, today=today) is True

    def to_sql(self, columns: Mapping[str, ColumnElement], *, today: dt.date,
               dialect_name: str) -> ColumnElement:
        """The expression as SQLAlchemy Core over ``columns`` (name -> column).

        A yes/no expression gives a predicate that is never NULL and is true
        exactly for the rows where ``evaluate`` gives True. Other expressions
        give their value (NULL where Python gives None).
        """
        return _sql.to_sql(self._checked, columns, today=today, dialect_name=dialect_name)

    def check_sql(self, dialect_name: str) -> None:
        """Raise ExprError (EX040/EX042/EX043) if this expression cannot be
        pushed down to ``dialect_name``; for checking rules when a pack loads."""
        columns = {name: sa.column(name, _SQL_TYPES.get(self._scope[name].type, sa.Numeric())())
                   for name in self.names}
        _sql.to_sql(self._checked, columns, today=dt.date(2000, 1, 1), dialect_name=dialect_name)

    def __repr__(self) -> str:
        return f"<CompiledExpr {self.source!r} -> {self.type}>"


def compile_expression(source: str, scope: Scope, *, expect: str | None = None,
                       functions: FunctionRegistry | None = None) -> CompiledExpr:
    """Parse and check ``source`` against ``scope``; nothing is evaluated.

    ``expect="boolean"`` (for conditions) or another type makes a different
    result type an error (EX021). Raises ExprError with a stable code.
    """
    if not isinstance(scope, Scope):
        raise TypeError(f"scope must be a Scope, not {type(scope).__name__}")
    checked = check(source, scope, functions or REGISTRY, expect)
    return CompiledExpr(checked, scope)
