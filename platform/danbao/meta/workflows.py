"""Approval workflows in metadata: their checks and their frozen form.

A workflow is checked as a graph once every pack is laid over the earlier
ones: every transition names a step that exists, every step can be reached
from the start, every step that is not an end can reach one through its
transitions, a committee has a pass rule, roles and people fields exist, and
field values written on the way fit their fields, and a step's engine
actions are registered ones (codes DB270–DB279).
Conditions are compiled with the other expressions (meta/expressions.py).

``workflow_to_dict`` / ``workflow_from_dict`` turn a workflow into the plain
JSON kept with each record in flight, so a record finishes under the version
it started with even after the metadata changes.
"""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from danbao.meta import defaults, names
from danbao.meta.crosschecks import BUILTIN_ROLES
from danbao.meta.errors import ItemChecker, PackError
from danbao.meta.model import (Assignees, CommitteeMeta, Source, StepMeta, TransitionMeta,
                               WorkflowMeta)
from danbao.meta.build import decimal_or_none as _dec, label as _label
from danbao.meta.overlay import Layered, Merged, key_source, list_items
from danbao.meta.yamlio import LineDict, LineList


def _steps(card: Layered) -> list[tuple[LineDict, Source]]:
    return card.items("steps")


# -- checks ----------------------------------------------------------------------
class WorkflowChecker(ItemChecker):
    kind = "workflows"

    def check(self, code: str, wf: Layered) -> None:
        entity = wf.get("entity")
        draft = self.m.entities.get(entity) if isinstance(entity, str) else None
        if isinstance(entity, str) and draft is None:
            self.error(wf.src("entity"), "DB270", f"workflow '{code}': entity '{entity}' is not declared")
        steps: dict[str, tuple[LineDict, Source]] = {}
        for step, src in _steps(wf):
            key = step.get("key")
            if key in steps:
                self.error(src, "DB276", f"workflow '{code}': step '{key}' is declared twice")
                continue
            steps[key] = (step, src)
        if wf.get("steps") is None:
            return
        ends = {k for k, (s, _) in steps.items() if s.get("kind") == "end"}
        if not ends:
            self.error(wf.src("steps"), "DB276", f"workflow '{code}': no step has kind: end")
        for key in ("start", "reject_to", "withdraw_to"):
            target = wf.get(key)
            if isinstance(target, str) and target not in steps:
                self.error(wf.src(key), "DB271", f"workflow '{code}': {key} '{target}' is not a step")
            elif key != "start" and isinstance(target, str) and target not in ends:
                self.error(wf.src(key), "DB276", f"workflow '{code}': {key} '{target}' is not an end step")
            elif key == "reject_to" and isinstance(target, str) and steps[target][0].get("outcome") != "rejected":
                # a typo here would let every rejection finish as approved
                self.error(wf.src(key), "DB276", f"workflow '{code}': reject_to '{target}' is an end step "
                                                 f"whose outcome is not rejected")
        self._people(code, wf.get("starters"), wf.src("starters"), draft)
        self._values(code, wf.get("on_start"), wf.src("on_start"), draft, "on_start")
        self._values(code, wf.get("on_return_to_applicant"), wf.src("on_return_to_applicant"), draft,
                     "on_return_to_applicant")
        if wf.get("resume") is not None and wf.get("on_return_to_applicant") is None:
            self.error(wf.src("resume"), "DB297", f"workflow '{code}': resume: applies after a return to the "
                                                  f"applicant: declare on_return_to_applicant: too")
        for key, (step, src) in steps.items():
            self._step(code, key, step, src, steps, draft)
            self._controls(code, key, step, src, steps, draft)
        self._graph(code, wf, steps, ends)

    def _step(self, code, key, step: LineDict, src: Source, steps, draft) -> None:
        where = f"workflow '{code}' step '{key}'"
        kind = step.get("kind", "approval")
        transitions = list_items(step, "next", src.file)
        if kind == "end":
            if transitions or step.get("assignees"):
                self.error(src, "DB276", f"{where}: an end step has no next: and no assignees:")
            if step.get("outcome") is None:
                self.error(src, "DB276", f"{where}: an end step needs outcome: approved, rejected or withdrawn")
        else:
            if not transitions:
                self.error(src, "DB276", f"{where}: a step that is not an end needs next:")
            if not step.get("assignees"):
                self.error(src, "DB276", f"{where}: who acts here? declare assignees: (roles or user fields)")
        for t, tsrc in transitions:
            if t.get("to") not in steps:
                self.error(tsrc, "DB271", f"{where}: next step '{t.get('to')}' is not a step")
        if kind == "committee":
            committee = step.get("committee")
            if not isinstance(committee, LineDict) or committee.get("pass_share") is None:
                self.error(src, "DB274", f"{where}: a committee needs committee: with pass_share: "
                                         f"(the share of agree votes that passes)")
            elif isinstance(committee, LineDict):
                self._people(code, committee.get("chairman"), key_source(step, "committee", src), draft)
                if committee.get("veto") and not committee.get("chairman"):
                    self.error(key_source(step, "committee", src), "DB274", f"{where}: veto: true needs a chairman:")
        if step.get("mode") == "ratio" and step.get("ratio") is None:
            self.error(key_source(step, "mode", src), "DB277", f"{where}: mode: ratio needs ratio: (e.g. 0.5)")
        if step.get("on_timeout") and not step.get("time_limit_hours"):
            self.error(key_source(step, "on_timeout", src), "DB277", f"{where}: on_timeout: needs time_limit_hours:")
        if step.get("on_timeout") == "escalate" and not step.get("escalate_to"):
            self.error(key_source(step, "on_timeout", src), "DB277", f"{where}: on_timeout: escalate needs escalate_to:")
        self._people(code, step.get("assignees"), key_source(step, "assignees", src), draft)
        self._people(code, step.get("escalate_to"), key_source(step, "escalate_to", src), draft)
        self._values(code, step.get("set"), key_source(step, "set", src), draft, f"step '{key}' set")
        self._actions(where, step, src)

    def _controls(self, code, key, step: LineDict, src: Source, steps, draft) -> None:
        """Separation of duties names other, non-end steps of the same workflow; recusal names user fields."""
        where = f"workflow '{code}' step '{key}'"
        separate = step.get("separate_from")
        if isinstance(separate, LineList):
            for i, other in enumerate(separate):
                line = Source(src.file, separate.item_line(i))
                if other == key:
                    self.error(line, "DB295", f"{where}: separate_from names the step itself")
                elif other not in steps:
                    self.error(line, "DB295", f"{where}: separate_from '{other}' is not a step "
                                              f"(steps: {', '.join(steps)})")
                elif steps[other][0].get("kind") == "end":
                    self.error(line, "DB295", f"{where}: separate_from '{other}' is an end step: nobody acts there")
        recuse = step.get("recuse")
        if isinstance(recuse, LineDict) and draft is not None:
            rsrc = key_source(step, "recuse", src)
            if step.get("kind") == "end":
                self.error(rsrc, "DB296", f"{where}: an end step asks nobody: recuse: does not apply")
            for name in recuse.get("fields") or ():
                f = draft.fields.get(name)
                if f is None or f.get("type") != "user":
                    self.error(rsrc, "DB296", f"{where}: recuse: '{name}' is not a user field of '{draft.name}'")
            for path in recuse.get("paths") or ():
                problem = self._path_problem(draft, path)
                if problem:
                    self.error(rsrc, "DB296", f"{where}: recuse path '{path}': {problem}")

    def _path_problem(self, draft, path: str) -> str | None:
        """A recusal path walks reference and children fields and ends at a user field."""
        parts = path.split(".")
        for i, name in enumerate(parts):
            f = draft.fields.get(name) if draft is not None else None
            kind = f.get("type") if f is not None else None
            if i == len(parts) - 1:
                return None if kind == "user" else f"'{name}' is not a user field of '{draft.name}'"
            if kind not in ("reference", "children"):
                return f"'{name}' is not a reference or children field of '{draft.name}'"
            draft = self.m.entities.get(f.get("target"))
            if draft is None:
                return f"'{name}' leads to no declared entity"
        return None

    def _actions(self, where: str, step: LineDict, src: Source) -> None:
        """Actions are engine code, not metadata: only registered names can run."""
        actions = step.get("actions")
        if not isinstance(actions, LineList):
            return
        for i, name in enumerate(actions):
            if name not in names.WORKFLOW_ACTIONS:
                self.error(Source(src.file, actions.item_line(i)), "DB279",
                           f"{where}: unknown action '{name}' (known: {', '.join(sorted(names.WORKFLOW_ACTIONS))})")

    def _people(self, code: str, spec, src: Source, draft) -> None:
        if not isinstance(spec, LineDict):
            return
        for role in spec.get("roles") or ():
            if role not in self.m.roles and role not in BUILTIN_ROLES:
                self.error(src, "DB275", f"workflow '{code}': role '{role}' is not declared")
        for name in spec.get("fields") or ():
            f = draft.fields.get(name) if draft is not None else None
            if draft is not None and (f is None or f.get("type") != "user"):
                self.error(src, "DB275", f"workflow '{code}': '{name}' is not a user field of '{draft.name}'")

    def _values(self, code: str, values, src: Source, draft, where: str) -> None:
        if not isinstance(values, LineDict) or draft is None:
            return
        for name, value in values.items():
            f = draft.fields.get(name)
            if f is None:
                self.error(src, "DB278", f"workflow '{code}' {where}: '{name}' is not a field of '{draft.name}'")
                continue
            if f.get("type") in ("children", "attachments"):
                self.error(src, "DB278", f"workflow '{code}' {where}: '{name}' ({f.get('type')}) is not a "
                                         f"column field: a workflow sets column fields only")
                continue
            if value is None:
                continue
            options = f.get("options") if isinstance(f.get("options"), LineList) else ()
            # a value that is not text (a list, say) is simply not an option
            codes = {o.get("value") for o in options if isinstance(o, LineDict) and isinstance(o.get("value"), str)}
            try:
                if f.get("type") == "enum":
                    if not isinstance(value, str) or value not in codes:
                        raise ValueError(f"is not one of the options ({', '.join(sorted(codes))})")
                elif f.get("type") not in ("reference", "user", "code"):
                    defaults.typed_default(f.get("type"), value, f, None)
            except ValueError as exc:
                self.error(src, "DB278", f"workflow '{code}' {where}: {name} = {value!r} {exc}")

    def _graph(self, code: str, wf: Layered, steps: dict, ends: set) -> None:
        start = wf.get("start")
        if start not in steps:
            return
        edges = {k: [t.get("to") for t, _ in list_items(s, "next", src.file) if t.get("to") in steps] for k, (s, src) in steps.items()}
        reached, todo = set(), [start]
        special = [wf.get("reject_to"), wf.get("withdraw_to")]
        while todo:
            key = todo.pop()
            if key in reached:
                continue
            reached.add(key)
            todo += edges.get(key, [])
        reached |= {k for k in special if k in steps}
        for key, (_, src) in steps.items():
            if key not in reached:
                self.error(src, "DB272", f"workflow '{code}': no path from '{start}' reaches step '{key}'")
        can_end = set(ends)
        changed = True
        while changed:
            changed = False
            for key, targets in edges.items():
                if key not in can_end and any(t in can_end for t in targets):
                    can_end.add(key)
                    changed = True
        for key, (_, src) in steps.items():
            if key in reached and key not in can_end:
                self.error(src, "DB273", f"workflow '{code}': from step '{key}' no path leads to an end step")


