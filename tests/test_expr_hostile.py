"""Hostile expressions: each is refused at compile time with its own code,
and nothing is ever evaluated (the evaluator is booby-trapped here)."""
from __future__ import annotations

import ast
import datetime as dt
import os

import pytest
import simpleeval

from danbao.expr import (ExprError, ExprEvalError, NameInfo, Scope, compile_expression)
from danbao.expr import evaluate as expr_evaluate
from danbao.expr.checker import check
from danbao.expr.functions import REGISTRY

SCOPE = Scope({
    "amount": NameInfo("number", "money", 2),
    "x": NameInfo("number", "integer", 0),
    "y": NameInfo("text", "string"),
    "name": NameInfo("text", "string"),
    "status": NameInfo("text", "enum", options=frozenset({"active", "closed"})),
    "flag": NameInfo("boolean", "boolean"),
    "established_on": NameInfo("date", "date"),
    "created_at": NameInfo("datetime", "datetime"),
})

HOSTILE = [
    # escapes through the object model
    ("__import__('os')", "EX012"),
    ("__import__", "EX011"),
    ("__builtins__", "EX011"),
    ("().__class__.__bases__", "EX010"),
    ("x.__class__", "EX010"),
    ("x.real", "EX010"),
    ('"{0.__class__}".format(1)', "EX010"),
    ("'{}'.format", "EX010"),
    ("f'{x}'", "EX010"),
    ("f'{x!r:>{10}}'", "EX010"),
    ("getattr(x, 'y')", "EX012"),
    ("getattr", "EX011"),
    ("open('/etc/passwd')", "EX012"),
    ("open('/tmp/danbao-expr-pwned', 'w')", "EX012"),
    ("eval('1')", "EX012"),
    ("exec('import os')", "EX012"),
    ("compile('1', '', 'eval')", "EX012"),
    ("type(x)", "EX012"),
    ("str(x)", "EX012"),
    ("amount > 1 and print(1)", "EX012"),
    ("today().year", "EX010"),
    ("today()()", "EX012"),
    ("amount()", "EX012"),
    ("(lambda: 1)()", "EX010"),
    ("lambda: 1", "EX010"),
    # resource exhaustion
    ("9**9**9", "EX030"),
    ("10**100", "EX030"),
    ("x ** -1", "EX030"),
    ("x ** 2.5", "EX030"),
    ("x ** x", "EX030"),
    ("(x ** 2) ** 2", "EX030"),
    ("'a'*10**9", "EX020"),
    ("y * 1000000", "EX020"),
    ("[x for x in range(10)]", "EX010"),
    ("{x: 1 for x in 'ab'}", "EX010"),
    ("(x for x in 'ab')", "EX010"),
    ("(" * 50 + "x" + ")" * 50, "EX004"),
    ("(((((" * 10 + "1+1" + "))))) " * 10, "EX004"),
    ("1+(" * 40 + "1" + ")" * 40, "EX004"),
    ("not " * 30 + "flag", "EX004"),
    ("-" * 30 + "x", "EX004"),
    ("x + " * 375 + "x", "EX002"),
    ("1+" * 300 + "1", "EX003"),
    ("x" + " " * 1500, "EX002"),
    ("'" + "a" * 201 + "'", "EX031"),
    ("1e999", "EX031"),
    ("1" * 40, "EX031"),
    ("amount in (" + ", ".join(str(i) for i in range(100)) + ")", "EX032"),
    ("amount in ()", "EX032"),
    # constructs outside the allowlist
    ("(x := 1)", "EX010"),
    ("amount[0]", "EX010"),
    ("y[1:2]", "EX010"),
    ("{'a': 1}", "EX010"),
    ("{1, 2}", "EX010"),
    ("[1, 2]", "EX010"),
    ("(1, 2)", "EX010"),
    ("min(*[1,2])", "EX010"),
    ("round_money(x=1)", "EX010"),
    ("x in y", "EX010"),
    ("x in (1, y)", "EX010"),
    ("x < 1 in (1, 2)", "EX010"),
    ("b'abc'", "EX010"),
    ("1j", "EX010"),
    ("...", "EX010"),
    ("x is None", "EX010"),
    ("x | 1", "EX010"),
    ("x << 100000", "EX010"),
    ("~x", "EX010"),
    ("await x", "EX010"),
    ("(yield)", "EX010"),
    # not an expression at all
    ("import os", "EX001"),
    ("x = 1", "EX001"),
    ("x; y", "EX001"),
    ("*x", "EX001"),
    ("x\x00", "EX001"),
    ("", "EX001"),
    ("x +", "EX001"),
    # names and functions
    ("name_that_is_not_a_field > 1", "EX011"),
    ("today > established_on", "EX011"),
    ("not_registered_fn(1)", "EX012"),
    ("days_between(established_on)", "EX013"),
    ("add_days(established_on, 'x')", "EX013"),
    ("date(2024, 2, 30)", "EX013"),
    ("date(x, 1, 1)", "EX013"),
    ("min(x)", "EX013"),
    # types
    ("'a' + 1", "EX020"),
    ("established_on + 1", "EX020"),
    ("established_on - established_on", "EX020"),
    ("established_on > 5", "EX020"),
    ("established_on < created_at", "EX020"),
    ("amount if flag else 'x'", "EX020"),
    ("1 if x else 2", "EX020"),
    ("x and flag", "EX020"),
    ("not x", "EX020"),
    ("-y", "EX020"),
    ("flag + 1", "EX020"),
    ("flag < True", "EX020"),
    ("y < 'b'", "EX020"),
    ("x < None", "EX020"),
    ("x in ('a', 'b')", "EX020"),
    ("x in (1, 'a')", "EX020"),
    ("status == 'activ'", "EX022"),
    ("status in ('active', 'gone')", "EX022"),
]


