"""danbao.expr — one safe expression language for all metadata.

Conditions (``when:``), computed values and rule formulas in packs are small
Python-syntax expressions. They are untrusted (DESIGN.md, principle 3):
parsed once at load in eval mode, checked against an allowlist of node kinds,
names checked against the entity's fields, sizes capped; then evaluated by
simpleeval over a flat dict of plain values, or translated to SQL for
portfolio-wide scans. See ``expr/README.md`` for the language.

    scope = Scope.for_entity(meta, "guarantee_project")
    rule = compile_expression("status == 'in_force' and "
                              "days_between(today(), maturity_date) <= 30",
                              scope, expect="boolean")
    rule.evaluate(values, today=as_of)                     # True / False / None
    select(t).where(rule.to_sql(columns, today=as_of, dialect_name="sqlite"))
"""
from danbao.expr.bind import entity_columns, row_values
from danbao.expr.compiled import CompiledExpr, compile_expression
from danbao.expr.errors import CODES, ExprError, ExprEvalError
from danbao.expr.functions import (REGISTRY, FunctionRegistry, FunctionSpec, register_function,
                                   unregister_function)
from danbao.expr.kinds import ANY, BOOLEAN, DATE, DATETIME, NULL, NUMBER, TEXT
from danbao.expr.scope import NameInfo, Scope
from danbao.expr.sqlfuncs import SqlContext

__all__ = [
    "ANY", "BOOLEAN", "CODES", "CompiledExpr", "DATE", "DATETIME", "ExprError", "ExprEvalError",
    "FunctionRegistry", "FunctionSpec", "NULL", "NUMBER", "NameInfo", "REGISTRY", "Scope",
    "SqlContext", "TEXT", "compile_expression", "entity_columns", "register_function",
    "row_values", "unregister_function",
]
