"""Compile every expression a pack declares on its entities, at load time.

Computed values and the conditions on fields and sections (``visible_if``,
``required_if``, ``readonly_if``) are checked here, against the entity's own
fields (and one level through its references), so a bad expression is a
pack error with file, line and the expression language's code — never a
surprise at run time.
"""
from __future__ import annotations

from danbao.expr import BOOLEAN, ExprError, Scope, compile_expression
from danbao.meta.errors import PackError
from danbao.meta.model import Meta

CONDITIONS = ("visible_if", "required_if", "readonly_if")
#: computed value types the expression must produce, by field type
RESULT = {"integer": "number", "decimal": "number", "money": "number", "rate": "number",
          "string": "text", "text": "text", "enum": "text", "code": "text",
          "boolean": "boolean", "date": "date", "datetime": "datetime"}


def key(entity: str, where: str, kind: str) -> str:
    """The lookup key of a compiled expression: ``entity.field.kind`` or ``entity.section:key.kind``."""
    return f"{entity}.{where}.{kind}"


def compile_all(meta: Meta) -> tuple[dict, list[PackError]]:
    compiled, errors = {}, []
    for em in meta.entities.values():
        declared = [(f.name, kind, getattr(f, kind), f.source) for f in em.fields
                    for kind in ("computed",) + CONDITIONS if getattr(f, kind)]
        declared += [(f"section:{s.key}", "visible_if", s.visible_if, em.source) for s in em.sections if s.visible_if]
        if not declared:
            continue
        scope = Scope.for_entity(meta, em.name)
        for where, kind, source, src in declared:
            expect = BOOLEAN if kind != "computed" else RESULT.get(em.field(where).type)
            try:
                compiled[key(em.name, where, kind)] = compile_expression(source, scope, expect=expect)
            except ExprError as exc:
                errors.append(PackError(src.file if src else "?", src.line if src else 0, exc.code,
                                        f"{em.name}.{where} {kind}: {exc.message}"))
    for rule in meta.warnings.values():
        src = rule.source
        try:
            compiled[warning_key(rule.code)] = compile_expression(rule.when, Scope.for_entity(meta, rule.entity),
                                                                  expect=BOOLEAN)
        except ExprError as exc:
            errors.append(PackError(src.file if src else "?", src.line if src else 0, exc.code,
                                    f"warning rule {rule.code} when: {exc.message}"))
    return compiled, errors


def warning_key(code: str) -> str:
    return f"warning:{code}"
