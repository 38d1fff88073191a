"""The expression language in Python: operators, Decimal exactness, the None
rule, types, limits, scopes, values, the function registry and errors."""
from __future__ import annotations

import datetime as dt
import pickle
from decimal import Decimal

import pytest

from danbao.expr import (CODES, ExprError, ExprEvalError, FunctionRegistry, NameInfo, Scope,
                         compile_expression, register_function, unregister_function)
from danbao.expr import functions as expr_functions
from metafactory import entity, field, meta

TODAY = dt.date(2024, 2, 29)
SCOPE = Scope({
    "amount": NameInfo("number", "money", 2),
    "rate": NameInfo("number", "rate", 6),
    "term": NameInfo("number", "integer", 0),
    "name": NameInfo("text", "string"),
    "flag": NameInfo("boolean", "boolean"),
    "start": NameInfo("date", "date"),
    "created_at": NameInfo("datetime", "datetime"),
})


def ev(source, today=TODAY, **values):
    return compile_expression(source, SCOPE).evaluate(values, today=today)


def D(text) -> Decimal:
    return Decimal(text)


# ------------------------------------------------------------------ numbers
def test_numeric_literals_are_decimal_and_exact():
    assert ev("amount * 0.015", amount=D("1000000.01")) == D("15000.00015")
    assert type(ev("amount * 0.015", amount=D("1000000.01"))) is Decimal
    assert ev("0.1 + 0.2 == 0.3") is True
    assert ev("0.1 + 0.2") == D("0.3")
    assert type(ev("1")) is Decimal
    assert ev("1_000.5 + 1e3") == D("2000.5")
    assert ev("amount * rate", amount=D("12345678.91"), rate=D("0.123456")) == D("1524148.13551296")


def test_integers_from_values_mix_with_decimals():
    assert ev("term * 2", term=6) == 12
    assert ev("term + 0.5", term=6) == D("6.5")
    assert ev("term > 5.5", term=6) is True


def test_division_is_decimal_rounded_to_ten_places():
    assert ev("1 / 3") == D("0.3333333333")
    assert ev("2 / 3") == D("0.6666666667")
    assert ev("term / 4", term=10) == D("2.5")
    assert ev("amount / 2", amount=D("1000000.01")) == D("500000.005")
    assert ev("-1 / 3") == D("-0.3333333333")


def test_division_by_zero_gives_none():
    assert ev("amount / 0", amount=D("5")) is None
    assert ev("amount // 0", amount=D("5")) is None
    assert ev("amount % 0", amount=D("5")) is None
    assert ev("amount / term", amount=D("5"), term=0) is None
    assert ev("amount / term > 1", amount=D("5"), term=0) is False


def test_floor_division_and_remainder_cut_toward_zero():
    assert ev("7 // 2") == 3
    assert ev("-7 // 2") == -3
    assert ev("7 % 2") == 1
    assert ev("-7 % 2") == -1
    assert ev("7.5 % 2") == D("1.5")
    assert ev("term // 30", term=365) == 12
    assert ev("0.3 // 0.1") == 3
    assert ev("0.3 % 0.1") == 0


def test_power_is_bounded_and_exact():
    assert ev("amount ** 2", amount=D("1.1")) == D("1.21")
    assert ev("1.1 ** 10") == D("2.5937424601")
    assert ev("amount ** 0", amount=D("0")) == 1
    assert ev("term ** 10", term=10) == 10 ** 10
    assert ev("-term ** 2", term=3) == -9


def test_huge_numbers_are_refused_at_run_time():
    with pytest.raises(ExprEvalError) as info:
        ev("amount ** 10 * amount ** 10 * amount ** 10", amount=D("1e9"))
    assert info.value.code == "EX103"
    with pytest.raises(ExprEvalError) as info:
        ev("term ** 10 * term ** 10 * term ** 10", term=10 ** 9)
    assert info.value.code == "EX103"


def test_text_concatenation_is_capped():
    assert ev("name + '-' + name", name="a") == "a-a"
    with pytest.raises(ExprEvalError) as info:
        ev("name + name", name="x" * 6000)
    assert info.value.code == "EX101"


