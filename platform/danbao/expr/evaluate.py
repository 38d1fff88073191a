"""Run a checked expression over a flat dict of plain values, with simpleeval.

The tree handed to simpleeval has already passed the checker, so only the
allowlisted node kinds remain and numeric literals are ``Decimal``. The
evaluator below is a ``simpleeval.SimpleEval`` that (belt and braces) knows
only those node kinds, looks names up only in the values it was given, calls
only the registered functions, and applies the None rule:

* arithmetic with None gives None; ``x / 0``, ``x // 0`` and ``x % 0`` give None;
* comparisons with None are False, except ``== None`` / ``!= None``;
* ``and``/``or``/``not`` and if/else conditions treat None as False.
"""
from __future__ import annotations

import ast
import datetime as dt
import decimal
import operator
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping

import simpleeval

from danbao.expr.checker import DIV_SCALE, Checked
from danbao.expr.errors import ExprEvalError
from danbao.expr.functions import EvalContext, FunctionSpec
from danbao.expr.kinds import ANY, check_value, is_plain, kind_of_value, word
from danbao.expr.scope import Scope

#: Longest text an expression may build (by concatenation).
MAX_TEXT_RESULT = 10_000
#: Numbers at or beyond this magnitude are refused (EX103).
MAX_MAGNITUDE = Decimal(10) ** 40
_QUANTUM = Decimal(1).scaleb(-DIV_SCALE)

#: Decimal arithmetic: wide enough that +, -, * of realistic values are exact.
CONTEXT = decimal.Context(prec=80, rounding=ROUND_HALF_UP, Emax=999, Emin=-999,
                          traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])


# ------------------------------------------------------------------ operators
def _num(x, sym: str):
    if type(x) is int or type(x) is Decimal:
        return x
    raise ExprEvalError("EX104", f"cannot use {sym} on {word(kind_of_value(x))} {x!r}")


def _bound(x):
    if abs(x) >= MAX_MAGNITUDE:
        raise ExprEvalError("EX103", "number out of range (|x| >= 10**40)")
    return x


def op_add(a, b):
    if a is None or b is None:
        return None
    if type(a) is str and type(b) is str:
        if len(a) + len(b) > MAX_TEXT_RESULT:
            raise ExprEvalError("EX101", f"text result longer than {MAX_TEXT_RESULT} characters")
        return a + b
    return _bound(_num(a, "+") + _num(b, "+"))


def op_sub(a, b):
    if a is None or b is None:
        return None
    return _bound(_num(a, "-") - _num(b, "-"))


def op_mul(a, b):
    if a is None or b is None:
        return None
    return _bound(_num(a, "*") * _num(b, "*"))


def op_div(a, b):
    """``a / b`` as a Decimal rounded to 10 places (half up); None for b == 0."""
    if a is None or b is None:
        return None
    a, b = _num(a, "/"), _num(b, "/")
    if b == 0:
        return None
    return _trim(_bound((Decimal(a) / Decimal(b)).quantize(_QUANTUM)))


def op_floordiv(a, b):
    """``a // b``: the quotient cut toward zero (as SQL); None for b == 0."""
    q = op_div(a, b)
    return None if q is None else int(q)


def op_mod(a, b):
    """``a % b`` = a - b * (a // b): takes the sign of ``a`` (as SQL); None for b == 0."""
    q = op_floordiv(a, b)
    return None if q is None else _bound(a - b * q)


def op_pow(a, n):
    if a is None:
        return None
    a = _num(a, "**")
    result = 1
    for _ in range(int(n)):       # n is a literal 0..10 (checked)
        result = _bound(result * a)
    return result


def op_neg(a):
    return None if a is None else -_num(a, "-")


def op_pos(a):
    return None if a is None else _num(a, "+")


def op_not(a):
    return not truth(a)


def truth(value) -> bool:
    """None counts as False; anything but a yes/no value is an error."""
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise ExprEvalError("EX104", f"expected a yes/no value, got {word(kind_of_value(value))} {value!r}")


def _trim(d: Decimal) -> Decimal:
    """Drop the trailing zeros of a division result (the value is unchanged)."""
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


