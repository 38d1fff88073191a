"""Translate a checked expression to SQLAlchemy Core, keeping the None rule.

Yes/no expressions become a predicate that is always TRUE or FALSE, never
NULL (so a caller may negate it safely), and selects exactly the rows for
which Python evaluation gives ``True``. How the None rule is kept:

* a comparison is NULL in SQL when a side is NULL; where that matters (under
  ``not``, as a value, at the top) it becomes ``cmp AND x IS NOT NULL`` for
  plain columns (an index on x still serves) or ``COALESCE(cmp, false)``;
* ``x == None`` / ``x != None`` become ``IS NULL`` / ``IS NOT NULL``;
* a yes/no column under ``not`` or at the top becomes ``col IS true``;
* arithmetic NULL propagates as in Python; ``/ 0`` is ``NULLIF(b, 0)`` → NULL;
* ``min``/``max`` are NULL when any argument is (PostgreSQL's LEAST skips NULLs).

Numbers: PostgreSQL computes exactly (numeric). SQLite computes with 8-byte
floats, so a computed number is rounded to the decimal places the checker
worked out for it (money 2 + rate 6 → a product has 8) before it is compared,
truncated or rounded; results are exact while they need at most 15
significant digits. ``/`` is rounded to 10 places on both sides (see README).
"""
from __future__ import annotations

import ast
import datetime as dt
from decimal import Decimal
from typing import Mapping

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, ColumnElement, Grouping

from danbao.expr.checker import DIV_SCALE, Checked
from danbao.expr.errors import ExprError
from danbao.expr.kinds import BOOLEAN, NUMBER, TEXT
from danbao.expr.sqlfuncs import DIALECTS, SqlContext, concat, date_literal

#: SQLite doubles hold about 15 significant digits; rounding finer is pointless.
SQLITE_MAX_ROUND = 15
_CMP = {ast.Eq: "__eq__", ast.NotEq: "__ne__", ast.Lt: "__lt__", ast.LtE: "__le__",
        ast.Gt: "__gt__", ast.GtE: "__ge__"}
_ARITH = {ast.Add: operators.add, ast.Sub: operators.sub, ast.Mult: operators.mul}
#: Binding strength of the arithmetic we build (higher binds tighter).
_STRENGTH = {operators.add: 1, operators.sub: 1, operators.mul: 2}


def to_sql(checked: Checked, columns: Mapping[str, ColumnElement], *, today: dt.date,
           dialect_name: str) -> ColumnElement:
    """The expression over ``columns`` (name -> column) as a SQL expression."""
    if dialect_name not in DIALECTS:
        raise ExprError("EX042", f"cannot translate expressions for {dialect_name!r}; "
                                 f"supported: {', '.join(DIALECTS)}", None, checked.source)
    if type(today) is not dt.date:
        raise TypeError(f"today must be a datetime.date, not {type(today).__name__}")
    for spec in checked.functions.values():
        if spec.sql is None:
            raise ExprError("EX040", f"{spec.name}() has no SQL form, so this rule can only be "
                                     f"evaluated in Python", None, checked.source)
    for name in sorted(checked.names):
        col = columns.get(name) if isinstance(columns, Mapping) else None
        if col is None:
            raise ExprError("EX041", f"no column given for {name!r}", None, checked.source)
        if not isinstance(col, ColumnElement):
            raise TypeError(f"column for {name!r} must be a SQLAlchemy column expression, not {type(col).__name__}")
    tr = Translator(checked, columns, today, dialect_name)
    body = checked.tree.body
    result = tr.cond(body, definite=True) if checked.type == BOOLEAN else tr.value(body)
    check_translation(result, dialect_name, checked.source)
    return result


#: Most SQL elements a translation may render to (shared parts count each time
#: they are rendered: add_months on SQLite, for one, names its date three times).
MAX_SQL_ELEMENTS = 5000


def rendered_size(element) -> int:
    """How many elements ``element`` renders to, counting shared parts once
    per use, in time linear in the number of distinct parts."""
    sizes: dict[int, int] = {}
    stack = [(element, False)]
    while stack:
        elem, expanded = stack.pop()
        key = id(elem)
        if key in sizes:
            continue
        children = list(elem.get_children())
        if expanded or not children:
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
        else:
            stack.append((elem, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(element)]


def check_translation(element, dialect_name: str, source: str) -> None:
    """EX043 when the SQL would be too big, or too deeply nested for SQLite's
    parser (its stack allows about 30 nested function calls)."""
    size = rendered_size(element)
    if size > MAX_SQL_ELEMENTS:
        raise ExprError("EX043", f"the SQL form would have {size} parts (at most {MAX_SQL_ELEMENTS}); "
                                 f"evaluate this expression in Python", None, source)
    if dialect_name == "sqlite":
        from sqlalchemy.dialects import sqlite as sqlite_dialect
        sql = str(element.compile(dialect=sqlite_dialect.dialect()))
        problem = sqlite_parse_problem(sql)
        if problem:
            raise ExprError("EX043", f"SQLite cannot parse the SQL form ({problem}); "
                                     f"evaluate this expression in Python", None, source)


def sqlite_parse_problem(sql_expression: str) -> str | None:
    """SQLite's own verdict on whether it can parse the expression (names it
    does not know are fine here: they are checked after parsing)."""
    import sqlite3
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"SELECT {sql_expression}")
    except sqlite3.Error as exc:
        message = str(exc)
        if "stack overflow" in message or "too large" in message or "too many" in message \
                or "too deep" in message:
            return message
    finally:
        conn.close()
    return None


