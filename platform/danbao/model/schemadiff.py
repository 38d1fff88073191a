"""Structural differences between the database and one build's tables.

Alembic's autogenerate does the comparing. This module decides what it may
look at — the build's entity tables and the tables an earlier apply recorded
as Danbao's, never FAB's ``ab_*`` or anything else in the database — and
turns the renames the metadata declares (``renamed_from``) into rename
operations *before* comparing: the comparison runs against a copy of the
target tables under their database-side names, so alembic never sees a
renamed table or column as a drop plus an add.

The operations come out without a safety verdict; ``datachecks`` adds it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from danbao.meta.model import ID_TYPES
from danbao.model.naming import fk_name
from danbao.model.operations import Operation
from danbao.model.system import SCHEMA_STATE_TABLE, SYSTEM_TABLES

#: Tables that belong to someone else even if a state row named them.
FOREIGN_PREFIXES = ("ab_", "danbao_bak_", "alembic_")

_STATE = sa.table(SCHEMA_STATE_TABLE, sa.column("id"), sa.column("tables"))


def managed_tables(conn, existing: set[str]) -> set[str] | None:
    """Entity tables the last apply recorded, or None before the first apply."""
    if SCHEMA_STATE_TABLE not in existing:
        return None
    row = conn.execute(sa.select(_STATE.c.tables).order_by(_STATE.c.id.desc()).limit(1)).first()
    return set(json.loads(row[0])) if row else None


@dataclass
class Names:
    """Target (new) names to database (old) names, and back."""
    tables: dict[str, str] = field(default_factory=dict)                # new table -> db table
    columns: dict[tuple[str, str], str] = field(default_factory=dict)   # (new table, new col) -> db col

    def db_table(self, table: str) -> str:
        return self.tables.get(table, table)

    def db_column(self, table: str, column: str) -> str:
        return self.columns.get((table, column), column)

    def new_table(self, db_table: str) -> str:
        for new, old in self.tables.items():
            if old == db_table:
                return new
        return db_table

    def new_column(self, table: str, db_column: str) -> str:
        for (t, new), old in self.columns.items():
            if t == table and old == db_column:
                return new
        return db_column


def _old_column(f, db_cols: set[str]) -> str | None:
    """The database column a renamed field was stored in."""
    candidates = ([f"{f.renamed_from}_id", f.renamed_from] if f.type in ID_TYPES
                  else [f.renamed_from, f"{f.renamed_from}_id"])
    return next((c for c in candidates if c in db_cols), None)


def find_renames(models, insp, existing: set[str], managed: set[str] | None) -> tuple[list[Operation], Names]:
    """Rename ops for entities and fields whose ``renamed_from`` is in the database."""
    ops: list[Operation] = []
    names = Names()
    for em in models.meta.entities.values():
        old = em.renamed_from
        if (old and em.table not in existing and old in existing
                and (managed is None or old in managed)):
            names.tables[em.table] = old
            ops.append(Operation("rename_table", em.table, detail={"old_name": old},
                                 payload={"db_table": old}))
    for em in models.meta.entities.values():
        db_table = names.db_table(em.table)
        if db_table not in existing:
            continue
        db_cols = {c["name"] for c in insp.get_columns(db_table)}
        for f in em.column_fields:
            if not f.renamed_from or f.column_name in db_cols:
                continue
            old_col = _old_column(f, db_cols)
            if old_col is not None:
                names.columns[(em.table, f.column_name)] = old_col
                ops.append(Operation("rename_column", em.table, f.column_name,
                                     detail={"old_name": old_col},
                                     payload={"db_table": db_table, "db_column": old_col}))
    return ops, names


def db_shaped_metadata(models, names: Names, tables: list[str]) -> sa.MetaData:
    """Copies of the target ``tables`` under their database-side names."""
    md = sa.MetaData()
    for name in tables:
        target = models.metadata.tables[name]
        cols = []
        for c in target.columns:
            fks = [sa.ForeignKey(f"{names.db_table(fk.target_fullname.split('.')[0])}.{fk.target_fullname.split('.')[1]}",
                                 ondelete=fk.ondelete, name=fk.name) for fk in c.foreign_keys]
            cols.append(sa.Column(names.db_column(name, c.name), c.type, *fks,
                                  primary_key=c.primary_key, nullable=c.nullable))
        copy = sa.Table(names.db_table(name), md, *cols)
        for ix in target.indexes:
            sa.Index(ix.name, *(copy.c[names.db_column(name, c.name)] for c in ix.columns), unique=ix.unique)
    return md


def diff_schema(conn, models) -> list[Operation]:
    """Every structural step from the database to ``models`` (unsorted, unassessed)."""
    insp = sa.inspect(conn)
    existing = set(insp.get_table_names())
    managed = managed_tables(conn, existing)
    ops = [Operation("create_system_table", name, payload={"table": table})
           for name, table in models.system.items() if name not in existing]
    ops += _system_columns(insp, models, existing)
    ops += _system_indexes(insp, models, existing)
    renames, names = find_renames(models, insp, existing, managed)
    ops += renames
    renamed_to = set(names.tables)
    compare, foreign = [], []
    for name in models.entity_tables:
        if (managed is not None and name in existing and name not in managed
                and name not in renamed_to):
            foreign.append(name)
        else:
            compare.append(name)
    ops += [Operation("create_table", name, detail={"columns": len(models.metadata.tables[name].columns)},
                      payload={"foreign": True}) for name in foreign]
    md = db_shaped_metadata(models, names, compare)
    allowed = set(md.tables) | {t for t in (managed or ()) if t in existing}
    allowed -= set(SYSTEM_TABLES)
    allowed = {t for t in allowed if not t.startswith(FOREIGN_PREFIXES) or t in md.tables}

    def include_name(name, type_, parent_names):
        return name in allowed if type_ == "table" else True

    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name,
                                                 "target_metadata": md})
    translate = _Translator(models, names, conn.dialect)
    found = []
    for diff in compare_metadata(ctx, md):
        for d in (diff if isinstance(diff, list) else [diff]):
            op = translate(d)
            if op is not None:
                found.append(op)
    return ops + _without_implied(found)


def _system_columns(insp, models, existing: set[str]) -> list[Operation]:
    """Columns a newer build adds to system tables the database already has.

    They must be nullable (old rows have no value); a column may carry
    ``info["backfill"]``, called with the connection and table after the column
    is added, to give old rows their value (e.g. the version an audit row
    belongs to cannot be known, so it stays empty).
    """
    ops = []
    for name, table in models.system.items():
        if name not in existing:
            continue
        have = {c["name"] for c in insp.get_columns(name)}
        for column in table.columns:
            if column.name not in have:
                ops.append(Operation("add_system_column", name, column=column.name,
                                     detail={"type": str(column.type)}, payload={"column": column}))
    return ops


def _system_indexes(insp, models, existing: set[str]) -> list[Operation]:
    """Indexes a newer build declares on system tables the database already has.

    Alembic does not compare system tables (their shape is Danbao's, not the
    metadata's); a missing index is the one change they can need.
    """
    ops = []
    for name, table in models.system.items():
        if name not in existing or not table.indexes:
            continue
        have = {ix["name"] for ix in insp.get_indexes(name)}
        for ix in sorted(table.indexes, key=lambda i: i.name):
            if ix.name not in have:
                ops.append(Operation("add_system_index", name, detail={
                    "name": ix.name, "cols": ", ".join(c.name for c in ix.columns)}, payload={"index": ix}))
    return ops


def _without_implied(ops: list[Operation]) -> list[Operation]:
    """Alembic lists a new table's indexes and a new column's foreign key
    separately; creating the table or column makes them already."""
    created = {op.table for op in ops if op.kind == "create_table"}
    added = {(op.table, op.column) for op in ops if op.kind == "add_column"}
    return [op for op in ops
            if not (op.kind in ("add_index", "add_unique") and op.table in created)
            and not (op.kind == "add_foreign_key" and (op.table, op.column) in added)]


class _Translator:
    """One alembic diff tuple -> one Operation in target names."""

    def __init__(self, models, names: Names, dialect):
        self.models, self.names, self.dialect = models, names, dialect

    def type_text(self, type_) -> str:
        try:
            return type_.compile(dialect=self.dialect)
        except Exception:  # pragma: no cover - exotic reflected types
            return repr(type_)

    def target(self, table: str) -> sa.Table:
        return self.models.metadata.tables[table]

    def __call__(self, d) -> Operation | None:
        kind = d[0]
        return getattr(self, kind, self.unsupported)(d)

    def add_table(self, d):
        table = self.target(d[1].name)
        return Operation("create_table", table.name, detail={"columns": len(table.columns)},
                         payload={"table": table})

    def remove_table(self, d):
        t = d[1]
        return Operation("drop_table", t.name, payload={"db_table": t.name})

    def add_column(self, d):
        _, _, db_table, col = d
        table = self.names.new_table(db_table)
        name = self.names.new_column(table, col.name)
        target = self.target(table).c[name]
        return Operation("add_column", table, name, detail={"type": self.type_text(target.type)},
                         payload={"column": target, "db_table": db_table})

    def remove_column(self, d):
        _, _, db_table, col = d
        return Operation("drop_column", self.names.new_table(db_table), col.name,
                         payload={"db_table": db_table, "db_column": col.name, "existing": col})

    def add_index(self, d):
        ix = d[1]
        table = self.names.new_table(ix.table.name)
        target = next(i for i in self.target(table).indexes if i.name == ix.name)
        cols = [c.name for c in target.columns]
        return Operation("add_unique" if ix.unique else "add_index", table,
                         cols[0] if len(cols) == 1 else None,
                         detail={"name": ix.name, "cols": ", ".join(cols)},
                         payload={"index": target, "db_table": ix.table.name,
                                  "db_columns": [c.name for c in ix.columns]})

    def remove_index(self, d):
        ix = d[1]
        table = self.names.new_table(ix.table.name)
        cols = [c.name for c in ix.columns]
        return Operation("drop_unique" if ix.unique else "drop_index", table,
                         cols[0] if len(cols) == 1 else None,
                         detail={"name": ix.name}, payload={"name": ix.name, "constraint": False})

    def remove_constraint(self, d):
        const = d[1]
        if not isinstance(const, sa.UniqueConstraint):
            return self.unsupported(d)
        table = self.names.new_table(const.table.name)
        return Operation("drop_unique", table, None, detail={"name": const.name},
                         payload={"name": const.name, "constraint": True})

    def add_fk(self, d):
        fk = d[1]
        db_table = fk.parent.name
        table = self.names.new_table(db_table)
        db_col = fk.column_keys[0]
        col = self.names.new_column(table, db_col)
        ref = self.names.new_table(fk.referred_table.name)
        return Operation("add_foreign_key", table, col, detail={"target": f"{ref}.id"},
                         payload={"name": fk.name or fk_name(table, col), "ref": ref,
                                  "ondelete": fk.ondelete, "db_table": db_table, "db_column": db_col,
                                  "db_ref": fk.referred_table.name})

    def remove_fk(self, d):
        fk = d[1]
        db_table = fk.parent.name
        table = self.names.new_table(db_table)
        col = fk.column_keys[0]
        return Operation("drop_foreign_key", table, col,
                         detail={"target": f"{fk.referred_table.name}.{fk.elements[0].column.name}"},
                         payload={"name": fk.name or fk_name(db_table, col)})

    def modify_type(self, d):
        _, _, db_table, db_col, kw, old, new = d
        table = self.names.new_table(db_table)
        col = self.names.new_column(table, db_col)
        return Operation("alter_type", table, col,
                         detail={"old_type": self.type_text(old), "type": self.type_text(new)},
                         payload={"old": old, "new": new, "db_table": db_table, "db_column": db_col,
                                  "nullable": kw.get("existing_nullable", True)})

    def modify_nullable(self, d):
        _, _, db_table, db_col, kw, old, new = d
        table = self.names.new_table(db_table)
        col = self.names.new_column(table, db_col)
        return Operation("alter_nullable", table, col, detail={"nullable": bool(new)},
                         payload={"type": kw.get("existing_type"), "db_table": db_table, "db_column": db_col})

    def modify_default(self, d):
        return None  # server defaults are not compared; entities declare none

    def modify_comment(self, d):
        return None

    def unsupported(self, d):
        table = getattr(d[1], "name", None) or (d[2] if len(d) > 2 else "?")
        return Operation("unsupported", str(table), detail={"what": repr(d)[:200]})