def check_workflows(merged: Merged) -> list[PackError]:
    return WorkflowChecker(merged).run()


# -- building ----------------------------------------------------------------------
def _assignees(spec) -> Assignees:
    if not isinstance(spec, (LineDict, dict)):
        return Assignees()
    return Assignees(tuple(spec.get("roles") or ()), tuple(spec.get("fields") or ()))


def _plain(values) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in (values or {}).items()}


def _step_meta(step, src: Source | None) -> StepMeta:
    committee = step.get("committee")
    return StepMeta(
        key=step.get("key"), label=_label(step.get("label")), kind=step.get("kind", "approval"),
        assignees=_assignees(step.get("assignees")), mode=step.get("mode", "any"), ratio=_dec(step.get("ratio")),
        time_limit_hours=step.get("time_limit_hours"), on_timeout=step.get("on_timeout"),
        escalate_to=_assignees(step.get("escalate_to")) if step.get("escalate_to") else None,
        requires=step.get("requires"), requires_message=_label(step.get("requires_message")),
        committee=CommitteeMeta(
            pass_share=_dec(committee.get("pass_share")), quorum=_dec(committee.get("quorum")) or Decimal(0),
            chairman=_assignees(committee.get("chairman")) if committee.get("chairman") else None,
            veto=bool(committee.get("veto")), secret=bool(committee.get("secret")),
            defer_share=_dec(committee.get("defer_share")) if committee.get("defer_share") is not None
            else Decimal("0.5"), defer_counts_present=bool(committee.get("defer_counts_present", True)))
        if isinstance(committee, (LineDict, dict)) else None,
        outcome=step.get("outcome"), set=_plain(step.get("set")), actions=tuple(step.get("actions") or ()),
        next=tuple(TransitionMeta(t.get("to"), t.get("when")) for t in step.get("next") or ()),
        separate_from=tuple(step.get("separate_from") or ()),
        recuse=tuple((step.get("recuse") or {}).get("fields") or ()),
        recuse_paths=tuple((step.get("recuse") or {}).get("paths") or ()), source=src)