class Translator:
    def __init__(self, checked: Checked, columns, today: dt.date, dialect_name: str):
        self.checked = checked
        self.columns = columns
        self.today = today
        self.dialect = dialect_name
        self.sqlite = dialect_name == "sqlite"

    def kind(self, node) -> str:
        return self.checked.types[id(node)]

    def scale(self, node) -> int | None:
        return self.checked.scales.get(id(node))

    # -- conditions ---------------------------------------------------------------
    def cond(self, node, definite: bool) -> ColumnElement:
        """A predicate true exactly where Python gives True. With ``definite``
        it is never NULL; without, NULL may stand for Python's False."""
        if isinstance(node, ast.Compare):
            return sa.and_(*self._comparisons(node, definite))
        if isinstance(node, ast.BoolOp):
            parts = [self.cond(v, definite) for v in node.values]
            return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sa.not_(self.cond(node.operand, definite=True))
        if isinstance(node, ast.Constant):
            return sa.true() if node.value is True else sa.false()
        if isinstance(node, ast.IfExp):
            return sa.case((self.cond(node.test, definite=False), self.cond(node.body, definite)),
                           else_=self.cond(node.orelse, definite))
        value = self.value(node)          # a yes/no column or function result
        if not definite:
            return value
        if isinstance(node, ast.Name):
            return value.is_(sa.true())
        return sa.func.coalesce(value, sa.false())

    def _comparisons(self, node: ast.Compare, definite: bool) -> list:
        nodes = [node.left, *node.comparators]
        cache: dict[int, ColumnElement] = {}

        def side(i: int) -> ColumnElement:      # each operand translated once
            if i not in cache:
                cache[i] = self.operand(nodes[i])
            return cache[i]

        out = []
        for i, op in enumerate(node.ops):
            opt, left_node, right_node = type(op), nodes[i], nodes[i + 1]
            if opt in (ast.In, ast.NotIn):
                items = [self._literal(v) for v in self.checked.in_items[id(right_node)]]
                pred = side(i).in_(items) if opt is ast.In else side(i).not_in(items)
                out.append(self._definite(pred, [(left_node, side(i))], definite))
            elif opt in (ast.Eq, ast.NotEq) and (_is_none(left_node) or _is_none(right_node)):
                if _is_none(left_node) and _is_none(right_node):
                    out.append(sa.true() if opt is ast.Eq else sa.false())
                else:
                    other = side(i + 1) if _is_none(left_node) else side(i)
                    out.append(other.is_(None) if opt is ast.Eq else other.is_not(None))
            else:
                pred = getattr(side(i), _CMP[opt])(side(i + 1))
                out.append(self._definite(pred, [(left_node, side(i)), (right_node, side(i + 1))],
                                          definite))
        return out

    def _definite(self, pred, sides, definite: bool):
        if not definite:
            return pred
        nullable = [(node, col) for node, col in sides if _nullable(node, self.checked)]
        if not nullable:
            return pred
        if all(isinstance(node, ast.Name) for node, _ in nullable):
            # x > 5 AND x IS NOT NULL: stays usable by an index on x
            return sa.and_(pred, *(col.is_not(None) for _, col in nullable))
        return sa.func.coalesce(pred, sa.false(), type_=sa.Boolean())   # computes each side once

    # -- values -------------------------------------------------------------------
    def operand(self, node) -> ColumnElement:
        """A value about to be compared, truncated or rounded: on SQLite a
        computed number is first rounded to its exact decimal places."""
        value = self.value(node)
        if self.sqlite and self.kind(node) == NUMBER and _computed(node):
            scale = self.scale(node)
            if scale is not None and scale > 0:
                return sa.func.round(value, min(scale, SQLITE_MAX_ROUND), type_=sa.Numeric())
        return value

    def value(self, node) -> ColumnElement:
        if isinstance(node, ast.Name):
            return self.columns[node.id]
        if isinstance(node, ast.Constant):
            return self._literal(node.value)
        if isinstance(node, (ast.Compare, ast.BoolOp)) or \
                (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            return self.cond(node, definite=True)
        if isinstance(node, ast.UnaryOp):
            v = self.value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.IfExp):
            return sa.case((self.cond(node.test, definite=False), self.value(node.body)),
                           else_=self.value(node.orelse))
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExprError("EX100", f"{type(node).__name__} has no SQL form", None,
                        self.checked.source)  # pragma: no cover - the checker refused it

    def _literal(self, value):
        if value is None:
            return sa.null()
        if value is True:
            return sa.true()
        if value is False:
            return sa.false()
        if isinstance(value, Decimal):
            return sa.literal(value, sa.Numeric(asdecimal=True))
        if isinstance(value, str):
            return sa.literal(value, sa.String())
        raise TypeError(f"no SQL literal for {value!r}")  # pragma: no cover

    def _binop(self, node: ast.BinOp) -> ColumnElement:
        op = type(node.op)
        if op is ast.Add and self.kind(node) == TEXT:
            return concat(self._text(node.left), self._text(node.right))
        if op is ast.Pow:
            return self._power(node)
        if op in _ARITH:
            return arith(_ARITH[op], self.value(node.left), self.value(node.right))
        left, right = self.value(node.left), self.value(node.right)
        if op is ast.Div:
            return self._div(node.left, left, right)
        if op is ast.FloorDiv:
            return self._trunc(self._div(node.left, left, right))
        # a % b = a - b * (a // b): the sign of a, as in Python here
        q = self._trunc(self._div(node.left, left, right))
        return arith(operators.sub, left, arith(operators.mul, right, q))

    def _text(self, node):
        v = self.value(node)
        return v if self.sqlite else sa.cast(v, sa.Text())

    def _div(self, left_node, left, right):
        """a / b rounded to 10 places; NULL when b is 0."""
        divisor = sa.func.nullif(right, 0)
        if self.sqlite:
            quotient = sa.cast(left, sa.Float()).op("/", return_type=sa.Float())(divisor)
        else:
            # enough places that rounding to 10 afterwards is exact
            scale = max(16, (self.scale(left_node) or 0))
            quotient = sa.cast(left, sa.Numeric(1000, min(scale, 1000))) \
                .op("/", return_type=sa.Numeric())(divisor)
        return sa.func.round(quotient, DIV_SCALE, type_=sa.Numeric())

    def _trunc(self, value):
        if self.sqlite:
            return sa.cast(value, sa.Integer())          # truncates toward zero
        return sa.func.trunc(value, type_=sa.Numeric())

    def _power(self, node: ast.BinOp):
        n = int(node.right.value)
        base = self.value(node.left)
        if n == 0:
            return sa.case((base.is_(None), sa.null()), else_=self._literal(Decimal(1)))
        result = base
        for _ in range(n - 1):
            result = arith(operators.mul, result, base)
        return result

    def _call(self, node: ast.Call):
        spec = self.checked.functions[node.func.id]
        ctx = SqlContext(
            dialect_name=self.dialect, today=self.today,
            arg_types=tuple(self.kind(a) for a in node.args),
            arg_scales=tuple(self.scale(a) for a in node.args),
            folded=self.checked.folded.get(id(node)))
        if id(node) in self.checked.folded:
            return date_literal(ctx, ctx.folded) if isinstance(ctx.folded, dt.date) \
                else self._literal(ctx.folded)
        args = [self.operand(a) for a in node.args]
        return spec.sql(ctx, *args)


