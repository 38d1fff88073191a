"""Enforce an entity's stage controls (``controls:``, meta/controls.py) on people's writes.

The record service asks this module before it applies anything a person
sent: which of the sent values would really change the record (a form sends
every field; a value sent unchanged is no change), and whether the record's
current stage lets this person change each of them. A refusal names every
locked field at once and carries a stable code (CT001 locked in this stage,
CT002 not for your roles); nothing has been written when it is raised.

Writes by the system (an actor without a user: workflow ``set:`` values and
step actions, the daily run, imports by scripts) are not governed: they are
the rules, not people walking around them.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from danbao.engines.refusals import FIELD_LOCKED, NOT_DELETABLE, ROLE_MAY_NOT_CHANGE, Refusal
from danbao.engines.users import role_names
from danbao.meta.model import EntityMeta, Label, Meta, StageControlMeta
from danbao.model.system import WF_INSTANCE_TABLE

ADMIN_ROLE = "Admin"


def changed_fields(em: EntityMeta, obj, plan: Mapping[str, Any]) -> list[str]:
    """What the sent values would change: field names, and for child collections
    ``rows.field`` for a value changed in an existing row or ``rows`` itself when a
    row is added or removed. Computed fields are the rules' to change, not the person's."""
    changed = []
    for f in em.fields:
        if f.name not in plan or f.computed:
            continue
        if f.type == "children":
            changed += _row_changes(obj, f.name, plan[f.name])
        elif obj is None or getattr(obj, f.column_name) != plan[f.name]:
            changed.append(f.name)
    return changed


def _row_changes(obj, name: str, planned) -> list[str]:
    existing = list(getattr(obj, name)) if obj is not None else []
    kept, out = set(), []
    for child, values in planned:
        if child is None:
            return [name]
        kept.add(child.id)
        em = child.__danbao_entity__
        for key, value in values.items():
            f = em.field(key)
            if f.computed:
                continue
            if f.type == "children" and _row_changes(child, key, value) or \
                    f.type != "children" and getattr(child, f.column_name) != value:
                if f"{name}.{key}" not in out:
                    out.append(f"{name}.{key}")
    if any(c.id not in kept for c in existing):
        return [name]
    return out


class StageGate:
    """One person's view of an entity's stage controls."""

    def __init__(self, meta: Meta, session, models, user_id: int | None, lang: str = "zh"):
        self.meta, self.session, self.models = meta, session, models
        self.user_id = user_id
        self.lang = lang
        self._roles: set[str] | None = None

    @property
    def governed(self) -> bool:
        return self.user_id is not None

    def roles(self) -> set[str]:
        if self._roles is None:
            self._roles = role_names(self.session, self.user_id) if self.user_id is not None else set()
        return self._roles

    def control(self, em: EntityMeta) -> StageControlMeta | None:
        return self.meta.controls.get(em.name) if self.governed else None

    def may_import(self, em: EntityMeta) -> bool:
        """May this person create records of ``em`` as they stand elsewhere (in any
        status, with the system's fields filled)? The system, Admin, the control's
        ``import_roles``; with no stage controls, anyone who may write."""
        control = self.control(em)
        return control is None or ADMIN_ROLE in self.roles() or self._holds(control.import_roles)

    # -- creating -----------------------------------------------------------------
    def check_create(self, em: EntityMeta, plan: Mapping[str, Any]) -> None:
        control = self.control(em)
        if control is None or not control.create_in:
            return
        status = plan.get(control.field)
        if self.may_import(em):
            return
        rule = control.stage(status)
        if status in control.create_in and rule is not None and rule.roles and not self._holds(rule.roles):
            raise Refusal(ROLE_MAY_NOT_CHANGE, Label(f"您的角色不能新建{em.label.zh}", f"your roles may not create a {em.label.en.lower()}"),
                          field=control.field)
        if status in control.create_in:
            return
        field = em.field(control.field)
        allowed = "、".join(field.option_label(s, "zh") for s in control.create_in)
        allowed_en = ", ".join(field.option_label(s, "en") for s in control.create_in)
        raise Refusal(FIELD_LOCKED, Label(
            f"新建记录的{field.label.zh}只能是：{allowed}（以其他状态导入须有导入权限）",
            f"a new record's {field.label.en.lower()} can only be: {allowed_en} (importing in another status needs the import right)"),
            field=control.field, details={"fields": [control.field]})

    # -- changing -----------------------------------------------------------------
    def locked(self, em: EntityMeta, obj, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """Of ``names``, those locked in the record's stage (for everyone, or at this
        step) and those this person's roles may not change: (locked, forbidden)."""
        control = self.control(em)
        if control is None:
            return [], []
        rule = control.stage(getattr(obj, em.field(control.field).column_name))
        if rule is not None and rule.grants is None:        # change: all (for the stage's roles)
            return [], ([] if not rule.roles or self._holds(rule.roles) else [n for n in names])
        locked, forbidden = [], []
        steps = None
        for name in names:
            rows = name.split(".")[0]                     # a grant on a collection covers its rows' fields
            grants = [g for g in (rule.grants if rule else ()) if name in g.fields or rows in g.fields]
            if not grants:
                locked.append(name)
                continue
            if steps is None and any(g.steps for g in grants):
                steps = self._current_steps(em, obj)
            at_step = [g for g in grants if not g.steps or steps & set(g.steps)]
            if not at_step:
                locked.append(name)
            elif not any(not g.roles or self._holds(g.roles) for g in at_step):
                forbidden.append(name)
        return locked, forbidden

    def check_update(self, em: EntityMeta, obj, plan: Mapping[str, Any]) -> None:
        control = self.control(em)
        if control is None:
            return
        locked, forbidden = self.locked(em, obj, changed_fields(em, obj, plan))
        status_field = em.field(control.field)
        stage = status_field.option_label(getattr(obj, status_field.column_name), "zh")
        stage_en = status_field.option_label(getattr(obj, status_field.column_name), "en")
        if locked:
            raise Refusal(FIELD_LOCKED, Label(
                f"{status_field.label.zh}为“{stage}”时不能修改：{self._names(em, locked, 'zh')}"
                f"（已提交或已批准的条件须通过退回补充或变更申请修改）",
                f"cannot be changed while the {status_field.label.en.lower()} is '{stage_en}': "
                f"{self._names(em, locked, 'en')} (submitted or approved terms change only through a return or a change request)"),
                field=locked[0], details={"fields": locked})
        if forbidden:
            raise Refusal(ROLE_MAY_NOT_CHANGE, Label(
                f"您的角色在“{stage}”阶段不能修改：{self._names(em, forbidden, 'zh')}",
                f"your roles may not change these while '{stage_en}': {self._names(em, forbidden, 'en')}"),
                field=forbidden[0], details={"fields": forbidden})

    # -- deleting -----------------------------------------------------------------
    def check_delete(self, em: EntityMeta, obj) -> None:
        control = self.control(em)
        if control is None:
            return
        status = getattr(obj, em.field(control.field).column_name)
        if status in control.delete_in:
            return
        f = em.field(control.field)
        raise Refusal(NOT_DELETABLE, Label(
            f"{f.label.zh}为“{f.option_label(status, 'zh')}”的记录不能删除：请通过流程撤回、终止或核销",
            f"a record whose {f.label.en.lower()} is '{f.option_label(status, 'en')}' cannot be deleted: "
            f"withdraw, terminate or write it off through a workflow"), field=control.field)

    # -- helpers --------------------------------------------------------------------
    def _holds(self, roles) -> bool:
        mine = self.roles()
        return ADMIN_ROLE in mine or bool(mine & set(roles))

    def _current_steps(self, em: EntityMeta, obj) -> set[str]:
        table = self.models.system.get(WF_INSTANCE_TABLE)
        if table is None or obj is None or obj.id is None:
            return set()
        rows = self.session.execute(sa.select(table.c.step).where(
            table.c.entity == em.name, table.c.record_id == obj.id, table.c.state == "running"))
        return {r[0] for r in rows}

    def _names(self, em: EntityMeta, names, lang: str) -> str:
        sep = "、" if lang == "zh" else ", "
        out = []
        for n in names:
            rows, _, field = n.partition(".")
            f = em.field(rows)
            out.append(f.label.get(lang) if not field else
                       f"{f.label.get(lang)}·{self.meta.entity(f.target).field(field).label.get(lang)}")
        return sep.join(out)