def test_comparisons_and_chains():
    assert ev("1 < term <= 12", term=12) is True
    assert ev("1 < term <= 12", term=13) is False
    assert ev("start < today()", start=dt.date(2024, 1, 1)) is True
    assert ev("name == 'a' or name == 'b'", name="b") is True
    assert ev("name in ('a', 'b')", name="b") is True
    assert ev("term not in (1, 2, -3)", term=-3) is False
    assert ev("amount in (0.5, 1)", amount=D("1.00")) is True
    assert ev("created_at < created_at", created_at=dt.datetime(2024, 1, 1, 8)) is False
    assert ev("flag == True", flag=True) is True
    assert ev("flag == (amount > 1)", flag=False, amount=D("0")) is True


def test_if_else_and_boolean_operators_return_plain_booleans():
    assert ev("amount if flag else rate", flag=True, amount=D("1"), rate=D("2")) == 1
    assert ev("amount if flag else rate", flag=False, amount=D("1"), rate=D("2")) == 2
    assert ev("flag and amount > 1", flag=True, amount=D("2")) is True
    assert ev("flag or amount > 1", flag=False, amount=D("0")) is False
    assert ev("not flag", flag=False) is True


# ------------------------------------------------------------------ the None rule
@pytest.mark.parametrize("source", [
    "amount + 1", "amount - 1", "amount * 2", "amount / 2", "amount // 2", "amount % 2",
    "amount ** 2", "-amount", "+amount", "name + 'x'", "round_money(amount)", "abs(amount)",
    "min(amount, 1)", "max(1, amount)", "add_days(start, 1)", "add_months(start, 1)",
    "days_between(start, today())", "add_days(today(), amount)",
])
def test_arithmetic_and_functions_with_none_give_none(source):
    assert ev(source) is None


@pytest.mark.parametrize("source, expected", [
    ("amount > 1", False), ("amount < 1", False), ("amount == 1", False), ("amount != 1", False),
    ("amount >= amount", False), ("1 < amount < 3", False), ("start < today()", False),
    ("name == 'a'", False), ("name != 'a'", False), ("name in ('a', 'b')", False),
    ("name not in ('a', 'b')", False), ("flag == True", False), ("flag != True", False),
    ("amount == None", True), ("amount != None", False), ("None == amount", True),
    ("None == None", True), ("None != None", False),
    ("flag", None), ("not flag", True), ("flag and True", False), ("flag or True", True),
    ("not (amount > 1)", True), ("not (amount == None)", False),
    ("amount + 1 > 0", False), ("(amount + 1) == None", True),
    ("(1 if flag else 2) == 2", True), ("(1 if amount > 0 else 2) == 2", True),
    ("coalesce(amount, 0) == 0", True), ("coalesce(flag, False)", False),
    ("coalesce(amount, rate) == None", True),
])
def test_comparisons_and_logic_with_none(source, expected):
    assert ev(source) is expected


def test_a_condition_that_is_none_does_not_hold():
    cond = compile_expression("flag", SCOPE, expect="boolean")
    assert cond.evaluate({}, today=TODAY) is None
    assert cond.holds({}, today=TODAY) is False
    assert cond.holds({"flag": True}, today=TODAY) is True
    with pytest.raises(TypeError):
        compile_expression("amount", SCOPE).holds({}, today=TODAY)


# ------------------------------------------------------------------ types and limits
@pytest.mark.parametrize("source, kind", [
    ("amount * 2", "number"), ("name + 'x'", "text"), ("amount > 1", "boolean"),
    ("add_months(start, 1)", "date"), ("created_at", "datetime"), ("None", "null"),
    ("coalesce(amount, None)", "number"), ("min(start, today())", "date"),
    ("None if flag else 'x'", "text"), ("days_between(start, today())", "number"),
])
def test_result_types(source, kind):
    assert compile_expression(source, SCOPE).type == kind


def test_expect_checks_the_result_type():
    assert compile_expression("amount > 1", SCOPE, expect="boolean").type == "boolean"
    with pytest.raises(ExprError) as info:
        compile_expression("amount * 2", SCOPE, expect="boolean")
    assert info.value.code == "EX021"
    assert "yes/no" in info.value.message
    with pytest.raises(ExprError) as info:
        compile_expression("None", SCOPE, expect="boolean")
    assert info.value.code == "EX021"
    with pytest.raises(ExprError) as info:
        compile_expression("start", SCOPE, expect="number")
    assert info.value.code == "EX021"
    with pytest.raises(ValueError):
        compile_expression("amount", SCOPE, expect="money")


