"""Load-time checks of who sees which records: record rules, the department
tree, the roles user fields require and the roles that see masked fields.

Separate from ``crosschecks`` because they are one concern (data permissions,
issue 10) with their own codes, DB310–DB314; unknown roles are DB225 like
those of ``permissions``.
"""
from __future__ import annotations

from danbao.meta.crosschecks import BUILTIN_ROLES
from danbao.meta.errors import PackError
from danbao.meta.model import Source
from danbao.meta.overlay import EntityDraft, Merged, key_source

#: a system column that may stand for an owner: the user who created the record
CREATED_BY = "created_by"
#: codes whose "X is not declared" may be noise while some file cannot be read
RESOLUTION_CODES = frozenset({"DB312"})


def check_access(merged: Merged) -> list[PackError]:
    errors: list[PackError] = []

    def error(src: Source, code: str, message: str) -> None:
        errors.append(PackError(src.file, src.line, code, message))

    organisations = [e for e in merged.entities.values() if e.head.get("organisation")]
    for e in organisations[1:]:
        error(e.head.src("organisation"), "DB314", f"entity '{e.name}' declares organisation, but "
                                                   f"'{organisations[0].name}' already does: there is one department tree")
    for e in organisations[:1]:
        _organisation(merged, e, error)
    for e in merged.entities.values():
        _user_roles(merged, e, error)
        unmask = e.head.get("unmask")
        for i, role in enumerate(unmask or ()):
            if role not in merged.roles and role not in BUILTIN_ROLES:
                error(_item_src(e.head.src("unmask"), unmask, i), "DB225",
                      f"unmask: role '{role}' is not declared")
        if e.head.get("record_rules") is not None:
            _rules(merged, e, bool(organisations), error)
    return errors


def _item_src(src: Source, node, i: int) -> Source:
    line = node.item_line(i) if hasattr(node, "item_line") else src.line
    return Source(src.file, line)


def _user_roles(merged: Merged, e: EntityDraft, error) -> None:
    for name, f in e.fields.items():
        role = f.get("role")
        if role is None or f.get("type") != "user":
            continue   # on another type it is DB231
        for r in [role] if isinstance(role, str) else role:
            if r not in merged.roles and r not in BUILTIN_ROLES:
                error(f.src("role"), "DB225", f"field '{name}': role '{r}' is not declared")


def _is_user_field(e: EntityDraft, name: str) -> bool:
    f = e.fields.get(name)
    return name == CREATED_BY or (f is not None and f.get("type") == "user")


def _rules(merged: Merged, e: EntityDraft, has_organisation: bool, error) -> None:
    node = e.head.get("record_rules")
    src = e.head.src("record_rules")
    if e.head.get("parent"):
        error(src, "DB313", f"entity '{e.name}' is a child entity: its records are reached through its parent, "
                            "so record_rules belong on the parent")
        return
    for key in ("owners", "department"):
        names = node.get(key) or []
        for i, name in enumerate(names):
            if not _is_user_field(e, name):
                error(_item_src(key_source(node, key, src), names, i), "DB310",
                      f"record_rules.{key}: '{name}' is not a user field of '{e.name}' (nor created_by)")
    owners = node.get("owners") or []
    department = node.get("department") if node.get("department") is not None else owners
    roles = node.get("roles") or []
    for i, item in enumerate(roles):
        at = _item_src(key_source(node, "roles", src), roles, i)
        role = item.get("role")
        if role not in merged.roles and role not in BUILTIN_ROLES:
            error(at, "DB225", f"record_rules: role '{role}' is not declared")
        scopes = {item.get(a) for a in ("read", "write", "delete")}
        if "own" in scopes and not owners and not node.get("via"):
            error(at, "DB311", f"record_rules: role '{role}' has scope own, but '{e.name}' declares no owners")
        if "department" in scopes and not (department or node.get("via")):
            error(at, "DB311", f"record_rules: role '{role}' has scope department, but '{e.name}' names no "
                               "department fields")
        if "department" in scopes and not has_organisation:
            error(at, "DB311", f"record_rules: role '{role}' has scope department, but no entity declares "
                               "organisation (the department tree)")
    vias = node.get("via") or []
    for i, via in enumerate(vias):
        at = _item_src(key_source(node, "via", src), vias, i)
        other = merged.entities.get(via.get("entity"))
        if other is None:
            error(at, "DB312", f"record_rules.via: entity '{via.get('entity')}' is not declared")
            continue
        f = other.fields.get(via.get("field"))
        if f is None or f.get("type") != "reference" or f.get("target") != e.name:
            error(at, "DB312", f"record_rules.via: '{via.get('field')}' is not a reference of "
                               f"'{other.name}' to '{e.name}'")
        elif other.head.get("record_rules") is None:
            error(at, "DB312", f"record_rules.via: '{other.name}' declares no record_rules to reach "
                               f"'{e.name}' through")


def _organisation(merged: Merged, e: EntityDraft, error) -> None:
    node = e.head.get("organisation")
    src = e.head.src("organisation")

    def field_of(entity: EntityDraft, key: str, name, ftype: str, target: str | None = None) -> bool:
        f = entity.fields.get(name)
        ok = f is not None and f.get("type") == ftype and (target is None or f.get("target") == target)
        if not ok:
            want = f"a {ftype} field" + (f" to '{target}'" if target else "")
            error(key_source(node, key, src), "DB314", f"organisation.{key}: '{name}' is not {want} of "
                                                       f"'{entity.name}'")
        return ok

    if e.head.get("parent"):
        error(src, "DB314", f"organisation: '{e.name}' is a child entity; the department tree is a top-level entity")
    field_of(e, "parent", node.get("parent"), "reference", e.name)
    field_of(e, "head", node.get("head"), "user")
    if field_of(e, "members", node.get("members"), "children"):
        child = merged.entities.get(e.fields[node.get("members")].get("target"))
        if child is not None:
            field_of(child, "member_user", node.get("member_user"), "user")
