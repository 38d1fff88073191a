"""Translate a checked condition into JavaScript for the form's live checks.

The server stays the authority (records.py enforces every rule); this only
lets the form show, hide, require and lock fields as the user types. The
input is an expression that already passed danbao.expr's allowlist, so
only literals, field names, operators and registered functions reach here;
literals are emitted with json.dumps. The None rule is kept by the small
runtime ``DanbaoExpr`` in danbao.js.
"""
from __future__ import annotations

import ast
import json

_BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.In: "in", ast.NotIn: "not in"}


class Untranslatable(ValueError):
    pass


def to_js(source: str) -> str:
    return _node(ast.parse(source, mode="eval").body)


def _node(n) -> str:
    if isinstance(n, ast.Constant):
        return "null" if n.value is None else json.dumps(str(n.value) if not isinstance(n.value, (bool, int, float, str)) else n.value)
    if isinstance(n, ast.Name):
        return f"v({json.dumps(n.id)})"
    if isinstance(n, ast.BoolOp):
        op = " && " if isinstance(n.op, ast.And) else " || "
        return "(" + op.join(f"D.t({_node(x)})" for x in n.values) + ")"
    if isinstance(n, ast.UnaryOp):
        if isinstance(n.op, ast.Not):
            return f"(!D.t({_node(n.operand)}))"
        return f"D.op({json.dumps('-' if isinstance(n.op, ast.USub) else '+')}, 0, {_node(n.operand)})"
    if isinstance(n, ast.BinOp):
        return f"D.op({json.dumps(_BIN[type(n.op)])}, {_node(n.left)}, {_node(n.right)})"
    if isinstance(n, ast.Compare):
        parts, left = [], n.left
        for op, right in zip(n.ops, n.comparators):
            if _is_none(right) or _is_none(left):
                other = left if _is_none(right) else right
                test = "D.isnull" if isinstance(op, ast.Eq) else "!D.isnull"
                parts.append(f"{test}({_node(other)})")
            elif isinstance(op, (ast.In, ast.NotIn)):
                items = "[" + ", ".join(_node(e) for e in right.elts) + "]"
                parts.append(f"D.cmp({json.dumps(_CMP[type(op)])}, {_node(left)}, {items})")
            else:
                parts.append(f"D.cmp({json.dumps(_CMP[type(op)])}, {_node(left)}, {_node(right)})")
            left = right
        return "(" + " && ".join(parts) + ")"
    if isinstance(n, ast.IfExp):
        return f"(D.t({_node(n.test)}) ? {_node(n.body)} : {_node(n.orelse)})"
    if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
        args = ", ".join(_node(a) for a in n.args)
        return f"D.call({json.dumps(n.func.id)}, [{args}])"
    raise Untranslatable(type(n).__name__)


def _is_none(n) -> bool:
    """``x == None`` / ``x != None`` test for null; any other comparison with null is false."""
    return isinstance(n, ast.Constant) and n.value is None


def form_rules(meta, em) -> list[dict]:
    """The conditions of ``em``'s form as [{target, kind, js}] for danbao.js."""
    rules = []
    for s in em.sections:
        if s.visible_if:
            rules.append({"target": f"section-{s.key}", "kind": "visible_if", "js": to_js(s.visible_if)})
    return rules + _field_rules(em)


def _field_rules(em) -> list[dict]:
    rules = []
    for f in em.fields:
        for kind in ("visible_if", "required_if", "readonly_if"):
            source = getattr(f, kind)
            if source:
                rules.append({"target": f.name, "kind": kind, "js": to_js(source)})
    return rules


def child_rules(meta, em) -> dict[str, dict]:
    """Per children field of ``em``: the child entity's own conditions and field types,
    which danbao.js evaluates row by row over that row's inputs. A child section's
    ``visible_if`` becomes a ``visible_if`` of each of its fields (a field shows only
    when all of its visible_if rules hold)."""
    out = {}
    for f in em.children:
        child = meta.entity(f.target)
        rules = [{"target": name, "kind": "visible_if", "js": to_js(s.visible_if)}
                 for s in child.sections if s.visible_if for name in s.fields]
        rules += _field_rules(child)
        if rules:
            out[f.name] = {"types": {c.name: c.type for c in child.column_fields}, "rules": rules}
    return out
