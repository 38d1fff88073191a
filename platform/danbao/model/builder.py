"""SQLAlchemy tables and mapped classes built from a Meta.

One call of ``build_models`` makes a fresh ``MetaData`` and ``registry`` and new
class objects, so two runtimes built from two Metas (the running app and the
one being swapped in) never share or clobber each other's mappings. Tables and
classes are made first and relationships second, so entities may refer to one
another in any order.

Money and rates are ``Numeric`` columns and come back as ``Decimal``. On
PostgreSQL they are exact; SQLite keeps numerics as 8-byte floats, exact to 15
significant digits (money below 10 000 000 000 000.00 round-trips exactly).
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from types import MappingProxyType
from typing import Mapping

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, ForeignKey,
                        Index, Integer, MetaData, Numeric, String, Table, Text)
from sqlalchemy.orm import registry as orm_registry
from sqlalchemy.orm import relationship

from danbao.meta.model import (MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION,
                               RATE_SCALE, EntityMeta, FieldMeta, Meta)
from danbao.model.naming import fk_name, index_name, naming_convention
from danbao.model.system import add_system_tables

#: Defaults for ``decimal`` fields that declare no precision/scale.
DECIMAL_PRECISION = 18
DECIMAL_SCALE = 4


class Models:
    """The tables and classes of one build; read-only once built."""

    def __init__(self, meta: Meta, metadata: MetaData, registry, classes: dict[str, type],
                 tables: dict[str, Table], system: dict[str, Table]):
        self.meta = meta
        self.metadata = metadata
        self.registry = registry
        self.classes: Mapping[str, type] = MappingProxyType(classes)
        self.tables: Mapping[str, Table] = MappingProxyType(tables)
        self.system = system
        self.entity_tables: tuple[str, ...] = tuple(t.name for t in tables.values())

    def cls(self, entity_name: str) -> type:
        try:
            return self.classes[entity_name]
        except KeyError:
            raise KeyError(f"unknown entity {entity_name!r}") from None

    def table(self, entity_name: str) -> Table:
        try:
            return self.tables[entity_name]
        except KeyError:
            raise KeyError(f"unknown entity {entity_name!r}") from None

    def __repr__(self) -> str:
        return f"<Models {self.meta.version} entities={len(self.classes)}>"


class DanbaoRecord:
    """Base of every generated class: shows the entity's title field."""

    __danbao_entity__: EntityMeta

    def _title(self):
        em = type(self).__danbao_entity__
        if em.title and em.has_field(em.title):
            f = em.field(em.title)
            return getattr(self, f.name if f.type == "reference" else f.column_name, None)
        return None

    def __str__(self) -> str:
        title = self._title()
        if title is None:
            return f"{type(self).__danbao_entity__.name} #{getattr(self, 'id', None)}"
        return str(title)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={getattr(self, 'id', None)} {self._title()!r}>"


def column_type(f: FieldMeta):
    """The SQL type of a column field (see the module docstring for numerics)."""
    t = f.type
    if t in ("string", "enum", "code"):
        return String(f.max_chars)
    if t == "text":
        return Text()
    if t == "integer":
        return BigInteger()
    if t == "decimal":
        return Numeric(f.precision or DECIMAL_PRECISION,
                       DECIMAL_SCALE if f.scale is None else f.scale, asdecimal=True)
    if t == "money":
        return Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    if t == "rate":
        return Numeric(RATE_PRECISION, RATE_SCALE, asdecimal=True)
    if t == "boolean":
        return Boolean()
    if t == "date":
        return Date()
    if t == "datetime":
        return DateTime()
    if t in ("reference", "user"):
        return Integer()
    raise ValueError(f"field {f.name!r}: type {t!r} has no column")


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Entity"


def build_table(metadata: MetaData, em: EntityMeta, meta: Meta) -> Table:
    """The entity's table: system columns, one column per column field, indexes."""
    table = em.table
    cols = [Column("id", Integer, primary_key=True)]
    if em.parent:
        parent = meta.entity(em.parent)
        cols.append(Column("parent_id", Integer,
                           ForeignKey(f"{parent.table}.id", ondelete="CASCADE",
                                      name=fk_name(table, "parent_id")),
                           nullable=False))
    for f in em.column_fields:
        if f.type == "reference":
            target = meta.entity(f.target)
            cols.append(Column(f.column_name, Integer,
                               ForeignKey(f"{target.table}.id", ondelete="RESTRICT",
                                          name=fk_name(table, f.column_name)),
                               nullable=True))
        else:
            cols.append(Column(f.column_name, column_type(f), nullable=True))
    cols += [
        Column("created_at", DateTime),
        Column("created_by_id", Integer),
        Column("updated_at", DateTime),
        Column("updated_by_id", Integer),
        Column("version", Integer, nullable=False),
    ]
    names = [c.name for c in cols]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"entity {em.name!r}: column names collide with system columns: {dup}")
    t = Table(table, metadata, *cols)
    for cols_, unique in _index_specs(em):
        Index(index_name(table, cols_, unique=unique), *(t.c[c] for c in cols_), unique=unique)
    return t


