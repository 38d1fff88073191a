"""Planned, safe schema changes — no migration files.

``plan_migration`` compares the database with a build's tables and lists the
operations with a safety verdict (rules in ``danbao.model.datachecks``);
``apply_migration`` runs a plan, refusing blocked steps always and destructive
ones unless asked; ``ensure_schema`` is the app-start shortcut that applies
only safe steps.

Atomicity: the apply runs in one transaction. PostgreSQL DDL is
transactional, so a failure anywhere leaves schema and data as they were.
SQLite DDL is transactional too, but Python's sqlite3 module commits around
it by default; the apply therefore drives the transaction itself (``BEGIN`` …
``COMMIT``, foreign-key enforcement switched off for the
duration since SQLite only allows that outside a transaction, and batch
table copies would otherwise trip over it), so a failure rolls back there as
well. The backup is taken inside that transaction before the first change.
Inside the transaction the plan is made again and must match the one
approved; otherwise nothing is done (the data or schema changed meanwhile).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from danbao.meta.model import Label
from danbao.model import ddl
from danbao.model.backup import backup_postgres, backup_sqlite, sqlite_default_dir, stamp
from danbao.model.datachecks import assess
from danbao.model.operations import (BLOCKED, DESTRUCTIVE, ORDER, SAFE, ApplyResult, Backup,
                                     MigrationPlan, MigrationRefused, Operation)
from danbao.model.schemadiff import diff_schema
from danbao.model.system import SCHEMA_STATE_TABLE

__all__ = ["plan_migration", "apply_migration", "ensure_schema", "MigrationPlan", "Operation",
           "ApplyResult", "Backup", "MigrationRefused", "SAFE", "DESTRUCTIVE", "BLOCKED"]

_CHANGED = Label("计划生成后数据库已变化，请重新生成迁移计划",
                 "the database changed since the plan was made; plan again")


# -- planning -------------------------------------------------------------

def plan_migration(engine: sa.Engine, models) -> MigrationPlan:
    """What it takes to bring the database to ``models``, each step assessed."""
    with engine.connect() as conn:
        return _plan(conn, models)


def _plan(conn, models) -> MigrationPlan:
    ops = diff_schema(conn, models)
    existing = set(sa.inspect(conn).get_table_names())
    for op in ops:
        assess(conn, op, existing)
    return MigrationPlan(models, _ordered(conn, ops), conn.dialect.name)


def _ordered(conn, ops: list[Operation]) -> list[Operation]:
    """By ``ORDER``; dropped tables that refer to other dropped tables go first."""
    ops = sorted(ops, key=lambda op: (ORDER[op.kind], op.table, op.column or ""))
    drops = [op for op in ops if op.kind == "drop_table"]
    if len(drops) > 1:
        insp = sa.inspect(conn)
        refs = {op.table: {fk["referred_table"] for fk in insp.get_foreign_keys(op.table)} - {op.table}
                for op in drops}
        ordered: list[Operation] = []
        pending = list(drops)
        while pending:  # a table nobody else still refers to can go; a cycle breaks arbitrarily
            free = [op for op in pending
                    if not any(op.table in refs[o.table] for o in pending if o is not op)] or pending[:1]
            ordered += free
            pending = [op for op in pending if op not in free]
        ops = [op for op in ops if op.kind != "drop_table"] + ordered
    return ops


# -- applying --------------------------------------------------------------

def apply_migration(engine: sa.Engine, plan: MigrationPlan, *, allow_destructive: bool = False,
                    backup_dir: Path | None = None) -> ApplyResult:
    """Run ``plan`` in one transaction, backing up first if anything is destructive.

    Raises ``MigrationRefused`` — having changed nothing — when the plan has
    blocked steps, destructive ones without ``allow_destructive``, or no
    longer matches the database.
    """
    refusals = plan.refusals(allow_destructive)
    if refusals:
        raise MigrationRefused(refusals)
    models = plan.models
    with _transaction(engine, immediate=not plan.destructive) as conn:
        if conn.dialect.name == "postgresql":
            _lock(conn, plan)
        fresh = _plan(conn, models)
        if fresh.signature != plan.signature:
            raise MigrationRefused([_CHANGED])
        backup = _backup(conn, engine, fresh, backup_dir) if fresh.destructive else None
        ddl.run(Operations(MigrationContext.configure(conn)), fresh.operations)
        state_id = _record(conn, models, fresh.operations)
    return ApplyResult(fresh.operations, backup, state_id)


def ensure_schema(engine: sa.Engine, models, *, attempts: int = 3) -> ApplyResult:
    """Apply the safe steps; raise if anything destructive or blocked is pending.

    Several workers may start at once: the applies are serialised, and one
    that finds the work already done by another plans again.
    """
    if _up_to_date(engine, models):
        return ApplyResult([])
    installed = _fresh_install(engine, models)
    if installed is not None:
        return installed
    for attempt in range(attempts):
        plan = plan_migration(engine, models)
        refusals = plan.refusals(allow_destructive=False)
        if refusals:
            raise MigrationRefused(refusals)
        try:
            return apply_migration(engine, plan)
        except MigrationRefused as exc:
            if exc.labels != [_CHANGED] or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _fresh_install(engine: sa.Engine, models) -> ApplyResult | None:
    """On a database holding none of Danbao's tables, create them all at once.

    There is nothing to lose and nothing to compare, so the alembic diff (the
    bulk of a first start with many entities) is skipped. Returns None when
    any managed table already exists: then the normal planned path runs.
    """
    with _transaction(engine, immediate=True) as conn:
        if set(sa.inspect(conn).get_table_names()) & set(models.metadata.tables):
            return None
        models.metadata.create_all(conn)
        ops = [Operation("create_system_table", name) for name in models.system]
        ops += [Operation("create_table", name, detail={"columns": len(models.metadata.tables[name].columns)})
                for name in models.entity_tables]
        state_id = _record(conn, models, ops)
    return ApplyResult(ops, None, state_id)


#: pg_advisory_xact_lock key serialising applies across workers ("Danb").
_ADVISORY_KEY = 0x44616E62


@contextmanager
def _transaction(engine: sa.Engine, *, immediate: bool):
    if engine.dialect.name == "sqlite":
        with _sqlite_transaction(engine, immediate) as conn:
            yield conn
        return
    with engine.connect() as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
            yield conn


@contextmanager
def _sqlite_transaction(engine: sa.Engine, immediate: bool):
    """One real SQLite transaction around DDL (see the module docstring).

    ``BEGIN IMMEDIATE`` takes the write lock at once, serialising concurrent
    applies; but SQLite's backup API refuses a source in a write transaction,
    so a destructive apply (which backs up) uses a deferred ``BEGIN``: its
    reads hold a SHARED lock that keeps writers from committing, and should
    one slip in anyway (WAL mode) our first write fails and nothing changes.
    """
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        fk_on = bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
        conn.commit()
        saved = dbapi.isolation_level
        dbapi.isolation_level = None          # the driver stops issuing BEGIN/COMMIT itself
        try:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        finally:
            dbapi.isolation_level = saved
            if fk_on:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _lock(conn, plan: MigrationPlan) -> None:
    """Keep writers out of the tables being changed until the apply commits."""
    existing = set(sa.inspect(conn).get_table_names())
    tables = sorted({op.payload.get("db_table", op.table) for op in plan.operations} & existing)
    if tables:
        prep = conn.dialect.identifier_preparer
        conn.exec_driver_sql("SET LOCAL lock_timeout = '15s'")
        conn.exec_driver_sql(f"LOCK TABLE {', '.join(prep.quote(t) for t in tables)} "
                             "IN SHARE ROW EXCLUSIVE MODE")


def _backup(conn, engine, plan: MigrationPlan, backup_dir: Path | None) -> Backup:
    when = stamp()
    if conn.dialect.name == "sqlite":
        target = backup_dir or sqlite_default_dir(engine)
        if target is None:
            raise MigrationRefused([Label("内存数据库需要指定备份目录", "an in-memory database needs a backup_dir")])
        return backup_sqlite(conn, Path(target), when)
    existing = set(sa.inspect(conn).get_table_names())
    touched = sorted({op.payload.get("db_table", op.table) for op in plan.destructive} & existing)
    return backup_postgres(conn, touched, Path(backup_dir) if backup_dir else None, when)


def schema_fingerprint(models) -> str:
    """A hash of the schema the models need (tables, columns, types, indexes).

    Hashing the built schema rather than the pack files means a change in
    how tables are built also counts as a change.
    """
    parts = []
    for table in sorted(models.metadata.tables.values(), key=lambda t: t.name):
        cols = [(c.name, str(c.type), c.nullable, c.primary_key,
                 tuple(sorted(fk.target_fullname for fk in c.foreign_keys))) for c in table.columns]
        idx = sorted((i.name, i.unique, tuple(c.name for c in i.columns)) for i in table.indexes)
        parts.append(repr((table.name, cols, idx)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _up_to_date(engine: sa.Engine, models) -> bool:
    """True when the last apply recorded this exact schema and its tables are all there.

    Start-up then costs one query and one table listing instead of a full
    reflection and diff (which grows with the number of entities).
    """
    state = models.system[SCHEMA_STATE_TABLE]
    with engine.connect() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        if not set(models.metadata.tables) <= existing:
            return False
        last = conn.execute(sa.select(state.c.digest, state.c.tables).order_by(state.c.id.desc()).limit(1)).first()
    return last is not None and last.digest == schema_fingerprint(models) \
        and last.tables == json.dumps(list(models.entity_tables))


def _record(conn, models, ops: list[Operation]) -> int | None:
    """A ``danbao_schema_state`` row: what was applied, under which metadata."""
    state = models.system[SCHEMA_STATE_TABLE]
    tables = json.dumps(list(models.entity_tables))
    last = conn.execute(sa.select(state.c.digest, state.c.tables)
                        .order_by(state.c.id.desc()).limit(1)).first()
    if not ops and last is not None and (last.digest, last.tables) == (schema_fingerprint(models), tables):
        return None
    result = conn.execute(state.insert().values(
        applied_at=dt.datetime.now(), meta_version=models.meta.version[:200],
        digest=schema_fingerprint(models), tables=tables,
        operations=json.dumps([op.describe("en") for op in ops], ensure_ascii=False)))
    return result.inserted_primary_key[0]
