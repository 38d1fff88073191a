"""Copies taken before a destructive schema change.

SQLite: the whole database file, copied with SQLite's online backup API
through the migration's own connection (so the copy is exactly what the
migration starts from). PostgreSQL: every table a destructive step touches is
copied to ``danbao_bak_<yyyymmddHHMMSS>_<table>`` in the same transaction, and
— when a backup directory is given — dumped as JSON lines (one object per row,
Decimals and dates as strings, so nothing passes through float).
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from danbao.model.naming import short
from danbao.model.operations import Backup


def stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now()).strftime("%Y%m%d%H%M%S")


def sqlite_default_dir(engine) -> Path | None:
    """``<database folder>/backups`` for a file database, None in memory."""
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db).resolve().parent / "backups"


def backup_sqlite(conn, backup_dir: Path, when: str) -> Backup:
    backup_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(conn.engine.url.database or "memory").stem or "danbao"
    target = backup_dir / f"danbao-{when}-{stem}.sqlite3"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"danbao-{when}-{stem}-{n}.sqlite3"
    source = conn.connection.driver_connection
    copy = sqlite3.connect(str(target))
    try:
        source.backup(copy)
    finally:
        copy.close()
    return Backup(files=[target])


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


def backup_postgres(conn, tables: list[str], backup_dir: Path | None, when: str) -> Backup:
    prep = conn.dialect.identifier_preparer
    taken = set(sa.inspect(conn).get_table_names())
    out = Backup()
    for table in tables:
        name, n = short(f"danbao_bak_{when}_{table}"), 1
        while name in taken:  # two applies within one second
            n += 1
            name = short(f"danbao_bak_{when}_{n}_{table}")
        taken.add(name)
        conn.exec_driver_sql(f"CREATE TABLE {prep.quote(name)} AS SELECT * FROM {prep.quote(table)}")
        out.tables.append(name)
        if backup_dir is not None:
            backup_dir.mkdir(parents=True, exist_ok=True)
            path = backup_dir / f"{name}.jsonl"
            rows = conn.execute(sa.select(sa.text("*")).select_from(sa.table(table))).mappings()
            with path.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(dict(row), default=_json_default, ensure_ascii=False) + "\n")
            out.files.append(path)
    return out
