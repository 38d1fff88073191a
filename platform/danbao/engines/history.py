"""Histories read back from the audit trail (``danbao_audit``).

So far one: the revaluations of a project's counter-guarantees (反担保估值
历史) — every value an appraisal row was given, old → new, by whom and when.
The audit trail already holds each change of a child row under its project
(``root_entity`` / ``root_id``), so this is one query; rows deleted since
still show, named by their id. No Flask here.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from danbao.meta.model import EntityMeta, Meta
from danbao.model.system import AUDIT_TABLE

#: the project's children field holding counter-guarantees, and the value field on them
COUNTER_GUARANTEES = "counter_guarantees"
APPRAISED_VALUE = "appraised_value"


@dataclass(frozen=True)
class Revaluation:
    at: dt.datetime
    user_id: int | None
    username: str | None
    action: str                    # create | update | delete
    entity: str                    # the counter-guarantee entity
    record_id: int                 # the counter-guarantee row
    kind: str | None               # the row's counter-guarantee kind code (None when the row is gone)
    title: str                     # how the row reads (its title field, else #id)
    old: Decimal | None
    new: Decimal | None

    @property
    def change(self) -> Decimal | None:
        """new − old (None when either side is missing)."""
        return self.new - self.old if self.old is not None and self.new is not None else None


def counter_guarantee_field(meta: Meta, em: EntityMeta, value_field: str = APPRAISED_VALUE):
    """The project's children field whose rows carry ``value_field`` (``counter_guarantees`` first), or None."""
    candidates = [f for f in em.children
                  if f.target in meta.entities and meta.entity(f.target).has_field(value_field)]
    candidates.sort(key=lambda f: f.name != COUNTER_GUARANTEES)
    return candidates[0] if candidates else None


def _decimal(text: str | None) -> Decimal | None:
    if text in (None, ""):
        return None
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return None


def revaluations(session, models, meta: Meta, project_id: int, *, entity: str | None = None,
                 value_field: str = APPRAISED_VALUE, limit: int = 500) -> list[Revaluation]:
    """Changes of ``value_field`` on the project's counter-guarantee rows, newest first.

    A row's first value (its creation) reads old = None; a row deleted with a
    value reads new = None. Audit rows are matched on the child entity and
    field, under the project as root.
    """
    entity = entity or meta.setting("project_entity")
    if not entity or entity not in meta.entities:
        return []
    em = meta.entity(entity)
    field = counter_guarantee_field(meta, em, value_field)
    if field is None:
        return []
    child_em = meta.entity(field.target)
    audit = models.system[AUDIT_TABLE]
    rows = session.execute(
        sa.select(audit.c.at, audit.c.user_id, audit.c.username, audit.c.action, audit.c.record_id,
                  audit.c.old_value, audit.c.new_value)
        .where(audit.c.root_entity == entity, audit.c.root_id == project_id,
               audit.c.entity == child_em.name, audit.c.field == value_field)
        .order_by(audit.c.id.desc()).limit(limit)).all()
    if not rows:
        return []
    current = _current_rows(session, models, child_em, {r.record_id for r in rows})
    out = []
    for r in rows:
        old, new = _decimal(r.old_value), _decimal(r.new_value)
        if old is None and new is None:
            continue
        kind, title = current.get(r.record_id, (None, f"#{r.record_id}"))
        out.append(Revaluation(at=r.at, user_id=r.user_id, username=r.username, action=r.action,
                               entity=child_em.name, record_id=r.record_id, kind=kind, title=title,
                               old=old, new=new))
    return out


def _current_rows(session, models, child_em: EntityMeta, ids) -> dict[int, tuple[str | None, str]]:
    """id -> (kind code, title) of the rows that still exist."""
    table = models.table(child_em.name)
    kind_col = table.c.kind if child_em.has_field("kind") and "kind" in table.c else sa.null()
    title_name = child_em.field(child_em.title).column_name \
        if child_em.title and child_em.has_field(child_em.title) else None
    title_col = table.c[title_name] if title_name and title_name in table.c else sa.null()
    found = {}
    for rid, kind, title in session.execute(sa.select(table.c.id, kind_col, title_col)
                                            .where(table.c.id.in_(sorted(ids)))):
        found[rid] = (kind, str(title) if title not in (None, "") else f"#{rid}")
    return found
