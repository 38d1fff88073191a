"""Compile every expression a pack declares on its entities, at load time.

Computed values and the conditions on fields and sections (``visible_if``,
``required_if``, ``readonly_if``) are checked here, against the entity's own
fields (and one level through its references), so a bad expression is a
pack error with file, line and the expression language's code — never a
surprise at run time.
"""
from __future__ import annotations

from danbao.expr import BOOLEAN, NUMBER, TEXT, ExprError, Scope, compile_expression
from danbao.expr.scope import RELATED_SEP, prefixed_names
from danbao.meta.errors import PackError
from danbao.meta.model import Meta
from danbao.meta.scorecards import INDICATOR_PREFIX, LATEST, PREVIOUS

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
    _compile_scorecards(meta, compiled, errors)
    for wf in meta.workflows.values():
        done, problems = compile_workflow(meta, wf)
        compiled.update(done)
        errors += problems
    return compiled, errors


def compile_workflow(meta: Meta, wf) -> tuple[dict, list[PackError]]:
    """A workflow's conditions (applies_if, requires, transition when), compiled
    against the entity's fields and its references' fields (``customer__grade``).
    Used at load time and again for a record pinned to an older version."""
    scope = Scope.for_entity(meta, wf.entity, related=True)
    out, errors = {}, []
    declared = [(workflow_key(wf.code, "applies_if"), wf.applies_if, wf.source, "applies_if")]
    for step in wf.steps:
        declared.append((workflow_key(wf.code, f"{step.key}.requires"), step.requires, step.source,
                         f"step {step.key} requires"))
        declared += [(workflow_key(wf.code, f"{step.key}.next{i}"), t.when, step.source, f"step {step.key} next to {t.to}")
                     for i, t in enumerate(step.next)]
    for key_, source, src, what in declared:
        if source is None:
            continue
        try:
            out[key_] = compile_expression(source, scope, expect=BOOLEAN)
        except ExprError as exc:
            errors.append(PackError(src.file if src else "?", src.line if src else 0, exc.code,
                                    f"workflow {wf.code} {what}: {exc.message}"))
    return out, errors


def workflow_key(code: str, where: str) -> str:
    return f"workflow:{code}:{where}"


def scorecard_scope(meta: Meta, card) -> Scope:
    """What a scorecard's formulas see: the customer's fields, and with
    ``statements:`` the latest statement as ``fs__…`` and the one before as ``fs_prev__…``."""
    scope = Scope.for_entity(meta, card.entity)
    if card.statements_field:
        child = meta.entity(card.entity).field(card.statements_field).target
        scope = scope.extend({**prefixed_names(meta, child, LATEST), **prefixed_names(meta, child, PREVIOUS)})
    return scope


def _compile_scorecards(meta: Meta, compiled: dict, errors: list) -> None:
    for card in meta.scorecards.values():
        scope = scorecard_scope(meta, card)
        outputs = {}
        for ind in card.indicators:
            kind = TEXT if ind.input or ind.options else NUMBER
            outputs[f"{INDICATOR_PREFIX}{RELATED_SEP}{ind.code}"] = kind
            if ind.formula is None:
                continue
            src = ind.source
            try:
                compiled[indicator_key(card.code, ind.code)] = compile_expression(ind.formula, scope, expect=kind)
            except ExprError as exc:
                errors.append(PackError(src.file if src else "?", src.line if src else 0, exc.code,
                                        f"scorecard {card.code} indicator {ind.code} formula: {exc.message}"))
        knock_scope = scope.extend(outputs)
        for ko in card.knockouts:
            src = ko.source
            try:
                compiled[knockout_key(card.code, ko.code)] = compile_expression(ko.when, knock_scope, expect=BOOLEAN)
            except ExprError as exc:
                errors.append(PackError(src.file if src else "?", src.line if src else 0, exc.code,
                                        f"scorecard {card.code} knock-out {ko.code} when: {exc.message}"))


def indicator_key(card: str, indicator: str) -> str:
    return f"scorecard:{card}:{indicator}"


def knockout_key(card: str, knockout: str) -> str:
    return f"scorecard:{card}:knockout:{knockout}"


def warning_key(code: str) -> str:
    return f"warning:{code}"
