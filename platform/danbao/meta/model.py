"""The immutable Meta: what the runtime knows after packs are loaded and checked.

Everything below the loader (models, engines, web) reads these frozen
dataclasses and never YAML. One ``EntityMeta`` per entity, in the style of
Frappe's ``model/meta.py``: a plain description with a few lookups, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Mapping

#: Field types whose values live in a column of the entity's own table.
COLUMN_TYPES = frozenset({
    "string", "text", "integer", "decimal", "money", "rate", "boolean",
    "date", "datetime", "enum", "code", "reference", "user",
})
#: Field types stored as ``<name>_id`` (an id of a record, or of a user).
ID_TYPES = frozenset({"reference", "user"})
#: Field types that live elsewhere (child table rows, attachment store).
RELATION_TYPES = frozenset({"children", "attachments"})
FIELD_TYPES = COLUMN_TYPES | RELATION_TYPES

#: Fixed scales for the money-like types (CNY has 2 places, rates 6).
MONEY_SCALE = 2
RATE_SCALE = 6
MONEY_PRECISION = 18
RATE_PRECISION = 12

#: Columns every entity table gets; metadata may not declare them.
SYSTEM_COLUMNS = ("id", "created_at", "created_by_id", "updated_at",
                  "updated_by_id", "version", "parent_id")


@dataclass(frozen=True)
class Label:
    """A text in Chinese and English. ``get`` falls back to Chinese."""
    zh: str
    en: str

    def get(self, lang: str | None) -> str:
        return self.en if (lang or "zh").startswith("en") else self.zh

    def __str__(self) -> str:  # pragma: no cover - convenience for logs
        return self.zh


@dataclass(frozen=True)
class Source:
    """Where a piece of metadata was declared, for error messages."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Option:
    value: str
    label: Label


@dataclass(frozen=True)
class FieldMeta:
    name: str
    type: str
    label: Label
    help: Label | None = None
    required: bool = False
    unique: bool = False
    index: bool = False
    min: Decimal | None = None
    max: Decimal | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    check: str | None = None            # named check: uscc | resident_id
    precision: int | None = None        # decimal only
    scale: int | None = None            # decimal only
    options: tuple[Option, ...] = ()    # enum
    codelist: str | None = None         # code
    target: str | None = None           # reference / children: entity name
    accept: tuple[str, ...] = ()        # attachments: image, document, audio, video
    max_size_mb: int | None = None      # attachments
    max_files: int | None = None        # attachments
    default: object = None
    readonly: bool = False
    renamed_from: str | None = None
    source: Source | None = None
    computed: str | None = None         # expression: calculated on save, shown read-only
    visible_if: str | None = None       # expression: shown (and accepted) only when true
    required_if: str | None = None      # expression: required when true
    readonly_if: str | None = None      # expression: input ignored when true

    @property
    def is_column(self) -> bool:
        return self.type in COLUMN_TYPES

    @property
    def column_name(self) -> str:
        """References and users are stored as ``<name>_id``; everything else as ``name``."""
        return f"{self.name}_id" if self.type in ID_TYPES else self.name

    @property
    def max_chars(self) -> int:
        """Column width for strings; a default keeps PostgreSQL VARCHARs bounded."""
        if self.type == "string":
            return self.max_length or 255
        if self.type in ("enum", "code"):
            return 64
        raise ValueError(f"{self.name} is not a string-like field")

    def option_label(self, value: str, lang: str | None) -> str:
        for opt in self.options:
            if opt.value == value:
                return opt.label.get(lang)
        return value


@dataclass(frozen=True)
class SectionMeta:
    key: str
    label: Label
    fields: tuple[str, ...]
    visible_if: str | None = None


@dataclass(frozen=True)
class ListMeta:
    columns: tuple[str, ...]
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    order_by: str = "-id"
    page_size: int = 20


@dataclass(frozen=True)
class IndexMeta:
    fields: tuple[str, ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return "_".join(self.fields)


@dataclass(frozen=True)
class EntityMeta:
    name: str
    label: Label
    title: str
    fields: tuple[FieldMeta, ...]
    sections: tuple[SectionMeta, ...]
    list: ListMeta
    permissions: Mapping[str, tuple[str, ...]]   # read/write/delete -> role names
    indexes: tuple[IndexMeta, ...] = ()
    parent: str | None = None                    # set for child entities
    menu: str | None = None                      # menu key; None = not in menu
    icon: str = "fa-table"
    renamed_from: str | None = None
    source: Source | None = None
    overlays: tuple[Source, ...] = ()            # the extend: declarations applied, in order

    @property
    def table(self) -> str:
        return self.name

    @property
    def is_child(self) -> bool:
        return self.parent is not None

    def field(self, name: str) -> FieldMeta:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    @property
    def column_fields(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields if f.is_column)

    @property
    def children(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields if f.type == "children")

    @property
    def attachment_fields(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields if f.type == "attachments")


@dataclass(frozen=True)
class CodeItem:
    code: str
    label: Label
    parent: str | None = None


@dataclass(frozen=True)
class CodeListMeta:
    name: str
    label: Label
    items: tuple[CodeItem, ...]

    def label_of(self, code: str, lang: str | None) -> str:
        for item in self.items:
            if item.code == code:
                return item.label.get(lang)
        return code

    def has(self, code: str) -> bool:
        return any(item.code == code for item in self.items)


@dataclass(frozen=True)
class RoleMeta:
    name: str
    label: Label


@dataclass(frozen=True)
class MenuMeta:
    key: str
    label: Label
    icon: str = "fa-folder"
    order: int = 100


@dataclass(frozen=True)
class WarningRuleMeta:
    """A warning (预警) rule: a yes/no condition over one entity, checked by scans."""
    code: str
    label: Label
    entity: str
    when: str
    level: str                      # red | orange | yellow
    message: Label                  # Jinja templates over the record's fields
    notify_roles: tuple[str, ...] = ()
    notify_fields: tuple[str, ...] = ()   # ``user`` fields of the entity: the record's own people
    every_minutes: int = 1440
    active: bool = True
    source: Source | None = None


@dataclass(frozen=True)
class PackInfo:
    name: str
    version: str
    path: str
    requires: tuple[str, ...] = ()
    label: Label | None = None


@dataclass(frozen=True)
class Meta:
    """Everything the loaded packs declare, frozen.

    ``version`` names the packs and a content hash, and is written into every
    audit row so one can tell which rules a change ran under.
    """
    packs: tuple[PackInfo, ...]
    entities: Mapping[str, EntityMeta]
    codelists: Mapping[str, CodeListMeta]
    roles: Mapping[str, RoleMeta]
    menus: Mapping[str, MenuMeta]
    digest: str
    warnings: Mapping[str, WarningRuleMeta] = field(default_factory=dict)
    #: compiled expressions by ``entity.field.kind`` (see meta/expressions.py)
    expressions: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        for attr in ("entities", "codelists", "roles", "menus", "warnings", "expressions"):
            value = getattr(self, attr)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, attr, MappingProxyType(dict(value)))

    @property
    def version(self) -> str:
        names = "+".join(f"{p.name}@{p.version}" for p in self.packs)
        return f"{names}#{self.digest[:12]}"

    def expression(self, entity: str, where: str, kind: str):
        """The compiled expression declared on a field (or ``section:<key>``), or None."""
        return self.expressions.get(f"{entity}.{where}.{kind}")

    def entity(self, name: str) -> EntityMeta:
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(f"unknown entity {name!r}") from None