def build_workflows(merged: Merged) -> dict[str, WorkflowMeta]:
    out = {}
    for code, wf in merged.workflows.items():
        meta = WorkflowMeta(
            code=code, label=_label(wf.get("label")), entity=wf.get("entity"), version=str(wf.get("version", "1")),
            start=wf.get("start"), reject_to=wf.get("reject_to"), withdraw_to=wf.get("withdraw_to"),
            steps=tuple(_step_meta(s, src) for s, src in _steps(wf)), applies_if=wf.get("applies_if"),
            group=wf.get("group", code),
            priority=int(wf.get("priority", 100)), active=bool(wf.get("active", True)),
            starters=_assignees(wf.get("starters")), on_start=_plain(wf.get("on_start")),
            on_return_to_applicant=_plain(wf.get("on_return_to_applicant"))
            if isinstance(wf.get("on_return_to_applicant"), (LineDict, dict)) else None,
            resume=wf.get("resume", "restart"), source=wf.at)
        digest = hashlib.sha256(json.dumps(workflow_to_dict(meta), sort_keys=True).encode()).hexdigest()
        out[code] = _replace_digest(meta, digest)
    return out


def _replace_digest(wf: WorkflowMeta, digest: str) -> WorkflowMeta:
    import dataclasses
    return dataclasses.replace(wf, digest=digest)


