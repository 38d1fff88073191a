"""Data permissions (数据权限): which records one user may read, write and delete.

Entity permissions say whether a role may read projects at all; record rules
(``record_rules:`` in the pack, like Odoo's ``ir.rule``) say which ones:
``own`` (the record's owner fields name me), ``department`` (its department
fields name someone in my departments or below), ``all``. A user's scope is
the widest any of their roles grants, and a role without the entity
permission gets none. Everything is a SQL condition, so lists, counts,
pickers, the inbox and the workbench filter in the database, and a record
page or a write asks the same condition about one id.

Generic: the department tree is whichever entity declares ``organisation:``;
nothing here knows about guarantees. No Flask.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from danbao.engines.refusals import Refusal, refusal_code
from danbao.engines.users import role_names
from danbao.meta.model import SCOPES, EntityMeta, Label, Meta

ADMIN_ROLE = "Admin"
CREATED_BY = "created_by"
RANK = {s: i for i, s in enumerate(SCOPES)}

OUT_OF_SCOPE = refusal_code("DP001", "forbidden",
                            "a record the user may read but not change or delete (outside the role's write scope)")
SAVED_OUT_OF_SCOPE = refusal_code("DP002", "invalid",
                                  "a save that would leave the record outside the user's own write scope "
                                  "(a project whose A角/B角 is someone else)")
USER_LACKS_ROLE = refusal_code("DP003", "invalid", "a user field names a user who lacks the role the field requires")


class OutOfScope(Refusal):
    """Refused: the record is outside what this user may change."""


def root_of(meta: Meta, em: EntityMeta) -> EntityMeta:
    """The top-level entity a child entity's records are reached through."""
    seen = set()
    while em.parent and em.name not in seen:
        seen.add(em.name)
        em = meta.entity(em.parent)
    return em


def organisation_entity(meta: Meta) -> EntityMeta | None:
    return next((em for em in meta.entities.values() if em.organisation is not None), None)


def role_scope(meta: Meta, em: EntityMeta, role: str, action: str) -> str:
    """One role's scope for ``action`` on ``em``: none without the entity
    permission; all where the entity (or its root) declares no record rules."""
    if role == ADMIN_ROLE:
        return "all"
    if role not in em.permissions.get(action, ()):
        return "none"
    rules = root_of(meta, em).record_rules
    return "all" if rules is None else rules.scope(role, action)


def widest(meta: Meta, em: EntityMeta, roles, action: str) -> str:
    best = "none"
    for role in roles:
        scope = role_scope(meta, em, role, action)
        if RANK[scope] > RANK[best]:
            best = scope
    return best


