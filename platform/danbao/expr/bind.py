"""Connect expressions to an entity's table and rows.

``entity_columns`` gives the ``columns`` mapping ``to_sql`` needs;
``row_values`` flattens a database row into the plain ``values`` mapping
``evaluate`` needs. Both use the names ``Scope.for_entity`` offers.
"""
from __future__ import annotations

from typing import Mapping

from sqlalchemy.sql.elements import ColumnElement

from danbao.expr.scope import RELATED_SEP
from danbao.meta.model import EntityMeta


def entity_columns(em: EntityMeta, table, *, related: Mapping[str, tuple[EntityMeta, object]] | None = None
                   ) -> dict[str, ColumnElement]:
    """Name -> column for the entity's column fields (references by their
    name, as the ``<name>_id`` column). ``related`` maps a reference field to
    ``(target EntityMeta, table or alias joined for it)`` and adds ``ref__field``."""
    cols = {f.name: table.c[f.column_name] for f in em.column_fields}
    for ref, (target, joined) in (related or {}).items():
        for tf in target.column_fields:
            cols[f"{ref}{RELATED_SEP}{tf.name}"] = joined.c[tf.column_name]
    return cols


def row_values(em: EntityMeta, row: Mapping[str, object], *, prefix: str = "") -> dict[str, object]:
    """Plain values for the entity's column fields from a row keyed by column
    names (``row._mapping`` of a select). With ``prefix="customer"`` the names
    become ``customer__<field>``."""
    head = f"{prefix}{RELATED_SEP}" if prefix else ""
    return {head + f.name: row.get(f.column_name) for f in em.column_fields}

