"""Counters for record numbers, safe when many people create records at once.

``next_number(session, table, name, scope)`` hands out 1, 2, 3 … per
(name, scope) from the ``danbao_sequence`` table, inside the caller's
transaction: the number is used up only if that transaction commits, and a
second caller of the same counter waits (PostgreSQL row lock, SQLite's single
writer) until the first commits or rolls back, so numbers are unique and
without gaps.

One statement does it on SQLite and PostgreSQL: ``INSERT … ON CONFLICT (name,
scope) DO UPDATE SET value = value + 1 RETURNING value`` — the insert of a new
counter and the increment of an existing one cannot race each other. Other
databases take ``UPDATE … SET value = value + 1 RETURNING value`` and, when
there is no row yet, an insert in a savepoint, retried as an update when a
competitor inserted first.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

#: how often an insert race is retried before giving up (the generic path only)
RETRIES = 20


def next_number(session, table: sa.Table, name: str, scope: str) -> int:
    """The next value of counter (``name``, ``scope``): 1 for a new counter."""
    if not isinstance(name, str) or not name or not isinstance(scope, str):
        raise ValueError("a sequence needs a non-empty name and a scope")
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        return _upsert(session, table, name, scope, dialect)
    return _update_or_insert(session, table, name, scope)


def _upsert(session, table: sa.Table, name: str, scope: str, dialect: str) -> int:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(name=name, scope=scope, value=1)
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.name, table.c.scope],
                                      set_={"value": table.c.value + 1}).returning(table.c.value)
    return int(session.execute(stmt).scalar_one())


def _update_or_insert(session, table: sa.Table, name: str, scope: str) -> int:
    where = (table.c.name == name, table.c.scope == scope)
    for _ in range(RETRIES):
        value = session.execute(table.update().where(*where).values(value=table.c.value + 1)
                                .returning(table.c.value)).scalar()
        if value is not None:
            return int(value)
        try:
            with session.begin_nested():
                session.execute(table.insert().values(name=name, scope=scope, value=1))
            return 1
        except IntegrityError:          # somebody created the counter meanwhile: increment theirs
            continue
    raise RuntimeError(f"could not take a number from sequence {name!r} ({scope})")