def test_limits_are_exact():
    compile_expression("amount" + " " * 994, SCOPE)         # 1000 characters
    compile_expression("1 + " * 99 + "1", SCOPE)  # 199 nodes
    with pytest.raises(ExprError) as info:
        compile_expression("1 + " * 100 + "1", SCOPE)
    assert info.value.code == "EX003"
    with pytest.raises(ExprError) as info:
        compile_expression("amount" + " " * 995, SCOPE)
    assert info.value.code == "EX002"
    compile_expression("-" * 19 + "amount", SCOPE)          # 20 levels
    with pytest.raises(ExprError) as info:
        compile_expression("-" * 20 + "amount", SCOPE)
    assert info.value.code == "EX004"
    compile_expression("(" * 20 + "amount" + ")" * 20, SCOPE)
    with pytest.raises(ExprError) as info:
        compile_expression("(" * 21 + "amount" + ")" * 21, SCOPE)
    assert info.value.code == "EX004"
    compile_expression("'" + "a" * 200 + "'", SCOPE)
    compile_expression("term in (" + ", ".join(map(str, range(50))) + ")", SCOPE)
    compile_expression("amount ** 10", SCOPE)


def test_a_long_sum_is_one_level_deep():
    """A chain like a + b + c + ... is how people write totals: it counts as
    one nesting level (it is still bounded by the node and length caps)."""
    compile_expression(" + ".join(["amount"] * 60), SCOPE)
    compile_expression(" * ".join(["rate"] * 30), SCOPE)
    assert ev(" + ".join(["amount"] * 60), amount=D("0.01")) == D("0.60")


def test_names_and_functions_used():
    ce = compile_expression("amount > 1 and add_months(start, term) < today()", SCOPE)
    assert ce.names == frozenset({"amount", "start", "term"})
    assert ce.functions == frozenset({"add_months", "today"})
    assert ce.source == "amount > 1 and add_months(start, term) < today()"
    assert "add_months" in repr(ce)


# ------------------------------------------------------------------ values
def test_values_must_be_plain():
    ce = compile_expression("amount > 1", SCOPE)
    for bad in ({"amount": lambda: 1}, {"amount": print}, {"amount": object()},
                {"amount": 1.5}, {"amount": [1]}, {"other": open}, {"other": {"a": 1}},
                {"amount": Decimal("NaN")}, {1: 1}):
        with pytest.raises(TypeError):
            ce.evaluate(bad, today=TODAY)
    with pytest.raises(TypeError):
        ce.evaluate([("amount", 1)], today=TODAY)


