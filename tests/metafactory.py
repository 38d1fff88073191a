"""Build Meta objects in tests without YAML.

Fills in what the loader would (labels, a section, a list, a digest) so a test
names only what it is about::

    meta(entity("bank", field("name", "string", max_length=100, unique=True)))
"""
from __future__ import annotations

import hashlib
from decimal import Decimal

from danbao.meta.model import (EntityMeta, FieldMeta, IndexMeta, Label, ListMeta,
                               Meta, Option, PackInfo, SectionMeta)


def label(text: str) -> Label:
    return Label(text, text)


def field(name: str, type: str, **kw) -> FieldMeta:
    """A FieldMeta; ``options`` may be plain strings, numbers become Decimal."""
    kw.setdefault("label", label(name))
    if "options" in kw:
        kw["options"] = tuple(o if isinstance(o, Option) else Option(o, label(o)) for o in kw["options"])
    for key in ("min", "max"):
        if isinstance(kw.get(key), (int, str)):
            kw[key] = Decimal(kw[key])
    if type in ("reference", "children") and "target" not in kw:
        raise TypeError(f"{type} field {name!r} needs target=")
    return FieldMeta(name=name, type=type, **kw)


def index(*fields: str, unique: bool = False) -> IndexMeta:
    return IndexMeta(tuple(fields), unique)


def entity(name: str, *fields: FieldMeta, parent: str | None = None, title: str | None = None,
           indexes=(), renamed_from: str | None = None, **kw) -> EntityMeta:
    """An EntityMeta; the title defaults to the first field."""
    names = tuple(f.name for f in fields)
    return EntityMeta(
        name=name,
        label=kw.pop("label", label(name)),
        title=title or (names[0] if names else "id"),
        fields=tuple(fields),
        sections=(SectionMeta("main", label(name), names),),
        list=ListMeta(columns=tuple(f.name for f in fields if f.is_column)[:5]),
        permissions={"read": (), "write": (), "delete": ()},
        indexes=tuple(indexes),
        parent=parent,
        renamed_from=renamed_from,
        **kw,
    )


def meta(*entities: EntityMeta, version: str = "1") -> Meta:
    """A Meta over ``entities``; the digest changes whenever they do."""
    digest = hashlib.sha256(repr(entities).encode("utf-8")).hexdigest()
    return Meta(
        packs=(PackInfo("test", version, "tests"),),
        entities={e.name: e for e in entities},
        codelists={}, roles={}, menus={}, digest=digest,
    )
