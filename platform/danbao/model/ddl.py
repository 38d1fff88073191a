"""Running planned operations through alembic's ``Operations``.

PostgreSQL can ALTER everything in place. SQLite can natively only add
columns, create/drop indexes and rename; anything else goes through alembic's
batch mode (``recreate="auto"``: copy into a new table, drop, rename), with
the naming convention so unnamed reflected constraints can be addressed.
New tables are created with SQLAlchemy's ``create_all`` over the target
tables, which orders them by their foreign keys.
"""
from __future__ import annotations

from typing import Callable

import sqlalchemy as sa
from alembic.operations import Operations

from danbao.model.naming import naming_convention
from danbao.model.operations import Operation


def _is_sqlite(ops: Operations) -> bool:
    return ops.impl.dialect.name == "sqlite"


def _batch(ops: Operations, table: str):
    return ops.batch_alter_table(table, recreate="auto", naming_convention=naming_convention())


def create_tables(ops: Operations, items: list[Operation]) -> None:
    tables = [op.payload["table"] for op in items]
    tables[0].metadata.create_all(ops.get_bind(), tables=tables, checkfirst=False)


def _detached(column: sa.Column) -> sa.Column:
    """A copy of a target column, foreign key included, free to attach elsewhere."""
    fks = [sa.ForeignKey(fk.target_fullname, ondelete=fk.ondelete, name=fk.name)
           for fk in column.foreign_keys]
    return sa.Column(column.name, column.type, *fks, nullable=column.nullable)


def add_column(ops: Operations, op: Operation) -> None:
    column = _detached(op.payload["column"])
    if _is_sqlite(ops) and column.foreign_keys:
        # SQLite cannot ADD CONSTRAINT, and an inline REFERENCES would be
        # unnamed and reflected without its ON DELETE; copy the table instead
        with ops.batch_alter_table(op.table, recreate="always",
                                   naming_convention=naming_convention()) as b:
            b.add_column(column)
    else:
        ops.add_column(op.table, column)


def add_system_column(ops: Operations, op: Operation) -> None:
    """A new nullable column on a system table, then its ``backfill`` if declared."""
    column = op.payload["column"]
    if not column.nullable:
        raise ValueError(f"system column {op.table}.{column.name} must be nullable to be added")
    ops.add_column(op.table, sa.Column(column.name, column.type, nullable=True))
    backfill = column.info.get("backfill")
    if backfill is not None:
        backfill(ops.get_bind(), column.table)


def add_index(ops: Operations, op: Operation) -> None:
    ix = op.payload["index"]
    ops.create_index(ix.name, op.table, [c.name for c in ix.columns], unique=ix.unique)


def add_system_index(ops: Operations, op: Operation) -> None:
    """The index exactly as declared (partial ``WHERE`` included), after its
    ``prepare`` step makes the data fit (e.g. closing duplicate open warnings)."""
    ix = op.payload["index"]
    prepare = ix.info.get("prepare")
    if prepare is not None:
        prepare(ops.get_bind(), ix.table)
    ix.create(ops.get_bind())


def drop_index(ops: Operations, op: Operation) -> None:
    if not op.payload.get("constraint"):
        ops.drop_index(op.payload["name"], table_name=op.table)
    elif _is_sqlite(ops):
        with _batch(ops, op.table) as b:
            b.drop_constraint(op.payload["name"], type_="unique")
    else:
        ops.drop_constraint(op.payload["name"], op.table, type_="unique")


def alter_type(ops: Operations, op: Operation) -> None:
    p = op.payload
    kw = dict(type_=p["new"], existing_type=p["old"], existing_nullable=p["nullable"])
    if _is_sqlite(ops):
        with _batch(ops, op.table) as b:
            b.alter_column(op.column, **kw)
    else:
        if p.get("using"):
            kw["postgresql_using"] = p["using"]
        ops.alter_column(op.table, op.column, **kw)


def alter_nullable(ops: Operations, op: Operation) -> None:
    kw = dict(nullable=op.detail["nullable"], existing_type=op.payload["type"])
    if _is_sqlite(ops):
        with _batch(ops, op.table) as b:
            b.alter_column(op.column, **kw)
    else:
        ops.alter_column(op.table, op.column, **kw)


def rename_table(ops: Operations, op: Operation) -> None:
    ops.rename_table(op.detail["old_name"], op.table)


def rename_column(ops: Operations, op: Operation) -> None:
    # native on both (SQLite >= 3.25 has RENAME COLUMN; it also rewrites indexes)
    ops.alter_column(op.table, op.detail["old_name"], new_column_name=op.column)


def drop_column(ops: Operations, op: Operation) -> None:
    if _is_sqlite(ops):
        with _batch(ops, op.table) as b:
            b.drop_column(op.column)
    else:
        ops.drop_column(op.table, op.column)


def drop_table(ops: Operations, op: Operation) -> None:
    ops.drop_table(op.table)


def add_foreign_key(ops: Operations, op: Operation) -> None:
    p = op.payload
    args = (p["name"], op.table, p["ref"], [op.column], ["id"])
    if _is_sqlite(ops):
        with _batch(ops, op.table) as b:
            b.create_foreign_key(p["name"], p["ref"], [op.column], ["id"], ondelete=p["ondelete"])
    else:
        ops.create_foreign_key(*args, ondelete=p["ondelete"])


def drop_foreign_key(ops: Operations, op: Operation) -> None:
    if _is_sqlite(ops):
        with _batch(ops, op.table) as b:
            b.drop_constraint(op.payload["name"], type_="foreignkey")
    else:
        ops.drop_constraint(op.payload["name"], op.table, type_="foreignkey")


#: kind -> function(ops, op); ``create_table``-like kinds are run as a group.
APPLIERS: dict[str, Callable[[Operations, Operation], None]] = {
    "add_column": add_column, "add_system_column": add_system_column,
    "add_index": add_index, "add_unique": add_index, "add_system_index": add_system_index,
    "drop_index": drop_index, "drop_unique": drop_index,
    "alter_type": alter_type,
    "alter_nullable": alter_nullable,
    "rename_table": rename_table,
    "rename_column": rename_column,
    "drop_column": drop_column,
    "drop_table": drop_table,
    "add_foreign_key": add_foreign_key,
    "drop_foreign_key": drop_foreign_key,
}
GROUPED = {"create_system_table": create_tables, "create_table": create_tables}


def run(ops: Operations, operations: list[Operation]) -> None:
    """Run ``operations`` (already in order) on the operations' connection."""
    i = 0
    while i < len(operations):
        kind = operations[i].kind
        if kind in GROUPED:
            j = i
            while j < len(operations) and operations[j].kind == kind:
                j += 1
            GROUPED[kind](ops, operations[i:j])
            i = j
        else:
            APPLIERS[kind](ops, operations[i])
            i += 1

