"""Create, update and delete records of any entity: the one write path.

Forms and the REST API both call ``RecordService`` so every write gets the
same validation (types, required, unique, references, named checks), the
same optimistic lock and the same audit rows. No Flask here: the service
takes a SQLAlchemy session, the built models and the acting user.
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.attributes import flag_modified

from danbao.engines.coerce import ID_LIMIT, FieldError, check_value, coerce_value, to_text
from danbao.engines.numbering import format_number
from danbao.engines.record_rules import USER_LACKS_ROLE, user_role_errors
from danbao.engines.refusals import (IN_APPROVAL, INTEGRITY, INVALID, NOT_FOUND, STALE, STILL_REFERENCED, SYSTEM_ROWS,
                                    Refusal)
from danbao.engines.sequences import next_number
from danbao.engines.stage_controls import StageGate, changed_fields as stage_changed_fields
from danbao.engines.users import user_exists
from danbao.expr import ExprEvalError
from danbao.meta.model import MONEY_SCALE, RATE_SCALE, EntityMeta, FieldMeta, Label

#: Keys a payload may carry besides the entity's fields.
SYSTEM_KEYS = frozenset({"id", "version", "created_at", "created_by_id", "updated_at", "updated_by_id", "parent_id"})
MAX_CHILDREN = 500

REQUIRED = Label("必填", "is required")

#: Functions ``hook(service, em, obj, by_user)`` run after a record's values are
#: applied and before it is flushed, on every create, update and system
#: assignment: business engines use them to keep system-owned fields right
#: (coverage, next check date …) or to refuse a change with ValidationFailed.
SAVE_HOOKS: list = []


def register_save_hook(hook):
    """Add a save hook (idempotent: registering the same function twice keeps one)."""
    if hook not in SAVE_HOOKS:
        SAVE_HOOKS.append(hook)
    return hook


#: Functions ``hook(service, em, obj)`` asked before a person deletes a record:
#: each may refuse (a Refusal) — a project with confirmed money on it, say.
DELETE_HOOKS: list = []


def register_delete_hook(hook):
    """Add a delete hook (idempotent)."""
    if hook not in DELETE_HOOKS:
        DELETE_HOOKS.append(hook)
    return hook


@dataclass(frozen=True)
class Actor:
    """Who is acting; ``lang`` picks the language of messages."""
    user_id: int | None
    username: str
    lang: str = "zh"


class ValidationFailed(Refusal):
    """Field-level errors, keyed by field path (``shareholders.0.name``)."""

    def __init__(self, errors: Mapping[str, Label], *, code: str = INVALID):
        errors = dict(errors)
        first = next(iter(errors), None)
        super().__init__(code, errors[first] if first is not None else Label("数据有误", "invalid data"),
                         field=first)
        self.args = (", ".join(f"{k}: {v.en}" for k, v in errors.items()),)
        self.errors = errors

    def messages(self, lang: str) -> dict[str, str]:
        return {key: label.get(lang) for key, label in self.errors.items()}

    def codes(self) -> dict[str, str]:
        """The stable codes of the errors that have one (ID002, ...), by field path."""
        return {key: label.code for key, label in self.errors.items() if getattr(label, "code", "")}


class Conflict(Refusal):
    """The record is not in a state for this (by default: somebody else changed it since it was read)."""

    def __init__(self, message: Label, *, code: str = STALE, field: str | None = None, details: dict | None = None):
        super().__init__(code, message, field=field, details=details)


class NotFound(Refusal):
    def __init__(self, entity: str, record_id):
        super().__init__(NOT_FOUND, Label(f"记录不存在：{entity} #{record_id}", f"No such record: {entity} #{record_id}"))


class RecordService:
    """``access`` (a ``record_rules.RecordAccess``): the acting person's data
    permissions, enforced on get, create, update and delete; None for the
    system (workflow steps, the daily run, scoring), which acts on any record."""

    def __init__(self, models, session, actor: Actor, *, clock=None, access=None, seeding: bool = False):
        """``seeding``: the caller writes history as it happened (the demo, a data
        migration run by an operator): stage controls do not apply. The web and
        the REST API never set it."""
        self.models = models
        self.meta = models.meta
        self.session = session
        self.actor = actor
        self.clock = clock or dt.datetime.now
        self.gate = StageGate(self.meta, session, models, None if seeding else actor.user_id, actor.lang)
        self.access = access

    # -- reading --------------------------------------------------------
    def get(self, entity: str, record_id) -> Any:
        """The record, if it exists and the acting user may read it (else NotFound)."""
        obj = self._load(entity, record_id)
        self._require(entity, obj, "read")
        return obj

    def _load(self, entity: str, record_id) -> Any:
        cls = self.models.cls(entity)
        valid = isinstance(record_id, int) and not isinstance(record_id, bool) and 0 < record_id <= ID_LIMIT
        obj = self.session.get(cls, record_id) if valid else None
        if obj is None:
            raise NotFound(entity, record_id)
        return obj

    # -- writing --------------------------------------------------------
    def create(self, entity: str, data: Mapping[str, Any], *, parent_id: int | None = None) -> Any:
        em = self.meta.entity(entity)
        cls = self.models.cls(entity)
        if self.access is not None:
            data = self.access.with_default_owner(em, data)
        plan = self._validate(em, None, data)
        self.gate.check_create(em, plan)
        obj = cls()
        for f in em.children:        # a new record's rows are known: never lazy-load them
            setattr(obj, f.name, [])
        now = self.clock()
        self._stamp(obj, now, created=True)
        if parent_id is not None:
            obj.parent_id = parent_id
        self._fill_numbers(em, plan, now)     # before add: its query must not flush the new record
        self.session.add(obj)
        self._apply(em, obj, plan, now)
        self._run_hooks(em, obj, by_user=True)
        return self._commit(em, obj, "create")

    def update(self, entity: str, record_id: int, data: Mapping[str, Any], *,
               expected_version: int | None) -> Any:
        em = self.meta.entity(entity)
        obj = self.get(entity, record_id)
        data = self._require(entity, obj, "write", data)
        read = self._read_version(obj, expected_version)
        try:
            plan = self._validate(em, obj, data)
        except ValidationFailed:
            if read != obj.version:      # the form may be wrong only because it is old
                raise self._stale(em, obj) from None
            raise
        if read != obj.version and not self._others_changed_nothing_sent(em, obj, read, plan):
            raise self._stale(em, obj)
        self.gate.check_update(em, obj, plan)
        now = self.clock()
        self._stamp(obj, now, created=False)
        self._apply(em, obj, plan, now)
        self._run_hooks(em, obj, by_user=True)
        return self._commit(em, obj, "update")

    def assign(self, entity: str, record_id: int, values: Mapping[str, Any]) -> Any:
        """Set fields the system owns (a score's total and grade on its customer),
        read-only ones included: typed, stamped, audited and versioned like any
        change, but not committed — the caller's transaction holds it."""
        em = self.meta.entity(entity)
        obj = self._load(entity, record_id)          # the system's write: not the user's data permissions
        plan = {name: coerce_value(em.field(name), value, codelist=self._codelist(em.field(name)))
                for name, value in values.items()}
        self._recompute(em, obj, plan)
        now = self.clock()
        self._stamp(obj, now, created=False)
        self._apply(em, obj, plan, now)
        self._run_hooks(em, obj, by_user=False)
        self.session.flush()
        self._audit_changes(obj, "update")
        return obj

    def _recompute(self, em: EntityMeta, obj, plan: dict) -> None:
        """Computed fields follow a system write too (a new term moves the due date):
        evaluated, in declaration order, over the values the record will have."""
        if not any(f.computed for f in em.column_fields):
            return
        merged = {f.name: plan[f.name] if f.name in plan else getattr(obj, f.column_name) for f in em.column_fields}
        today = self.clock().date()
        for f in em.column_fields:
            if not f.computed or f.name in plan:
                continue
            try:
                value = self._computed(em, f, merged, today)
            except (ExprEvalError, FieldError):
                continue                        # left as it was; a person's next save reports it
            if value != merged[f.name]:
                merged[f.name] = plan[f.name] = value

    def assign_children(self, entity: str, record_id: int, field_name: str, rows: list) -> Any:
        """Replace a record's child rows from the system side (a generated fee plan):
        each row validated like a form's, audited, hooks run, not committed."""
        em = self.meta.entity(entity)
        obj = self._load(entity, record_id)
        errors: dict[str, Label] = {}
        planned = self._validate_children(em.field(field_name), obj, rows, errors, system=True)
        if errors:
            raise ValidationFailed(errors)
        now = self.clock()
        self._stamp(obj, now, created=False)
        self._apply(em, obj, {field_name: planned}, now)
        self._run_hooks(em, obj, by_user=False)
        self.session.flush()
        self._audit_changes(obj, "update")
        return obj

    def set_system_values(self, em: EntityMeta, obj, values: Mapping[str, Any]) -> None:
        """For save hooks: set system-owned fields on a record being saved (audited with it)."""
        plan = {name: coerce_value(em.field(name), value, codelist=self._codelist(em.field(name)))
                for name, value in values.items()}
        self._apply(em, obj, plan, self.clock())

    def _run_hooks(self, em: EntityMeta, obj, *, by_user: bool) -> None:
        for hook in SAVE_HOOKS:
            hook(self, em, obj, by_user)

    def _fill_numbers(self, em: EntityMeta, plan: dict, now) -> None:
        """Fields with a numbering rule left empty on create get the next number (DB-2026-00042)."""
        for f in em.column_fields:
            if f.numbering and plan.get(f.name) in (None, ""):
                plan[f.name] = format_number(f.numbering, now, lambda scope, f=f: next_number(
                    self.session, self.models.system["danbao_sequence"], f"{em.name}.{f.name}", scope))

    def delete(self, entity: str, record_id: int, *, expected_version: int | None = None) -> None:
        em = self.meta.entity(entity)
        obj = self.get(entity, record_id)
        self._require(entity, obj, "delete")
        if expected_version is not None:
            self._check_version(em, obj, expected_version)
        self._refuse_if_in_approval(em, obj)
        if self.gate.governed:
            self.gate.check_delete(em, obj)
            for hook in DELETE_HOOKS:
                hook(self, em, obj)
        self._audit_delete(em, obj)
        self.session.delete(obj)
        try:
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            raise Conflict(Label("该记录仍被其他记录引用，不能删除",
                                 "This record is still referenced by other records and cannot be deleted"),
                           code=STILL_REFERENCED) from None
        except StaleDataError:
            self.session.rollback()
            raise self._stale(em) from None

    # -- data permissions (record_rules.py) ------------------------------
    def _require(self, entity: str, obj, action: str, data=None):
        """Out of the user's read scope: no such record (404, existence not told);
        readable but out of the write scope: refused (DP001). Returns ``data``
        without the masked values a masked user's form sent back unchanged."""
        if self.access is None:
            return data
        if action == "read":
            if not self.access.allows(entity, obj.id, "read"):
                raise NotFound(entity, obj.id)
            return data
        if not self.access.allows(entity, obj.id, action):
            raise self.access.out_of_scope(self.meta.entity(entity), action)
        return self.access.masker.keep_stored(self.meta.entity(entity), obj, data) if data is not None else data

    def _require_saved(self, em: EntityMeta, obj) -> None:
        """After a create or an update is flushed: the record must still be one the
        user may write (a project manager cannot hand his project to someone else)."""
        if self.access is None or self.access.scope(em.name, "write") == "all":
            return
        if not self.access.allows(em.name, obj.id, "write"):
            self.session.rollback()
            raise self.access.saved_out_of_scope(em)

    def _refuse_if_in_approval(self, em: EntityMeta, obj) -> None:
        """A record in a running approval workflow cannot be deleted: its tasks would point at nothing."""
        instances = self.models.system.get("danbao_wf_instance")
        if instances is None:
            return
        running = self.session.execute(sa.select(instances.c.id).where(
            instances.c.entity == em.name, instances.c.record_id == obj.id,
            instances.c.state == "running").limit(1)).first()
        if running is not None:
            raise Conflict(Label("该记录正在审批中，不能删除（请先撤回或完成审批）",
                                 "This record is in an approval workflow and cannot be deleted: withdraw or finish it first"),
                           code=IN_APPROVAL)

    # -- validation -----------------------------------------------------
    def _validate(self, em: EntityMeta, obj, data, *, system: bool = False, new_takes_readonly: bool = True) -> dict:
        """Check the whole payload; return {field: typed value or children plan}.
        ``system``: the system writes it (a fee plan settled from the ledger), so
        read-only fields of existing records are taken, not ignored. A new record
        takes them (a project imported in force, with its paid fees) unless
        ``new_takes_readonly`` is false: a row added to an existing record
        (a fee row typed in as paid would bypass the ledger)."""
        if not isinstance(data, Mapping):
            raise ValidationFailed({"_": Label("请求体应为对象", "the body must be an object")})
        errors: dict[str, Label] = {}
        plan: dict[str, Any] = {}
        today = self.clock().date()
        known = {f.name for f in em.fields}
        for key in data:
            if key not in known and key not in SYSTEM_KEYS:
                errors[str(key)] = Label("没有这个字段", "is not a field of this record")
        merged: dict[str, Any] = {}
        takes = system or (obj is None and new_takes_readonly and (not self.gate.governed or self.gate.may_import(em)))
        self._refuse_readonly_sent(em, obj, data, takes)
        for f in em.fields:
            if f.type == "attachments":
                continue
            present = f.name in data and not f.computed and not (f.readonly and not takes)
            if f.type == "children":
                if present:
                    plan[f.name] = self._validate_children(f, obj, data[f.name], errors, system=system)
                continue
            if present:
                try:
                    value = coerce_value(f, data[f.name], codelist=self._codelist(f), today=today)
                except FieldError as exc:
                    errors[f.name] = exc.message
                    value = getattr(obj, f.column_name) if obj is not None else None
                else:
                    plan[f.name] = value
            elif obj is not None:
                value = getattr(obj, f.column_name)
            else:
                value = self._default(f)
                if value is not None:
                    plan[f.name] = value
            merged[f.name] = value
        self._checks_by(em, plan, merged, errors, today)
        self._apply_rules(em, obj, plan, merged, errors)
        if not errors:
            self._check_database(em, obj, plan, errors)
        if errors:
            roles_only = all(key in getattr(self, "_role_errors", ()) for key in errors)
            raise ValidationFailed(errors, code=USER_LACKS_ROLE if roles_only else INVALID)
        return plan

    def _refuse_readonly_sent(self, em: EntityMeta, obj, data, takes: bool) -> None:
        """A person who sends a read-only field (the status, a fee plan, a paid amount)
        with a value other than the stored one is refused (CT004), not silently
        ignored: only the workflows, the ledger and the rules write them. Sending
        the stored value back (a client that PUTs what it read) is no change."""
        if takes or not self.gate.governed or em.is_child:    # a row's system fields: ignored, as before
            return
        changed = []
        for f in em.fields:
            if not f.readonly or f.computed or f.name not in data or f.type == "attachments":
                continue
            if f.type == "children":
                errors: dict[str, Label] = {}
                planned = self._validate_children(f, obj, data[f.name], errors, system=True)
                if errors or stage_changed_fields(em, obj, {f.name: planned}):
                    changed.append(f.name)
                continue
            try:
                value = coerce_value(f, data[f.name], codelist=self._codelist(f))
            except FieldError:
                changed.append(f.name)
                continue
            stored = getattr(obj, f.column_name) if obj is not None else self._default(f)
            if value != stored:
                changed.append(f.name)
        if changed:
            names = [em.field(n).label for n in changed]
            raise Refusal(SYSTEM_ROWS, Label("由系统写入，不能修改：" + "、".join(n.zh for n in names),
                                             "written by the system, not by people: " + ", ".join(n.en for n in names)),
                          field=changed[0], details={"fields": changed})

    def _checks_by(self, em: EntityMeta, plan: dict, merged: dict, errors: dict, today) -> None:
        """Checks chosen by another field (an ID number by its ID type), run over the
        values the record will have whenever either of the two is written."""
        for f in em.column_fields:
            by = f.check_by
            if by is None or f.name in errors or by.field in errors:
                continue
            if f.name not in plan and by.field not in plan:
                continue
            check, value = by.check_for(merged.get(by.field)), merged.get(f.name)
            if check is None or value is None:
                continue
            try:
                checked = check_value(f, check, value, today)
            except FieldError as exc:
                errors[f.name] = exc.message
                continue
            if checked != value or f.name in plan:
                merged[f.name] = plan[f.name] = checked

    def _apply_rules(self, em: EntityMeta, obj, plan: dict, merged: dict, errors: dict) -> None:
        """Conditions and computed values from metadata, enforced for every write.

        A hidden or read-only-by-condition field keeps its stored value
        (whatever was sent is ignored) and is not required; ``required_if``
        adds to ``required``; computed fields are calculated last, in
        declaration order, over the values the record will have.
        """
        today = self.clock().date()

        def holds(where: str, kind: str) -> bool:
            return condition_holds(self.meta, em.name, where, kind, merged, today) is True

        def fails(where: str, kind: str) -> bool:
            return condition_holds(self.meta, em.name, where, kind, merged, today) is False

        closed = hidden_sections(self.meta, em, merged, today)
        hidden = {n for s in em.sections if s.key in closed for n in s.fields}
        for f in em.column_fields:
            if f.computed:
                continue
            ignored = f.name in hidden or fails(f.name, "visible_if") or holds(f.name, "readonly_if")
            if ignored:
                errors.pop(f.name, None)
                if f.name in plan:
                    plan.pop(f.name)
                    merged[f.name] = getattr(obj, f.column_name) if obj is not None else None
                continue
            numbered_later = obj is None and f.numbering
            if merged.get(f.name) is None and not numbered_later and (f.required or holds(f.name, "required_if")):
                errors.setdefault(f.name, REQUIRED)
        for f in em.column_fields:
            if not f.computed or errors:
                continue
            try:
                value = self._computed(em, f, merged, today)
            except ExprEvalError as exc:
                errors[f.name] = Label(f"无法计算：{exc.message}", f"cannot be computed: {exc.message}")
                continue
            except FieldError as exc:
                errors[f.name] = exc.message
                continue
            merged[f.name] = plan[f.name] = value

    def _computed(self, em: EntityMeta, f: FieldMeta, values: Mapping[str, Any], today):
        """A computed field's value over ``values``, rounded to its places and typed
        (raises ExprEvalError or FieldError)."""
        value = self.meta.expression(em.name, f.name, "computed").evaluate(values, today=today)
        return coerce_value(f, _rounded(f, value), codelist=self._codelist(f))

    def _validate_children(self, f: FieldMeta, obj, rows, errors, *, system: bool = False) -> list:
        child_em = self.meta.entity(f.target)
        if not isinstance(rows, list):
            errors[f.name] = Label("应为列表", "must be a list")
            return []
        if len(rows) > MAX_CHILDREN:
            errors[f.name] = Label(f"最多 {MAX_CHILDREN} 行", f"at most {MAX_CHILDREN} rows")
            return []
        existing = {c.id: c for c in getattr(obj, f.name)} if obj is not None else {}
        planned = []
        for i, row in enumerate(rows):
            child = None
            if isinstance(row, Mapping) and row.get("id") not in (None, ""):
                rid = row.get("id")
                rid = int(rid) if isinstance(rid, str) and rid.isdigit() else rid
                child = existing.get(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None
                if child is None:
                    errors[f"{f.name}.{i}.id"] = Label("不是本记录的明细行", "is not a row of this record")
                    continue
            try:
                sub = self._validate(child_em, child, row, system=system, new_takes_readonly=obj is None)
            except ValidationFailed as exc:
                for key, msg in exc.errors.items():
                    errors[f"{f.name}.{i}.{key}"] = msg
                continue
            planned.append((child, sub))
        return planned

    def _check_database(self, em: EntityMeta, obj, plan, errors) -> None:
        """Uniqueness and references: checks that need the database."""
        cls = self.models.cls(em.name)
        for f in em.column_fields:
            if f.name not in plan or plan[f.name] is None:
                continue
            value = plan[f.name]
            if f.type == "reference":
                target = self.models.cls(f.target)
                if self.session.get(target, value) is None:
                    errors[f.name] = Label(f"引用的记录不存在（#{value}）", f"refers to a record that does not exist (#{value})")
            if f.type == "user" and not user_exists(self.session, value):
                errors[f.name] = Label(f"用户不存在（#{value}）", f"is not a user (#{value})")
            if f.unique:
                col = getattr(cls, f.column_name)
                query = sa.select(cls.id).where(col == value)
                if obj is not None and obj.id is not None:
                    query = query.where(cls.id != obj.id)
                if self.session.execute(query.limit(1)).first() is not None:
                    errors[f.name] = Label("已被其他记录使用", "is already used by another record")
        changed = {n: v for n, v in plan.items() if obj is None or v != getattr(obj, em.field(n).column_name, None)
                   if em.field(n).is_column}
        self._role_errors = {n for n, msg in user_role_errors(self.session, self.meta, em, changed).items()
                             if errors.setdefault(n, msg) is msg}

    def _default(self, f: FieldMeta):
        """A declared default, typed; the loader has already checked it fits."""
        try:
            return coerce_value(f, f.default, codelist=self._codelist(f))
        except FieldError:
            return None

    def _codelist(self, f: FieldMeta):
        return self.meta.codelists.get(f.codelist) if f.codelist else None

    # -- applying -------------------------------------------------------
    def _apply(self, em: EntityMeta, obj, plan: dict, now) -> None:
        """Assign validated values, recording each change for the audit log."""
        changes = getattr(obj, "_danbao_changes", None)
        if changes is None:
            changes = []
            obj._danbao_changes = changes
        for f in em.fields:
            if f.name not in plan:
                continue
            if f.type == "children":
                self._apply_children(f, obj, plan[f.name], now)
                continue
            old = getattr(obj, f.column_name)
            new = plan[f.name]
            if old != new or obj.id is None:
                changes.append((em, obj, f.name, old, new, obj.id is None))
                setattr(obj, f.column_name, new)

    def _apply_children(self, f: FieldMeta, obj, planned, now) -> None:
        child_em = self.meta.entity(f.target)
        child_cls = self.models.cls(f.target)
        collection = getattr(obj, f.name)
        keep = set()
        changes_before = len(obj._danbao_changes)
        written = obj.__dict__.setdefault("_danbao_rows", {})[f.name] = []
        for child, values in planned:
            if child is None:
                child = child_cls()
                self._stamp(child, now, created=True)
                collection.append(child)
            else:
                self._stamp(child, now, created=False)
            written.append(child)
            keep.add(id(child))
            self._apply(child_em, child, values, now)
            obj._danbao_changes.extend(child.__dict__.pop("_danbao_changes", []))
        for child in list(collection):
            if id(child) not in keep:
                # written with the root's other changes, after the flush gives its new version
                obj.__dict__.setdefault("_danbao_deleted", []).extend(self._delete_rows(child_em, child, root=obj))
                collection.remove(child)
        if len(obj._danbao_changes) > changes_before or obj.__dict__.get("_danbao_deleted"):
            flag_modified(obj, "updated_at")     # a row changed is the record changed: its version moves

    @staticmethod
    def rows_sent(obj, field_name: str) -> list | None:
        """During or after a save that sent ``field_name``'s rows: the child record each
        sent row became, in the order sent (an error names the row as the form numbers
        it); None if the save did not send them."""
        return obj.__dict__.get("_danbao_rows", {}).get(field_name)

    @classmethod
    def rows_written(cls, obj, field_name: str) -> list[int] | None:
        """After the commit: the ids of ``rows_sent`` (a screen stores a row's files on it)."""
        rows = cls.rows_sent(obj, field_name)
        return None if rows is None else [child.id for child in rows]

    def _stamp(self, obj, now, *, created: bool) -> None:
        if created:
            obj.created_at = now
            obj.created_by_id = self.actor.user_id
        obj.updated_at = now
        obj.updated_by_id = self.actor.user_id

    # -- locking --------------------------------------------------------
    def _check_version(self, em: EntityMeta, obj, expected_version) -> None:
        if self._read_version(obj, expected_version) != obj.version:
            raise self._stale(em, obj)

    @staticmethod
    def _read_version(obj, expected_version) -> int:
        """The version the caller read (-1 if it is not a number: stale)."""
        if expected_version is None:
            raise ValidationFailed({"version": Label(
                "缺少版本号：请基于最新读取的记录修改", "is required: send the version you read")})
        if isinstance(expected_version, str) and expected_version.isdigit():
            expected_version = int(expected_version)
        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            return -1
        return expected_version

    def _others_changed_nothing_sent(self, em: EntityMeta, obj, read: int, plan: dict) -> bool:
        """May an edit based on version ``read`` still be saved over the current one?

        Yes when every change made since — by people or by the system (a fee
        settled, coverage recomputed) — is to a value this edit leaves alone or
        sets to the same thing, so saving it loses nobody's change. The audit
        rows say what changed at which version; a version they cannot account
        for (rows from before versions were recorded) means no.
        """
        audit = self.models.system["danbao_audit"]
        mine = (audit.c.root_entity == em.name, audit.c.root_id == obj.id)
        first = self.session.execute(sa.select(sa.func.min(audit.c.root_version)).where(*mine)).scalar()
        if first is None or first > read + 1 or read > obj.version:
            return False
        changed = self.session.execute(
            sa.select(audit.c.entity, audit.c.record_id, audit.c.field, audit.c.action)
            .where(*mine, audit.c.root_version > read)).all()
        # the child lists this edit sends: child entity -> {row id: (stored row, values sent)}
        sent = {f.target: {child.id: (child, values) for child, values in plan[f.name] if child is not None}
                for f in em.children if f.name in plan}
        for entity, record_id, field, action in changed:
            if entity == em.name and record_id == obj.id:
                if field in plan and plan[field] != getattr(obj, em.field(field).column_name):
                    return False
                continue
            if entity not in sent or action == "delete":
                continue            # a list this edit does not send; a sent row that is gone failed validation
            if record_id not in sent[entity]:
                return False        # saving would drop a row someone else added or changed
            row, values = sent[entity][record_id]
            if field in values and values[field] != getattr(row, self.meta.entity(entity).field(field).column_name):
                return False
        return True

    def _stale(self, em: EntityMeta, obj=None) -> Conflict:
        who = ""
        if obj is not None:
            row = self.session.execute(sa.select(self.models.system["danbao_audit"].c.username,
                                                 self.models.system["danbao_audit"].c.at)
                                       .where(self.models.system["danbao_audit"].c.entity == em.name,
                                              self.models.system["danbao_audit"].c.record_id == obj.id)
                                       .order_by(self.models.system["danbao_audit"].c.id.desc()).limit(1)).first()
            if row is not None:
                who = f"{row.username} @ {row.at:%Y-%m-%d %H:%M:%S}"
        zh = "保存失败：该记录已被他人修改" + (f"（{who}）" if who else "") + "。请刷新后重新编辑，您的修改未保存。"
        en = "Not saved: someone else changed this record" + (f" ({who})" if who else "") + \
             ". Reload it and make your change again."
        return Conflict(Label(zh, en))

    # -- committing and auditing -----------------------------------------
    def _commit(self, em: EntityMeta, obj, action: str):
        try:
            self.session.flush()
            self._require_saved(em, obj)
            self._audit_changes(obj, action)
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            raise self._stale(em) from None
        except IntegrityError as exc:
            self.session.rollback()
            raise self._integrity(em, exc) from None
        return obj

    def _integrity(self, em: EntityMeta, exc: IntegrityError) -> ValidationFailed | Conflict:
        """A race the pre-checks could not see: name the field when the constraint tells it."""
        text = str(exc.orig).lower()
        for f in em.column_fields:
            if f.unique and (f"uq_{em.table}_{f.column_name}" in text or f"{em.table}.{f.column_name}" in text):
                return ValidationFailed({f.name: Label("已被其他记录使用", "is already used by another record")})
        return Conflict(Label("保存失败：数据与其他记录冲突，请刷新后重试",
                              "Not saved: the data conflicts with another record; reload and try again"), code=INTEGRITY)

    def _audit_changes(self, obj, action: str) -> None:
        table = self.models.system["danbao_audit"]
        rows = []
        root_em = obj.__danbao_entity__
        for em, rec, field, old, new, is_new in obj.__dict__.pop("_danbao_changes", []):
            rec_action = "create" if is_new else "update"
            rows.append(self._audit_row(em, rec, root_em, obj, rec_action, field, old, new))
        for row in obj.__dict__.pop("_danbao_deleted", []):
            rows.append(dict(row, root_version=obj.version))
        at = self.clock()                  # one save, one time: the history shows it as one change
        for row in rows:
            row["at"] = at
        if rows:
            self.session.execute(table.insert(), rows)

    def _audit_delete(self, em: EntityMeta, obj) -> None:
        self.session.execute(self.models.system["danbao_audit"].insert(), self._delete_rows(em, obj, root=obj))

    def _delete_rows(self, em: EntityMeta, obj, *, root) -> list[dict]:
        rows = [self._audit_row(em, obj, root.__danbao_entity__, root, "delete", f.name, getattr(obj, f.column_name), None)
                for f in em.column_fields if getattr(obj, f.column_name) is not None]
        return rows or [self._audit_row(em, obj, root.__danbao_entity__, root, "delete", None, None, None)]

    def _audit_row(self, em, rec, root_em, root, action, field, old, new) -> dict:
        return {
            "at": self.clock(), "user_id": self.actor.user_id, "username": self.actor.username,
            "action": action, "entity": em.name, "record_id": rec.id,
            "root_entity": root_em.name, "root_id": root.id,
            "field": field, "old_value": to_text(old), "new_value": to_text(new),
            "meta_version": self.meta.version, "root_version": root.version,
        }


def condition_holds(meta, entity: str, where: str, kind: str, values: Mapping[str, Any],
                    today: dt.date) -> bool | None:
    """Whether the ``kind`` condition (visible_if, required_if, readonly_if) of a field or of
    ``section:<key>`` holds for these values; None if none is declared. One that cannot be
    evaluated does not hold. The save, the form and the record page all judge by this."""
    rule = meta.expression(entity, where, kind)
    if rule is None:
        return None
    try:
        return rule.evaluate(values, today=today) is True
    except ExprEvalError:
        return False


def hidden_sections(meta, em: EntityMeta, values: Mapping[str, Any], today: dt.date) -> set[str]:
    """Keys of the sections whose ``visible_if`` does not hold for these values."""
    return {s.key for s in em.sections
            if condition_holds(meta, em.name, f"section:{s.key}", "visible_if", values, today) is False}


def _rounded(f: FieldMeta, value):
    """A computed number is rounded half-up to its field's places: the stated rounding point."""
    if isinstance(value, Decimal) and f.type in ("decimal", "money", "rate") and value.is_finite():
        scale = {"money": MONEY_SCALE, "rate": RATE_SCALE}.get(f.type, f.scale if f.scale is not None else 4)
        return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    return value


def record_to_dict(em: EntityMeta, obj, meta, masker=None) -> dict:
    """The JSON form of a record: typed values as text where JSON would lose them;
    with a ``masking.Masker``, sensitive values as that viewer may see them."""
    out = {"id": obj.id, "version": obj.version}
    for f in em.fields:
        if f.type == "attachments":
            continue
        if f.type == "children":
            child_em = meta.entity(f.target)
            out[f.name] = [record_to_dict(child_em, c, meta, masker) for c in getattr(obj, f.name)]
            continue
        value = getattr(obj, f.column_name)
        if f.type in ("decimal", "money", "rate") and value is not None:
            value = str(value)
        elif f.type in ("date", "datetime") and value is not None:
            value = value.isoformat()
        elif f.sensitive and masker is not None:
            value = masker.value(f, value, em)
        out[f.name] = value
    for key in ("created_at", "updated_at"):
        value = getattr(obj, key)
        out[key] = value.isoformat() if value is not None else None
    return out



# The business engine registers its save hook on import; importing it here makes
# every RecordService (web, API, workflows, scripts) run the same rules.
from danbao.engines import business as _business  # noqa: E402,F401
from danbao.engines import enterprise_size as _enterprise_size  # noqa: E402,F401
from danbao.engines import documents as _documents  # noqa: E402,F401