def arith(op, left, right) -> ColumnElement:
    """``left op right`` with only the parentheses SQL needs: a chain such as
    a + b + c renders flat (SQLite's parser stack is shallow, about 30 levels
    of nesting), while a - (b + c) and (a + b) * c keep theirs."""
    strength = _STRENGTH[op]
    return BinaryExpression(_group(left, strength, right_side=False),
                            _group(right, strength, right_side=True), op, type_=sa.Numeric())


def _group(expr, strength: int, right_side: bool):
    if isinstance(expr, BinaryExpression):
        inner = _STRENGTH.get(expr.operator)
        if inner is None or inner < strength or (right_side and inner == strength):
            return Grouping(expr)
    return expr


def _is_none(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _computed(node) -> bool:
    """Numbers SQLite may hold inexactly: results of arithmetic and functions."""
    if isinstance(node, ast.UnaryOp):
        return _computed(node.operand)
    return isinstance(node, (ast.BinOp, ast.Call, ast.IfExp))


def _nullable(node, checked: Checked) -> bool:
    """Whether the SQL value of ``node`` can be NULL (conservatively)."""
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, (ast.Compare, ast.BoolOp)):
        return False
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.Not) is False and _nullable(node.operand, checked)
    if isinstance(node, ast.Call):
        name = node.func.id
        if id(node) in checked.folded or name == "today":
            return False
        if name == "coalesce":
            return all(_nullable(a, checked) for a in node.args)
    return True
