"""Stable, bounded names for tables' constraints and indexes.

Alembic compares indexes by name and SQLite's batch mode needs every
constraint named, so each build names everything deterministically. PostgreSQL
cuts identifiers at 63 bytes; longer names are shortened here, the same way on
every dialect, with a hash suffix that keeps them distinct.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from sqlalchemy import ForeignKeyConstraint

MAX_IDENTIFIER = 63


def short(name: str, limit: int = MAX_IDENTIFIER) -> str:
    """``name`` if it fits in ``limit`` bytes, else a prefix plus an 8-hex hash."""
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    head = name.encode("utf-8")[: limit - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


def index_name(table: str, columns: Iterable[str], *, unique: bool = False) -> str:
    """``ix_<table>_<cols>`` or ``uq_<table>_<cols>`` (unique indexes)."""
    prefix = "uq" if unique else "ix"
    return short(f"{prefix}_{table}_{'_'.join(columns)}")


def fk_name(table: str, column: str) -> str:
    return short(f"fk_{table}_{column}")


def pk_name(table: str) -> str:
    return short(f"pk_{table}")


def _columns(const) -> list[str]:
    if isinstance(const, ForeignKeyConstraint):
        return list(const.column_keys)
    return [c.name for c in const.columns]


def naming_convention() -> dict:
    """A MetaData naming convention using the same bounded names.

    The builder names its indexes and foreign keys itself; the convention
    covers whatever it does not (primary keys, system tables).
    """
    return {
        "danbao_pk": lambda const, table: pk_name(table.name),
        "danbao_ix": lambda const, table: index_name(table.name, _columns(const)),
        "danbao_uq": lambda const, table: index_name(table.name, _columns(const), unique=True),
        "danbao_fk": lambda const, table: short(f"fk_{table.name}_{'_'.join(_columns(const))}"),
        "danbao_ck": lambda const, table: short(f"ck_{table.name}_{const.name}"),
        "pk": "%(danbao_pk)s",
        "ix": "%(danbao_ix)s",
        "uq": "%(danbao_uq)s",
        "fk": "%(danbao_fk)s",
        "ck": "%(danbao_ck)s",
    }
