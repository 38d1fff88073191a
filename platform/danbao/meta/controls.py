"""Stage controls in metadata (``controls:``): what may change in which status, and by whom.

One declaration per entity names the field that holds the record's stage
(an enum such as a project's ``status``) and then, per stage, which fields
and child collections people may change, optionally only for some roles or
only while a named workflow step is current. Anything a stage does not list
is locked in it; a status no stage lists locks everything. It also says in
which statuses a person may create a record (everything else is an import,
for the roles named in ``import_roles``) and in which it may be deleted.

System writes (workflow ``set:`` values, step actions, the daily run, save
hooks) are not people's edits and are not governed here. Checked once every
pack is laid (codes DB300–DB307), frozen into ``StageControlMeta``.
"""
from __future__ import annotations

from types import MappingProxyType

from danbao.meta.build import label as _label
from danbao.meta.crosschecks import BUILTIN_ROLES
from danbao.meta.errors import ItemChecker, PackError
from danbao.meta.model import ChangeGrant, Source, StageControlMeta, StageRule
from danbao.meta.overlay import Layered, Merged, key_source
from danbao.meta.yamlio import LineDict

#: ``change: all`` — every field the entity's write permission covers
ALL = "all"


class ControlChecker(ItemChecker):
    kind = "controls"

    def check(self, entity: str, c: Layered) -> None:
        draft = self.m.entities.get(entity)
        if draft is None:
            self.error(c.src("entity"), "DB300", f"stage controls: entity '{entity}' is not declared")
            return
        if draft.head.get("parent"):
            self.error(c.src("entity"), "DB300",
                       f"stage controls: '{entity}' is a child entity: its parent's controls govern its rows")
            return
        field = c.get("field")
        layer = draft.fields.get(field) if isinstance(field, str) else None
        statuses: set[str] = set()
        if layer is None or layer.get("type") != "enum":
            self.error(c.src("field"), "DB301",
                       f"stage controls of '{entity}': field '{field}' is not an enum field of the entity")
        else:
            statuses = {o.get("value") for o in (layer.get("options") or ()) if isinstance(o, LineDict)}
        roles = set(self.m.roles) | set(BUILTIN_ROLES)
        steps = {s.get("key") for wf in self.m.workflows.values() if wf.get("entity") == entity
                 for s, _ in wf.items("steps") if isinstance(s, LineDict)}
        for key in ("create_in", "delete_in"):
            self._statuses(entity, c.get(key) or (), statuses, c.src(key))
        for role in c.get("import_roles") or ():
            if role not in roles:
                self.error(c.src("import_roles"), "DB304", f"stage controls of '{entity}': role '{role}' is not declared")
        seen: dict[str, Source] = {}
        for stage, src in c.items("stages"):
            if not isinstance(stage, LineDict):
                continue
            for status in stage.get("statuses") or ():
                at = key_source(stage, "statuses", src)
                if statuses and status not in statuses:
                    self.error(at, "DB302", f"stage controls of '{entity}': '{status}' is not a value of '{field}'")
                elif status in seen:
                    self.error(at, "DB306", f"stage controls of '{entity}': status '{status}' is in two stages "
                                            f"(first at {seen[status]})")
                else:
                    seen[status] = at
            for role in stage.get("roles") or ():
                if role not in roles:
                    self.error(key_source(stage, "roles", src), "DB304",
                               f"stage controls of '{entity}': role '{role}' is not declared")
            change = stage.get("change")
            if change == ALL or change is None:
                continue
            if stage.get("roles"):
                self.error(key_source(stage, "roles", src), "DB307",
                           f"stage controls of '{entity}': a stage's roles go with change: all; "
                           f"give each change its own roles")
            for grant in change:
                if not isinstance(grant, LineDict):
                    continue
                gsrc = key_source(stage, "change", src)
                for name in grant.get("fields") or ():
                    if not self._field_exists(draft, name):
                        self.error(key_source(grant, "fields", gsrc), "DB303",
                                   f"stage controls of '{entity}': '{name}' is not a field of the entity "
                                   f"(or rows.field of one of its child collections)")
                for role in grant.get("roles") or ():
                    if role not in roles:
                        self.error(key_source(grant, "roles", gsrc), "DB304",
                                   f"stage controls of '{entity}': role '{role}' is not declared")
                for step in grant.get("steps") or ():
                    if step not in steps:
                        self.error(key_source(grant, "steps", gsrc), "DB305",
                                   f"stage controls of '{entity}': '{step}' is not a step of a workflow of the entity")

    def _field_exists(self, draft, name: str) -> bool:
        rows, _, field = name.partition(".")
        layer = draft.fields.get(rows)
        if layer is None:
            return False
        if not field:
            return True
        child = self.m.entities.get(layer.get("target")) if layer.get("type") == "children" else None
        return child is not None and field in child.fields

    def _statuses(self, entity, values, statuses, src) -> None:
        for status in values:
            if statuses and status not in statuses:
                self.error(src, "DB302", f"stage controls of '{entity}': '{status}' is not a value of the stage field")


def check_controls(merged: Merged) -> list[PackError]:
    return ControlChecker(merged).run()


def build_controls(merged: Merged) -> dict[str, StageControlMeta]:
    out = {}
    for entity, c in merged.controls.items():
        stages = []
        for stage, _ in c.items("stages"):
            change = stage.get("change")
            grants = None if change in (ALL, None) else tuple(
                ChangeGrant(fields=tuple(g.get("fields") or ()), roles=tuple(g.get("roles") or ()),
                            steps=tuple(g.get("steps") or ()))
                for g in change if isinstance(g, LineDict))
            stages.append(StageRule(statuses=tuple(stage.get("statuses") or ()), grants=grants,
                                    roles=tuple(stage.get("roles") or ())))
        out[entity] = StageControlMeta(
            entity=entity, field=c.get("field"), label=_label(c.get("label")),
            create_in=tuple(c.get("create_in") or ()), import_roles=tuple(c.get("import_roles") or ()),
            delete_in=tuple(c.get("delete_in") or ()), stages=tuple(stages), source=c.at)
    return MappingProxyType(out)