def _index_specs(em: EntityMeta) -> list[tuple[tuple[str, ...], bool]]:
    """(columns, unique) for every index; one index per column list, unique winning."""
    specs: dict[tuple[str, ...], bool] = {}

    def add(cols: tuple[str, ...], unique: bool):
        specs[cols] = specs.get(cols, False) or unique

    if em.parent:
        add(("parent_id",), False)
    for f in em.column_fields:
        if f.unique:
            add((f.column_name,), True)
        elif f.index or f.type in ("reference", "user"):
            add((f.column_name,), False)
    for ix in em.indexes:
        add(tuple(_index_column(em, n) for n in ix.fields), ix.unique)
    rules = em.record_rules          # record rules find "records I created" by this column
    if rules is not None and "created_by" in rules.owners + rules.department:
        add(("created_by_id",), False)
    return list(specs.items())


def _index_column(em: EntityMeta, name: str) -> str:
    if em.has_field(name):
        return em.field(name).column_name
    return name  # a system column such as parent_id


def _new_class(em: EntityMeta) -> type:
    """A brand-new class per build, so builds never share class objects."""
    return type(camel(em.name), (DanbaoRecord,), {
        "__danbao_entity__": em,
        "__module__": "danbao.model.generated",
        "__doc__": f"{em.label.zh} / {em.label.en}",
    })


def _properties(em: EntityMeta, meta: Meta, classes: dict, tables: dict) -> dict:
    """Relationship attributes: references, children and the child's ``parent``."""
    table = tables[em.name]
    props: dict[str, object] = {}
    for f in em.column_fields:
        if f.type != "reference":
            continue
        target = tables[f.target]
        props[f.name] = relationship(classes[f.target], foreign_keys=[table.c[f.column_name]],
                                     remote_side=[target.c.id], lazy="select")
    for f in em.children:
        child = meta.entity(f.target)
        if child.parent != em.name:
            raise ValueError(f"{em.name}.{f.name}: child entity {child.name!r} has parent {child.parent!r}")
        ct = tables[child.name]
        props[f.name] = relationship(classes[child.name], foreign_keys=[ct.c.parent_id],
                                     cascade="all, delete-orphan", order_by=ct.c.id,
                                     passive_deletes=True, back_populates="parent")
    if em.parent:
        parent = meta.entity(em.parent)
        back = [f.name for f in parent.children if f.target == em.name]
        if len(back) > 1:
            raise ValueError(f"{parent.name} has several children fields for {em.name!r}: {back}")
        props["parent"] = relationship(classes[parent.name], foreign_keys=[table.c.parent_id],
                                       back_populates=back[0] if back else None)
    clash = set(props) & set(table.c.keys())
    if clash:
        raise ValueError(f"entity {em.name!r}: relationship names collide with columns: {sorted(clash)}")
    return props


@contextmanager
def _gc_paused():
    """Building allocates ~100 objects per column; the cyclic collector, run
    again and again over that growing heap, would more than double the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_models(meta: Meta) -> Models:
    """Tables and mapped classes for every entity of ``meta`` (fresh each call)."""
    with _gc_paused():
        return _build(meta)


def _build(meta: Meta) -> Models:
    metadata = MetaData(naming_convention=naming_convention())
    system = add_system_tables(metadata, {code: k.effects for code, k in meta.ledger_kinds.items()})
    reg = orm_registry(metadata=metadata)
    tables = {name: build_table(metadata, em, meta) for name, em in meta.entities.items()}
    classes = {name: _new_class(em) for name, em in meta.entities.items()}
    for name, em in meta.entities.items():
        reg.map_imperatively(classes[name], tables[name],
                             properties=_properties(em, meta, classes, tables),
                             version_id_col=tables[name].c.version)
    reg.configure()
    return Models(meta, metadata, reg, classes, tables, system)