@dataclass
class RecordAccess:
    """What one signed-in user may see and change; built once per request."""
    session: object
    models: object
    user_id: int
    roles: frozenset[str]
    _department_users: list[int] | None = field(default=None, repr=False)
    _tasked_ids: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_user(cls, session, models, user_id: int, roles=None) -> "RecordAccess":
        return cls(session, models, user_id, frozenset(roles if roles is not None else role_names(session, user_id)))

    @property
    def meta(self) -> Meta:
        return self.models.meta

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def masker(self):
        """This user's masks of sensitive fields (masking.py)."""
        from danbao.engines.masking import Masker
        return Masker(self.meta, self.roles)

    def scope(self, entity: str, action: str = "read") -> str:
        return widest(self.meta, self.meta.entity(entity), self.roles, action)

    # -- SQL --------------------------------------------------------------------------
    def condition(self, entity: str, action: str = "read", table=None):
        """The WHERE condition on ``table`` (default: the entity's table) for the
        records this user may ``action``; None when that is every record."""
        em = self.meta.entity(entity)
        table = self.models.table(entity) if table is None else table
        scope = self.scope(entity, action)
        if scope == "all":
            return None
        if em.is_child:
            parent_em = self.meta.entity(em.parent)
            parent = _narrow(self.models.table(em.parent), "id", "parent_id", *_rule_columns(root_of(self.meta, parent_em)))
            inner = self.condition(em.parent, action, parent)
            query = sa.select(parent.c.id)
            return table.c.parent_id.in_(query.where(inner) if inner is not None else query)
        terms = [] if scope == "none" else self._terms(em, table, scope, depth=0)
        tasked = self._tasked(em) if action == "read" and scope != "none" else []
        if tasked:
            terms.append(table.c.id.in_(tasked))
        return sa.or_(*terms) if terms else sa.false()

    def _tasked(self, em: EntityMeta) -> list[int]:
        """Records an approval asked this user to act on (a task, open or done): whoever
        must approve a project may read it, whatever their scope (and 我的已办 links to it).
        Read once as a list of ids: a subquery inside the OR would keep PostgreSQL from
        combining the other terms' indexes (BitmapOr) and make it scan the table."""
        if em.name in self._tasked_ids:
            return self._tasked_ids[em.name]
        instances = self.models.system.get("danbao_wf_instance")
        tasks = self.models.system.get("danbao_wf_task")
        ids: list[int] = []
        if instances is not None and tasks is not None and any(w.entity == em.name for w in self.meta.workflows.values()):
            ids = sorted({r[0] for r in self.session.execute(sa.select(instances.c.record_id).where(
                instances.c.entity == em.name, tasks.c.instance_id == instances.c.id,
                tasks.c.user_id == self.user_id))})
        self._tasked_ids[em.name] = ids
        return ids

    def _terms(self, em: EntityMeta, table, scope: str, depth: int) -> list:
        """The conditions (OR-ed) putting a record of ``em`` in ``scope``: an owner field is
        me, a department field is one of my department's people, or its id is one a
        ``via`` entity's records in scope refer to. Each term is answered by an index
        (the column's, or the primary key for ``id IN (…)``), so the database can use
        them all (SQLite's OR optimisation, PostgreSQL's BitmapOr) instead of scanning."""
        rules = em.record_rules
        terms = [_owner_column(em, table, name) == self.user_id for name in rules.owners]
        if scope == "department":
            people = self.department_users()
            terms += [_owner_column(em, table, name).in_(people) for name in rules.department]
        if depth < 3:
            for other_name, ref_field in rules.via:
                other = self.meta.entity(other_name)
                if other.record_rules is None:
                    continue
                theirs = _narrow(self.models.table(other_name), "id", other.field(ref_field).column_name,
                                 *_rule_columns(other))
                column = theirs.c[other.field(ref_field).column_name]
                inner = self._terms(other, theirs, scope, depth + 1)
                if inner:
                    terms.append(table.c.id.in_(sa.select(column).where(column.is_not(None), sa.or_(*inner))))
        return terms

    def department_users(self) -> list[int]:
        """Me, and everyone (heads and members) in the departments I head or belong
        to and the departments below them. The tree is small: read whole, once."""
        if self._department_users is not None:
            return self._department_users
        people = {self.user_id}
        org_em = organisation_entity(self.meta)
        if org_em is not None:
            org = org_em.organisation
            dept = self.models.table(org_em.name)
            child_em = self.meta.entity(org_em.field(org.members).target)
            member = self.models.table(child_em.name)
            parent_col = dept.c[org_em.field(org.parent).column_name]
            head_col = dept.c[org_em.field(org.head).column_name]
            user_col = member.c[child_em.field(org.member_user).column_name]
            depts = self.session.execute(sa.select(dept.c.id, parent_col, head_col)).all()
            members = self.session.execute(sa.select(member.c.parent_id, user_col)).all()
            mine = {d for d, _p, h in depts if h == self.user_id} | {d for d, u in members if u == self.user_id}
            below: dict[int, list[int]] = {}
            for d, p, _h in depts:
                if p is not None:
                    below.setdefault(p, []).append(d)
            tree, todo = set(), list(mine)
            while todo:
                d = todo.pop()
                if d not in tree:
                    tree.add(d)
                    todo.extend(below.get(d, ()))
            people |= {h for d, _p, h in depts if d in tree and h is not None}
            people |= {u for d, u in members if d in tree and u is not None}
        self._department_users = sorted(people)
        return self._department_users

    def allows(self, entity: str, record_id: int, action: str = "read") -> bool:
        """Whether this user may ``action`` the record ``record_id`` of ``entity``."""
        cond = self.condition(entity, action)
        if cond is None:
            return True
        table = self.models.table(entity)
        row = self.session.execute(sa.select(table.c.id).where(table.c.id == record_id, cond)).first()
        return row is not None

    def filter(self, query, entity: str, action: str = "read", table=None):
        """``query`` limited to the records this user may ``action``."""
        cond = self.condition(entity, action, table)
        return query if cond is None else query.where(cond)

    def with_default_owner(self, em: EntityMeta, data):
        """A new record from a user who may write only their own (or their department's)
        names them in its first owner field when the payload names nobody: a project
        manager's new project is his (A角) unless he says otherwise."""
        rules = em.record_rules
        if rules is None or not hasattr(data, "get") or self.scope(em.name, "write") not in ("own", "department"):
            return data
        fields = [n for n in rules.owners if n != CREATED_BY]
        if not fields or any(data.get(n) not in (None, "") for n in fields):
            return data
        f = em.field(fields[0])
        if f.readonly or f.roles and not set(f.roles) & self.roles:    # a read-only owner is the system's to write
            return data
        return {**data, f.name: self.user_id}

    # -- refusals -----------------------------------------------------------------------
    def out_of_scope(self, em: EntityMeta, action: str) -> OutOfScope:
        what = {"write": ("修改", "change"), "delete": ("删除", "delete")}.get(action, ("操作", "act on"))
        return OutOfScope(OUT_OF_SCOPE, Label(
            f"您没有权限{what[0]}这条{em.label.zh}记录（不在您的数据权限范围内）",
            f"You may not {what[1]} this {em.label.en.lower()}: it is outside your data permissions"))

    def saved_out_of_scope(self, em: EntityMeta) -> OutOfScope:
        rules = root_of(self.meta, em).record_rules
        owner = next((n for n in (rules.owners if rules else ()) if n != CREATED_BY), None)
        return OutOfScope(SAVED_OUT_OF_SCOPE, Label(
            f"保存后这条{em.label.zh}记录将不在您的数据权限范围内（例如经办人不是您或您部门的人）",
            f"After this save the {em.label.en.lower()} would be outside your data permissions "
            "(its managers are not you or your department)"), field=owner)


