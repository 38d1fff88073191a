"""Permissions for generated screens and API, derived from metadata.

Each entity is one FAB view-menu ``entity_<name>`` with three permissions:
``can_read``, ``can_write`` and ``can_delete``. Roles declared in metadata
become FAB *builtin* roles (``FAB_ROLES``): their grants live in config and
are checked without a database query, which also avoids FAB's quadratic
per-permission sync. The permission rows are still written (in one
transaction, only the missing ones) so admins see them in the security UI
and can build extra database roles from them.
"""
from __future__ import annotations

import re

from flask import current_app, redirect, url_for

from danbao.meta.model import Meta

ADMIN_ROLE = "Admin"
PERMISSIONS = ("can_read", "can_write", "can_delete")
ACTION_PERMISSION = {"read": "can_read", "write": "can_write", "delete": "can_delete"}
#: FAB's own self-service views every signed-in user needs.
SELF_SERVICE = [
    ["^UserInfoEditView$", ".*"], ["^ResetMyPasswordView$", ".*"],
    ["^UserDBModelView$", "^can_userinfo$"], ["^UserDBModelView$", "^userinfoedit$"],
    ["^Workbench$", ".*"], ["^LocaleView$", ".*"],
    # the warnings inbox: everyone has one (what is in it is decided per warning)
    ["^WarningInbox$", ".*"], ["^danbao_warnings$", "^menu_access$"],
]


def view_name(entity: str) -> str:
    return f"entity_{entity}"


def fab_roles(meta: Meta) -> dict[str, list[list[str]]]:
    """FAB_ROLES: the Admin role may do everything; metadata roles get their grants.

    Grants are folded into one alternation regex per permission, so the
    number of entries grows with roles, not entities (FAB writes a
    permission row per entry at start-up).
    """
    roles: dict[str, list[list[str]]] = {ADMIN_ROLE: [[".*", ".*"]]}
    for role in meta.roles:
        grants = [list(g) for g in SELF_SERVICE]
        menus = set()
        for action, permission in ACTION_PERMISSION.items():
            names = sorted(em.name for em in meta.entities.values() if role in em.permissions.get(action, ()))
            if names:
                grants.append([_alternation(view_name(n) for n in names), f"^{permission}$"])
            if action == "read":
                for n in names:
                    em = meta.entities[n]
                    if em.menu:
                        menus.update((view_name(n), em.menu))
        if menus:
            grants.append([_alternation(menus), "^menu_access$"])
        roles[role] = grants
    return roles


def _alternation(names) -> str:
    return "^(" + "|".join(re.escape(n) for n in sorted(names)) + ")$"


def can(action: str, entity: str) -> bool:
    """Whether the current user (session or JWT) may do ``action`` on ``entity``."""
    sm = current_app.appbuilder.sm
    return sm.has_access(ACTION_PERMISSION[action], view_name(entity))


def sync_permission_rows(sm, meta: Meta) -> int:
    """Create missing roles, view-menus and permission-views in one commit; return how many."""
    session = sm.session
    added = 0
    for name in list(meta.roles) + [ADMIN_ROLE]:
        if sm.find_role(name) is None:
            session.add(sm.role_model(name=name))
            added += 1
    perms = {p.name: p for p in session.query(sm.permission_model).all()}
    views = {v.name: v for v in session.query(sm.viewmenu_model).all()}
    existing = {(pv.permission.name, pv.view_menu.name) for pv in session.query(sm.permissionview_model).all()}
    wanted = [(p, view_name(e)) for e in meta.entities for p in PERMISSIONS]
    wanted += [("menu_access", view_name(e.name)) for e in meta.entities.values() if e.menu]
    wanted += [("menu_access", m) for m in meta.menus]
    for perm_name, view in wanted:
        if (perm_name, view) in existing:
            continue
        perm = perms.get(perm_name) or perms.setdefault(perm_name, sm.permission_model(name=perm_name))
        vm = views.get(view) or views.setdefault(view, sm.viewmenu_model(name=view))
        session.add(sm.permissionview_model(permission=perm, view_menu=vm))
        added += 1
    session.commit()
    return added


def login_redirect(**params):
    """Send an anonymous visitor to FAB's login page (whichever auth view is configured)."""
    sm = current_app.appbuilder.sm
    return redirect(url_for(sm.auth_view.__class__.__name__ + ".login", **params))
