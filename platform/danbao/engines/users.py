"""The accounts behind ``user`` fields, read from Flask-AppBuilder's user table.

Engines import no Flask, so the table is described here by name with the few
columns Danbao reads; it is created by Flask-AppBuilder, never by Danbao.
"""
from __future__ import annotations

import sqlalchemy as sa

USER_TABLE = sa.table(
    "ab_user", sa.column("id"), sa.column("username"), sa.column("first_name"),
    sa.column("last_name"), sa.column("active"))
USER_ROLE_TABLE = sa.table("ab_user_role", sa.column("user_id"), sa.column("role_id"))
ROLE_TABLE = sa.table("ab_role", sa.column("id"), sa.column("name"))


def display_name(first: str | None, last: str | None, username: str) -> str:
    """Chinese order, family name first, no space (三 / 张 -> 张三); a Latin name
    as written (John / Smith -> John Smith); the login in brackets."""
    first, last = first or "", last or ""
    full = (f"{first} {last}" if (first + last).isascii() else f"{last}{first}").strip()
    return f"{full} ({username})" if full else username


def user_exists(session, user_id: int) -> bool:
    row = session.execute(sa.select(USER_TABLE.c.id).where(USER_TABLE.c.id == user_id)).first()
    return row is not None


def user_names(session, ids=None) -> dict[int, str]:
    """id -> display name, for all users or the ids given."""
    query = sa.select(USER_TABLE.c.id, USER_TABLE.c.first_name, USER_TABLE.c.last_name,
                      USER_TABLE.c.username)
    if ids is not None:
        ids = sorted({i for i in ids if i is not None})
        if not ids:
            return {}
        query = query.where(USER_TABLE.c.id.in_(ids))
    return {r[0]: display_name(r[1], r[2], r[3]) for r in session.execute(query)}


def active_users(session) -> list[tuple[int, str]]:
    """(id, name) of every active account, for pickers."""
    query = sa.select(USER_TABLE.c.id, USER_TABLE.c.first_name, USER_TABLE.c.last_name,
                      USER_TABLE.c.username).where(USER_TABLE.c.active.is_(True)).order_by(USER_TABLE.c.username)
    return [(r[0], display_name(r[1], r[2], r[3])) for r in session.execute(query)]


def role_names(session, user_id: int) -> set[str]:
    query = (sa.select(ROLE_TABLE.c.name)
             .select_from(USER_ROLE_TABLE.join(ROLE_TABLE, ROLE_TABLE.c.id == USER_ROLE_TABLE.c.role_id))
             .where(USER_ROLE_TABLE.c.user_id == user_id))
    return {r[0] for r in session.execute(query)}


def users_with_roles(session, roles) -> set[int]:
    """Ids of the users holding any of ``roles`` (the picker of a user field that requires one)."""
    query = (sa.select(USER_ROLE_TABLE.c.user_id)
             .select_from(USER_ROLE_TABLE.join(ROLE_TABLE, ROLE_TABLE.c.id == USER_ROLE_TABLE.c.role_id))
             .where(ROLE_TABLE.c.name.in_(sorted(roles))))
    return {r[0] for r in session.execute(query)}