# -- the JSON kept with each record in flight ---------------------------------------
def _people_dict(a: Assignees | None):
    return None if a is None else {"roles": list(a.roles), "fields": list(a.fields)}


def workflow_to_dict(wf: WorkflowMeta) -> dict:
    """Everything that decides a record's path, as plain JSON (no source lines)."""
    return {
        "code": wf.code, "label": {"zh": wf.label.zh, "en": wf.label.en}, "entity": wf.entity,
        "version": wf.version, "start": wf.start, "reject_to": wf.reject_to, "withdraw_to": wf.withdraw_to,
        "applies_if": wf.applies_if, "priority": wf.priority, "group": wf.group, "starters": _people_dict(wf.starters),
        "on_start": dict(wf.on_start),
        "steps": [{
            "key": s.key, "label": {"zh": s.label.zh, "en": s.label.en}, "kind": s.kind,
            "assignees": _people_dict(s.assignees), "mode": s.mode,
            "ratio": str(s.ratio) if s.ratio is not None else None, "time_limit_hours": s.time_limit_hours,
            "on_timeout": s.on_timeout, "escalate_to": _people_dict(s.escalate_to), "requires": s.requires,
            "requires_message": {"zh": s.requires_message.zh, "en": s.requires_message.en}
            if s.requires_message else None,
            "committee": None if s.committee is None else {
                "pass_share": str(s.committee.pass_share), "quorum": str(s.committee.quorum),
                "chairman": _people_dict(s.committee.chairman), "veto": s.committee.veto,
                "secret": s.committee.secret, "defer_share": str(s.committee.defer_share),
                "defer_counts_present": s.committee.defer_counts_present},
            "outcome": s.outcome, "set": dict(s.set),
            # only when present, so workflows without actions keep the digest they had
            **({"actions": list(s.actions)} if s.actions else {}),
            **({"separate_from": list(s.separate_from)} if s.separate_from else {}),
            **({"recuse": {"fields": list(s.recuse), **({"paths": list(s.recuse_paths)} if s.recuse_paths else {})}}
               if s.recuse or s.recuse_paths else {}),
            "next": [{"to": t.to, "when": t.when} for t in s.next]} for s in wf.steps],
        # the controls only when declared, so workflows without them keep the digest they had
        **({"on_return_to_applicant": dict(wf.on_return_to_applicant), "resume": wf.resume}
           if wf.on_return_to_applicant is not None else {}),
    }


def workflow_from_dict(data: dict, digest: str) -> WorkflowMeta:
    """The workflow a record started under, rebuilt from its stored JSON."""
    return WorkflowMeta(
        code=data["code"], label=_label(data["label"]), entity=data["entity"], version=data["version"],
        start=data["start"], reject_to=data["reject_to"], withdraw_to=data.get("withdraw_to"),
        steps=tuple(_step_meta(s, None) for s in data["steps"]), applies_if=data.get("applies_if"),
        group=data.get("group", data["code"]),
        priority=data.get("priority", 100), starters=_assignees(data.get("starters")),
        on_start=data.get("on_start") or {}, on_return_to_applicant=data.get("on_return_to_applicant"),
        resume=data.get("resume", "restart"), digest=digest)