OPERATORS = {
    ast.Add: op_add, ast.Sub: op_sub, ast.Mult: op_mul, ast.Div: op_div,
    ast.FloorDiv: op_floordiv, ast.Mod: op_mod, ast.Pow: op_pow,
    ast.USub: op_neg, ast.UAdd: op_pos, ast.Not: op_not,
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


# ------------------------------------------------------------------ the evaluator
class Runner(simpleeval.SimpleEval):
    """simpleeval restricted to the checked node kinds, with the None rule."""

    def __init__(self, checked: Checked, names: dict, functions: dict):
        super().__init__(operators=dict(OPERATORS), functions=functions, names=names)
        self.checked = checked
        self.nodes = {
            ast.Name: self._eval_name,
            ast.Constant: self._eval_constant,
            ast.UnaryOp: self._eval_unaryop,
            ast.BinOp: self._eval_binop,
            ast.BoolOp: self._eval_boolop,
            ast.Compare: self._eval_compare,
            ast.IfExp: self._eval_ifexp,
            ast.Call: self._eval_call,
        }

    def _eval(self, node):
        """simpleeval's dispatch without its per-result scan for forbidden
        callables and modules: here every value is plain by construction (names
        are checked on the way in, builtins return plain values, plugin results
        are checked in ``_bind``), and node kinds were allowlisted at compile time."""
        try:
            handler = self.nodes[type(node)]
        except KeyError:   # pragma: no cover - the checker refused it first
            raise ExprEvalError("EX100", f"{type(node).__name__} is not evaluated") from None
        return handler(node)

    def _eval_name(self, node):
        try:
            return self.names[node.id]
        except KeyError:   # pragma: no cover - every used name is in ``names``
            raise ExprEvalError("EX100", f"name {node.id!r} was not prepared") from None

    def _eval_boolop(self, node):
        if isinstance(node.op, ast.And):
            return all(truth(self._eval(v)) for v in node.values)
        return any(truth(self._eval(v)) for v in node.values)

    def _eval_ifexp(self, node):
        return self._eval(node.body) if truth(self._eval(node.test)) else self._eval(node.orelse)

    def _eval_compare(self, node):
        left_node, left = node.left, self._eval(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                items = self.checked.in_items[id(right_node)]
                if left is None:
                    return False
                found = any(left == item for item in items)
                return found != isinstance(op, ast.NotIn)     # `in` is never chained
            right = self._eval(right_node)
            if isinstance(op, (ast.Eq, ast.NotEq)) and (_is_none(left_node) or _is_none(right_node)):
                other = right if _is_none(left_node) else left
                result = (other is None) == isinstance(op, ast.Eq)
            elif left is None or right is None:
                return False
            else:
                try:
                    result = self.operators[type(op)](left, right)
                except TypeError:
                    raise ExprEvalError("EX104", f"cannot compare {word(kind_of_value(left))} "
                                                 f"with {word(kind_of_value(right))}") from None
            if not result:
                return False
            left_node, left = right_node, right
        return True

    def _eval_call(self, node):
        try:
            func = self.functions[node.func.id]
        except (KeyError, AttributeError):   # pragma: no cover - the checker resolved it
            raise ExprEvalError("EX100", "call of an unknown function") from None
        return func(*(self._eval(a) for a in node.args))


def _is_none(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _bind(spec: FunctionSpec, ctx: EvalContext):
    fn, strict, name, returns = spec.fn, spec.strict, spec.name, spec.returns
    context = spec.context
    check_result = not spec.builtin

    def call(*args):
        if strict and any(a is None for a in args):
            return None
        try:
            result = fn(ctx, *args) if context else fn(*args)
        except ExprEvalError:
            raise
        except (decimal.InvalidOperation, decimal.Overflow, OverflowError) as exc:
            raise ExprEvalError("EX103", f"{name}(): number out of range ({exc})") from None
        except Exception as exc:   # a plugin function failed: report, never leak
            raise ExprEvalError("EX102", f"{name}() failed: {type(exc).__name__}: {exc}") from None
        if check_result:
            if not is_plain(result) or (type(result) is Decimal and not result.is_finite()):
                raise ExprEvalError("EX102", f"{name}() returned {type(result).__name__}, not a plain value")
            if result is not None and returns != ANY and kind_of_value(result) != returns:
                raise ExprEvalError("EX102", f"{name}() returned {word(kind_of_value(result))}, "
                                             f"declared {word(returns)}")
        return result

    call.__name__ = f"expr_{name}"
    return call


class PlainValues(dict):
    """A values mapping already checked to hold only plain values under str
    names (see ``plain_values``): evaluating many expressions over one record
    checks it once instead of once per expression."""
    __slots__ = ()


def plain_values(values: Mapping[str, object]) -> PlainValues:
    """Check that ``values`` holds only plain values under str names; raise TypeError otherwise."""
    if type(values) is PlainValues:
        return values
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of names to plain values, not {type(values).__name__}")
    for key, value in values.items():
        if type(key) is not str:
            raise TypeError(f"value names must be str, got {key!r}")
        if not is_plain(value):
            check_value(key, value, ANY)    # raises with a clear message
    return PlainValues(values)


def prepare_names(checked: Checked, scope: Scope, values: Mapping[str, object]) -> dict:
    """The plain values of the names the expression uses (missing ones are None)."""
    values = plain_values(values)
    names = {}
    for name in checked.names:
        value = values.get(name)
        check_value(name, value, scope[name].type)
        names[name] = value
    return names


def make_runner(checked: Checked) -> tuple[Runner, EvalContext]:
    """A Runner with its functions bound to a context whose ``today`` is set per run.
    Building one costs more than most evaluations, so callers keep one per thread."""
    ctx = EvalContext(dt.date.min)
    functions = {name: _bind(spec, ctx) for name, spec in checked.functions.items()}
    return Runner(checked, {}, functions), ctx


def run(checked: Checked, scope: Scope, values: Mapping[str, object], *, today: dt.date, runner=None):
    """Evaluate ``checked`` over ``values`` as of ``today`` (``runner``: from make_runner, reused)."""
    if type(today) is not dt.date:
        raise TypeError(f"today must be a datetime.date, not {type(today).__name__}")
    names = prepare_names(checked, scope, values)
    runner, ctx = runner or make_runner(checked)
    ctx.today = today
    runner.names = names
    with decimal.localcontext(CONTEXT):
        try:
            return runner._eval(checked.tree.body)
        except ExprEvalError:
            raise
        except (decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero, OverflowError) as exc:
            raise ExprEvalError("EX103", f"number out of range ({type(exc).__name__})") from None
        except simpleeval.InvalidExpression as exc:   # pragma: no cover - the checker refused it first
            raise ExprEvalError("EX100", f"refused at run time: {exc}") from None
        except RecursionError:   # pragma: no cover - depth is capped at compile time
            raise ExprEvalError("EX100", "expression too deep to evaluate") from None
