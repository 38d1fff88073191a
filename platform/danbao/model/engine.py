"""Creating engines the way the models expect them.

The models rely on the database to enforce foreign keys: ``ON DELETE CASCADE``
removes a record's child rows (the children relationships use
``passive_deletes``) and ``ON DELETE RESTRICT`` keeps referenced records.
SQLite checks foreign keys only when each connection asks, so ask here.
"""
from __future__ import annotations

import sqlalchemy as sa


def make_engine(url: str, **kw) -> sa.Engine:
    """``sqlalchemy.create_engine`` plus SQLite foreign keys and a busy timeout."""
    return configure_engine(sa.create_engine(url, **kw))


def configure_engine(engine: sa.Engine) -> sa.Engine:
    """The same for an engine made elsewhere (e.g. Flask-SQLAlchemy's);
    call before its first connection."""
    if engine.dialect.name == "sqlite" and not sa.event.contains(engine, "connect", _sqlite_pragmas):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