def _owner_name(em: EntityMeta, name: str) -> str:
    return "created_by_id" if name == CREATED_BY else em.field(name).column_name


def _owner_column(em: EntityMeta, table, name: str):
    return table.c[_owner_name(em, name)]


def _rule_columns(em: EntityMeta) -> list[str]:
    """The columns ``em``'s record rules read (owner and department fields)."""
    rules = em.record_rules
    return [_owner_name(em, n) for n in rules.owners + rules.department] if rules is not None else []


def _narrow(table, *columns):
    """An alias of ``table`` with only ``columns``: building SQL over an alias of a wide
    table copies every column (6 ms a list at 80 columns); the SQL is the same."""
    names = [c for c in dict.fromkeys(columns) if c in table.c]
    return sa.table(table.name, *(sa.column(c) for c in names)).alias()


def user_role_errors(session, meta: Meta, em: EntityMeta, plan: dict) -> dict[str, Label]:
    """Errors for user fields set to someone without the role the field requires
    (an auditor as B角): the record service refuses them like any bad value."""
    errors = {}
    for f in em.column_fields:
        if f.type != "user" or not f.roles or plan.get(f.name) is None:
            continue
        if not set(f.roles) & role_names(session, plan[f.name]):
            names = [meta.roles[r].label if r in meta.roles else Label(r, r) for r in f.roles]
            errors[f.name] = Label("所选用户不是" + "或".join(n.zh for n in names) + "，不能担任此职",
                                   "the user chosen is not a " + " or ".join(n.en.lower() for n in names))
    return errors
