"""Scope: the names an expression may use, with their types.

``Scope.for_entity(meta, "guarantee_project")`` offers every column field of
the entity by its name (reference fields by their name, as integer ids); with
``related=("customer",)`` it also offers the column fields of the entity a
reference field points at, as ``customer__grade`` (one level only).
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping

from danbao.expr.kinds import VALUE_TYPES, field_kind, field_scale
from danbao.meta.model import FieldMeta, Meta

#: Separator between a reference field and a field of the entity it points at.
RELATED_SEP = "__"


@dataclass(frozen=True)
class NameInfo:
    """One name: its checker ``type``, the metadata ``field_type`` it came from
    (None for names added by hand), the decimal places of its numbers
    (``scale``; None = unknown) and, for enum/code fields, the allowed values."""
    type: str
    field_type: str | None = None
    scale: int | None = None
    options: frozenset[str] | None = None

    def __post_init__(self):
        if self.type not in VALUE_TYPES:
            raise ValueError(f"unknown expression type {self.type!r}; use one of {sorted(VALUE_TYPES)}")


class Scope:
    """An immutable mapping of names to :class:`NameInfo`."""

    __slots__ = ("_names",)

    def __init__(self, names: Mapping[str, NameInfo | str] | None = None):
        table: dict[str, NameInfo] = {}
        for name, info in (names or {}).items():
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
                    or name.startswith("_"):
                raise ValueError(f"{name!r} cannot be an expression name")
            if isinstance(info, str):
                info = NameInfo(info)
            if not isinstance(info, NameInfo):
                raise TypeError(f"scope entry {name!r} must be a type name or NameInfo")
            table[name] = info
        self._names = MappingProxyType(table)

    # -- construction -------------------------------------------------------------
    @classmethod
    def for_entity(cls, meta: Meta, entity_name: str, *,
                   related: Iterable[str] | bool = ()) -> "Scope":
        """Names for expressions about one entity (see the module docstring).

        ``related`` lists reference fields whose targets' fields are offered as
        ``<ref>__<field>``; ``True`` means every reference field.
        """
        em = meta.entity(entity_name)
        names = {f.name: _info(meta, f) for f in em.column_fields}
        refs = [f for f in em.column_fields if f.type == "reference"]
        if related is True:
            wanted = [f.name for f in refs]
        elif related is False:
            wanted = []
        else:
            wanted = list(related)
        by_name = {f.name: f for f in refs}
        for ref_name in wanted:
            if ref_name not in by_name:
                raise ValueError(f"{em.name} has no reference field {ref_name!r} "
                                 f"(reference fields: {', '.join(sorted(by_name)) or 'none'})")
            target = meta.entity(by_name[ref_name].target)
            for tf in target.column_fields:
                names[f"{ref_name}{RELATED_SEP}{tf.name}"] = _info(meta, tf)
        return cls(names)

    def extend(self, names: Mapping[str, NameInfo | str]) -> "Scope":
        """A new scope with more names (a name already here is an error)."""
        clash = sorted(set(names) & set(self._names))
        if clash:
            raise ValueError(f"names already in scope: {', '.join(clash)}")
        return Scope({**self._names, **names})

    # -- lookups ------------------------------------------------------------------
    @property
    def names(self) -> Mapping[str, NameInfo]:
        return self._names

    def __contains__(self, name) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> NameInfo:
        return self._names[name]

    def get(self, name: str) -> NameInfo | None:
        return self._names.get(name)

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other) -> bool:
        return isinstance(other, Scope) and dict(self._names) == dict(other._names)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, v.type) for k, v in self._names.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v.type}" for k, v in self._names.items())
        return f"Scope({{{inner}}})"


def prefixed_names(meta: Meta, entity_name: str, prefix: str) -> dict[str, NameInfo]:
    """The column fields of an entity as ``<prefix>__<field>`` names (e.g. a
    customer's latest financial statement as ``fs__total_assets``)."""
    return {f"{prefix}{RELATED_SEP}{f.name}": _info(meta, f) for f in meta.entity(entity_name).column_fields}


def _info(meta: Meta, f: FieldMeta) -> NameInfo:
    options = None
    if f.type == "enum" and f.options:
        options = frozenset(o.value for o in f.options)
    elif f.type == "code" and f.codelist and f.codelist in meta.codelists:
        options = frozenset(item.code for item in meta.codelists[f.codelist].items)
    return NameInfo(field_kind(f), f.type, field_scale(f), options)