@pytest.fixture(autouse=True)
def no_evaluation(monkeypatch):
    """Any attempt to evaluate fails the test loudly."""
    def trap(*args, **kwargs):
        raise AssertionError("evaluation was reached")
    monkeypatch.setattr(simpleeval.SimpleEval, "__init__", trap)
    monkeypatch.setattr(simpleeval.SimpleEval, "_eval", trap)
    monkeypatch.setattr(expr_evaluate, "run", trap)
    monkeypatch.setattr(simpleeval, "simple_eval", trap)


def test_there_are_many_hostile_cases():
    assert len(HOSTILE) >= 30
    assert len({src for src, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("source, code", HOSTILE, ids=[f"{i:03d}-{c}" for i, (_, c) in enumerate(HOSTILE)])
def test_hostile_expression_is_refused(source, code):
    with pytest.raises(ExprError) as info:
        compile_expression(source, SCOPE)
    assert info.value.code == code, str(info.value)
    assert not isinstance(info.value, ExprEvalError)
    assert info.value.message
    assert not os.path.exists("/tmp/danbao-expr-pwned")


@pytest.mark.parametrize("source, fragment", [
    ("x.__class__", "attribute access"),
    ("amount[0]", "subscripts"),
    ("[x for x in range(10)]", "comprehensions"),
    ("lambda: 1", "lambda"),
    ("f'{x}'", "f-strings"),
    ("(x := 1)", "assignment expressions"),
    ("{'a': 1}", "dict literals"),
    ("min(*[1,2])", "starred"),
    ("round_money(x=1)", "keyword arguments"),
    ("9**9**9", "nested **"),
    ("10**100", "exponent"),
    ("'a' + 1", "cannot add text and number"),
    ("established_on + 1", "dates only through date functions"),
    ("established_on > 5", "cannot compare date with number"),
    ("amount if flag else 'x'", "different types: number and text"),
    ("amout > 1", "did you mean: amount"),
    ("name_that_is_not_a_field > 1", "unknown name 'name_that_is_not_a_field'"),
    ("round_mony(x)", "did you mean: round_money()"),
    ("today > established_on", "today is a function"),
    ("status == 'activ'", "did you mean: active"),
    ("x in y", "literal list"),
])
def test_messages_name_the_problem(source, fragment):
    with pytest.raises(ExprError) as info:
        compile_expression(source, SCOPE)
    assert fragment in info.value.message


def test_error_column_points_at_the_offending_part():
    with pytest.raises(ExprError) as info:
        compile_expression("amount > 1 and x.__class__", SCOPE)
    assert info.value.col == 16
    assert "EX010 at column 16" in str(info.value)
    with pytest.raises(ExprError) as info:
        compile_expression("'担保' == y and nope", SCOPE)
    assert info.value.col == 15          # characters, not UTF-8 bytes


def test_the_runtime_is_a_second_line_of_defence(monkeypatch):
    """Even a tree that skipped the checker cannot reach attributes: the
    evaluator only knows the allowlisted node kinds."""
    monkeypatch.undo()
    checked = check("x + 1", SCOPE, REGISTRY)
    checked.tree = ast.parse("x.__class__", mode="eval")
    with pytest.raises(ExprEvalError) as info:
        expr_evaluate.run(checked, SCOPE, {"x": 1}, today=dt.date(2024, 1, 1))
    assert info.value.code == "EX100"