def test_values_must_match_the_declared_type():
    with pytest.raises(TypeError, match="declared number"):
        ev("amount > 1", amount="5")
    with pytest.raises(TypeError):
        ev("amount > 1", amount=True)
    with pytest.raises(TypeError):
        ev("start < today()", start=dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        ev("flag", flag=1)


def test_missing_values_are_none():
    assert ev("amount == None") is True


def test_today_is_the_as_of_date_never_the_clock():
    assert ev("today()", today=dt.date(2001, 9, 30)) == dt.date(2001, 9, 30)
    ce = compile_expression("today()", SCOPE)
    with pytest.raises(TypeError):
        ce.evaluate({}, today=dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        ce.evaluate({}, today="2024-01-01")
    with pytest.raises(TypeError):
        ce.evaluate({})   # today is required


def test_evaluate_does_not_touch_the_values_mapping():
    values = {"amount": D("1"), "unused": "x"}
    before = dict(values)
    ev_ = compile_expression("amount + 1", SCOPE)
    ev_.evaluate(values, today=TODAY)
    assert values == before


# ------------------------------------------------------------------ scopes
def _meta():
    return meta(
        entity("customer", field("name", "string"), field("grade", "enum", options=["A", "B"]),
               field("industry", "code", codelist="nope"), field("bank", "reference", target="bank")),
        entity("bank", field("name", "string")),
        entity("project", field("project_no", "string"), field("amount", "money"),
               field("rate", "rate"), field("score", "decimal", scale=3), field("term", "integer"),
               field("signed", "boolean"), field("maturity_date", "date"),
               field("approved_at", "datetime"), field("notes", "text"),
               field("customer", "reference", target="customer"),
               field("guarantors", "children", target="customer")),
    )


def test_scope_for_entity_types_every_column_field():
    scope = Scope.for_entity(_meta(), "project")
    kinds = {name: info.type for name, info in scope.names.items()}
    assert kinds == {"project_no": "text", "amount": "number", "rate": "number", "score": "number",
                     "term": "number", "signed": "boolean", "maturity_date": "date",
                     "approved_at": "datetime", "notes": "text", "customer": "number"}
    assert scope["amount"].scale == 2 and scope["rate"].scale == 6 and scope["score"].scale == 3
    assert "guarantors" not in scope


def test_scope_related_fields_one_level():
    m = _meta()
    scope = Scope.for_entity(m, "project", related=("customer",))
    assert scope["customer__grade"].type == "text"
    assert scope["customer__bank"].type == "number"
    assert "customer__bank__name" not in scope
    ce = compile_expression("customer__grade == 'A' and amount > 1", scope)
    assert ce.evaluate({"customer__grade": "A", "amount": D("2")}, today=TODAY) is True
    with pytest.raises(ExprError) as info:
        compile_expression("customer__grade == 'C'", scope)
    assert info.value.code == "EX022"
    assert Scope.for_entity(m, "project", related=True) == scope
    with pytest.raises(ValueError):
        Scope.for_entity(m, "project", related=("amount",))
    with pytest.raises(ExprError) as info:
        compile_expression("customer__grade == 'A'", Scope.for_entity(m, "project"))
    assert info.value.code == "EX011"


def test_scope_validation():
    with pytest.raises(ValueError):
        Scope({"__class__": "number"})
    with pytest.raises(ValueError):
        Scope({"a b": "number"})
    with pytest.raises(ValueError):
        Scope({"x": "money"})
    with pytest.raises(ValueError):
        SCOPE.extend({"amount": "number"})
    assert "extra" in SCOPE.extend({"extra": "text"})
    with pytest.raises(TypeError):
        compile_expression("1", {"amount": "number"})


# ------------------------------------------------------------------ the registry
def test_plugin_functions_are_registered_typed_and_checked():
    reg = expr_functions.REGISTRY.copy()
    reg.register("fee", lambda amount, rate: (amount * rate).quantize(Decimal("0.01")),
                 args=["number", "number"], returns="number")
    reg.register("shout", lambda s: s.upper(), args=["text"], returns="text")
    reg.register("bad", lambda x: 1.5, args=["number"], returns="number")
    reg.register("wrong", lambda x: "x", args=["number"], returns="number")
    reg.register("boom", lambda x: 1 / 0, args=["number"], returns="number")
    reg.register("asof", lambda ctx: ctx.today.year, returns="number", context=True)

    def comp(src):
        return compile_expression(src, SCOPE, functions=reg)

    assert comp("fee(amount, rate)").evaluate({"amount": D("100"), "rate": D("0.015")}, today=TODAY) == D("1.50")
    assert comp("shout(name)").evaluate({"name": "a"}, today=TODAY) == "A"
    assert comp("shout(name)").evaluate({}, today=TODAY) is None            # strict: None in, None out
    assert comp("asof()").evaluate({}, today=TODAY) == 2024
    with pytest.raises(ExprError) as info:
        comp("fee(amount)")
    assert info.value.code == "EX013"
    with pytest.raises(ExprError) as info:
        comp("shout(amount)")
    assert info.value.code == "EX013"
    for name, code in (("bad", "EX102"), ("wrong", "EX102"), ("boom", "EX102")):
        with pytest.raises(ExprEvalError) as info:
            comp(f"{name}(amount)").evaluate({"amount": D("1")}, today=TODAY)
        assert info.value.code == code
    assert comp("fee(amount, rate)").supports_sql is False
    with pytest.raises(ExprError) as info:
        comp("fee(amount, rate) > 1").to_sql({"amount": None}, today=TODAY, dialect_name="sqlite")
    assert info.value.code == "EX040"
    # the default registry does not know these
    with pytest.raises(ExprError):
        compile_expression("fee(amount, rate)", SCOPE)


def test_register_function_refuses_dangerous_or_bad_declarations():
    reg = FunctionRegistry()
    for fn in (eval, exec, open, getattr, __import__, compile, type):
        with pytest.raises((ValueError, TypeError)):
            reg.register("f", fn, args=["any"], returns="any")
    with pytest.raises(ValueError):
        reg.register("_private", abs, args=["number"], returns="number")
    with pytest.raises(ValueError):
        reg.register("class", abs, args=["number"], returns="number")
    with pytest.raises(ValueError):
        reg.register("f", abs, args=["money"], returns="number")
    with pytest.raises(TypeError):
        reg.register("f", "not callable", args=["number"], returns="number")
    reg.register("f", abs, args=["number"], returns="number")
    with pytest.raises(ValueError):
        reg.register("f", abs, args=["number"], returns="number")
    reg.register("f", abs, args=["number"], returns="number", replace=True)
    reg.unregister("f")
    with pytest.raises(KeyError):
        reg.unregister("f")


def test_global_register_and_unregister():
    register_function("double_it", lambda x: x * 2, args=["number"], returns="number",
                      sql=lambda ctx, x: x * 2)
    try:
        ce = compile_expression("double_it(amount) > 3", SCOPE)
        assert ce.supports_sql
    finally:
        unregister_function("double_it")
    # a compiled expression keeps the function it resolved
    assert ce.evaluate({"amount": D("2")}, today=TODAY) is True
    with pytest.raises(ExprError) as info:
        compile_expression("double_it(amount) > 3", SCOPE)
    assert info.value.code == "EX012"


def test_builtin_signatures_are_documented():
    names = expr_functions.REGISTRY.names()
    assert {"today", "days_between", "add_days", "add_months", "round_money", "min", "max", "abs",
            "coalesce", "date"} <= set(names)
    for spec in expr_functions.REGISTRY.specs():
        assert spec.doc and spec.sql is not None and spec.signature().startswith(spec.name + "(")


# ------------------------------------------------------------------ errors
def test_errors_carry_code_message_column_and_pickle():
    with pytest.raises(ExprError) as info:
        compile_expression("amount + 'x'", SCOPE)
    err = info.value
    assert (err.code, err.col, err.source) == ("EX020", 1, "amount + 'x'")
    assert str(err) == "EX020 at column 1: cannot add number and text"
    again = pickle.loads(pickle.dumps(err))
    assert (again.code, again.message, again.col) == (err.code, err.message, err.col)
    assert isinstance(err, ValueError)


def test_every_code_is_documented_in_the_readme():
    from pathlib import Path
    import danbao.expr
    readme = (Path(danbao.expr.__file__).parent / "README.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"`{code}`" in readme, code
    for name in expr_functions.REGISTRY.names():
        assert f"`{name}(" in readme, name


# ------------------------------------------------------------------ fuzzing
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOKENS = ["amount", "rate", "term", "name", "flag", "start", "created_at", "today()", "None", "True",
          "1", "0", "0.5", "-", "+", "*", "/", "//", "%", "**", "2", "(", ")", ",", "==", "!=", "<",
          ">=", "and", "or", "not", "if", "else", "in", "('a', 'b')", "(1, 2)", "'x'", "add_months(",
          "add_days(", "days_between(", "round_money(", "min(", "max(", "coalesce(", "abs(", "date(",
          ".", "[", "]", "__class__", "lambda", ":", "x", "=", "f'", "{", "}", "*", " "]
SAMPLE_VALUES = st.fixed_dictionaries({
    "amount": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2,
                                      min_value=-10 ** 12, max_value=10 ** 12),
    "rate": st.none() | st.decimals(min_value=-1, max_value=1, places=6),
    "term": st.none() | st.integers(-10 ** 6, 10 ** 6),
    "name": st.none() | st.text(max_size=20),
    "flag": st.none() | st.booleans(),
    "start": st.none() | st.dates(),
    "created_at": st.none() | st.datetimes(),
})


def _compile_or_refuse(source):
    try:
        return compile_expression(source, SCOPE)
    except ExprError as exc:
        assert exc.code in CODES and not exc.code.startswith("EX1")
        return None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_text_compiles_or_is_refused_with_a_code(source):
    _compile_or_refuse(source)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25).map(" ".join), SAMPLE_VALUES,
       st.dates())
def test_token_soup_never_escapes(source, values, today):
    """Whatever compiles evaluates to a plain value or raises ExprEvalError."""
    ce = _compile_or_refuse(source)
    if ce is None:
        return
    try:
        result = ce.evaluate(values, today=today)
    except ExprEvalError as exc:
        assert exc.code.startswith("EX1")
        return
    assert result is None or type(result) in (bool, int, Decimal, str, dt.date, dt.datetime)
