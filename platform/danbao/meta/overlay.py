"""Lay the packs' documents over each other, in load order, into drafts.

A draft is metadata still in YAML form, merged across packs, that remembers
for every key the file and line it came from: an error found later about a
merged field points at the pack that wrote the offending key, not at the
entity's first declaration. Nothing here judges names or references; that is
``crosschecks``. Overlay errors are about the layering itself: an entity
declared twice, an ``extend:`` of an unknown entity, a name repeated inside
one declaration, a new item missing what only a new item needs.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from danbao.meta.defaults import DEFAULT_SECTION
from danbao.meta.errors import PackError
from danbao.meta.model import Source
from danbao.meta.yamlio import LineDict, LineList

ENTITY, EXTEND, LISTS = "entity", "extend", "lists"


@dataclass
class Doc:
    """One schema-checked content file."""
    pack: int            # position of its pack in the load order
    file: str            # as shown in errors
    data: LineDict

    @property
    def kind(self) -> str:
        if ENTITY in self.data:
            return ENTITY
        if EXTEND in self.data:
            return EXTEND
        return LISTS


class Layered:
    """The keys of one declaration merged over its overlays, each with the
    file and line that last set it."""
    __slots__ = ("values", "where", "at", "_when")

    def __init__(self, at: Source):
        self.values: dict = {}
        self.where: dict[str, Source] = {}
        self.at = at
        self._when: dict[str, int] = {}

    def merge(self, node: LineDict, file: str, when: int, skip=()) -> None:
        """Lay ``node``'s keys over this one; ``when`` orders the layers."""
        for key, value in node.items():
            if key not in skip:
                self.values[key] = value
                self.where[key] = Source(file, node.key_line(key))
                self._when[key] = when

    def newest(self, *keys) -> Source:
        """Where the most recently laid of ``keys`` was set: a problem between
        two keys is reported at the overlay that brought them together."""
        present = [k for k in keys if k in self.where]
        if not present:
            return self.at
        return self.where[max(present, key=lambda k: self._when[k])]

    def get(self, key, default=None):
        return self.values.get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.values

    def src(self, key) -> Source:
        """Where ``key`` was set (the declaration itself when it was not)."""
        return self.where.get(key, self.at)

    def items(self, key) -> list[tuple[object, Source]]:
        """The items of a list-valued key, each with its own line."""
        value = self.values.get(key)
        if not isinstance(value, LineList):
            return []
        file = self.where[key].file
        return [(item, Source(file, value.item_line(i))) for i, item in enumerate(value)]


@dataclass
class SectionDraft:
    key: str
    head: Layered                                   # key, label
    fields: list[tuple[str, Source]] = field(default_factory=list)


@dataclass
class EntityDraft:
    name: str
    pack: int
    head: Layered                                   # entity, label, title, parent, menu, icon, renamed_from
    fields: dict[str, Layered] = field(default_factory=dict)
    sections: dict[str, SectionDraft] = field(default_factory=dict)
    sections_declared: bool = False
    list: Layered | None = None
    permissions: Layered | None = None
    indexes: list[tuple[LineDict, str]] = field(default_factory=builtins.list)
    overlays: list[Source] = field(default_factory=builtins.list)


@dataclass
class Merged:
    """Everything the packs declare, merged, still in draft form."""
    entities: dict[str, EntityDraft] = field(default_factory=dict)
    roles: dict[str, Layered] = field(default_factory=dict)
    menus: dict[str, Layered] = field(default_factory=dict)
    codelists: dict[str, Layered] = field(default_factory=dict)
    warnings: dict[str, Layered] = field(default_factory=dict)
    scorecards: dict[str, Layered] = field(default_factory=dict)
    workflows: dict[str, Layered] = field(default_factory=dict)
    products: dict[str, Layered] = field(default_factory=dict)
    fee_schemes: dict[str, Layered] = field(default_factory=dict)
    counter_guarantee_kinds: dict[str, Layered] = field(default_factory=dict)
    ledger_kinds: dict[str, Layered] = field(default_factory=dict)
    settings: dict[str, Layered] = field(default_factory=dict)
    controls: dict[str, Layered] = field(default_factory=dict)


#: what a warning rule must have when first declared (a later pack may change any of it)
WARNING_NEEDS = ("label", "entity", "when", "level", "message")
#: what a scorecard must have when first declared
SCORECARD_NEEDS = ("label", "entity", "grades", "groups", "missing")
#: what a workflow must have when first declared
WORKFLOW_NEEDS = ("label", "entity", "start", "reject_to", "steps")
#: what the guarantee business's items must have when first declared (see meta/business.py)
PRODUCT_NEEDS = ("label", "entity", "category", "workflow", "fee_scheme")
FEE_SCHEME_NEEDS = ("label", "basis", "frequency")
COUNTER_GUARANTEE_KIND_NEEDS = ("label", "default_discount")
LEDGER_KIND_NEEDS = ("label", "effects")
SETTING_NEEDS = ("value",)
#: list kind -> (key, what a new item needs, what it is called in messages)
LIST_KINDS = {
    "roles": ("name", (), "role"),
    "menus": ("key", (), "menu"),
    "codelists": ("name", ("items",), "code list"),
    "warnings": ("code", WARNING_NEEDS, "warning rule"),
    "scorecards": ("code", SCORECARD_NEEDS, "scorecard"),
    "workflows": ("code", WORKFLOW_NEEDS, "workflow"),
    "products": ("code", PRODUCT_NEEDS, "product"),
    "fee_schemes": ("code", FEE_SCHEME_NEEDS, "fee scheme"),
    "counter_guarantee_kinds": ("code", COUNTER_GUARANTEE_KIND_NEEDS, "counter-guarantee kind"),
    "ledger_kinds": ("code", LEDGER_KIND_NEEDS, "ledger kind"),
    "settings": ("name", SETTING_NEEDS, "setting"),
    "controls": ("entity", ("field", "stages"), "stage control"),
}
_ENTITY_PARTS = ("fields", "sections", "list", "permissions", "indexes")


class Overlay:
    """Applies documents one by one; collects errors instead of stopping."""

    def __init__(self):
        self.merged = Merged()
        self.errors: list[PackError] = []
        # (kind, name) -> (pack position, where first declared), for lists
        self._declared: dict[tuple[str, str], tuple[int, Source]] = {}
        self.when = 0   # number of the document being applied: orders the layers

    def error(self, src: Source, code: str, message: str) -> None:
        self.errors.append(PackError(src.file, src.line, code, message))

    def apply(self, doc: Doc) -> None:
        self.when += 1
        {ENTITY: self._entity, EXTEND: self._extend, LISTS: self._lists}[doc.kind](doc)

    # -- entity: a new declaration -------------------------------------------
    def _entity(self, doc: Doc) -> None:
        data, file = doc.data, doc.file
        name = data.get(ENTITY)
        if not isinstance(name, str):
            return
        at = Source(file, data.key_line(ENTITY))
        earlier = self.merged.entities.get(name)
        if earlier is not None:
            first = earlier.head.at
            hint = " (use extend: to change it)" if earlier.pack < doc.pack else ""
            self.error(at, "DB213", f"entity '{name}' is already declared at {first}{hint}")
            return
        head = Layered(at)
        head.merge(data, file, self.when, skip=_ENTITY_PARTS)
        draft = EntityDraft(name=name, pack=doc.pack, head=head)
        draft.list = self._layered(data, "list", file, at)
        draft.permissions = self._layered(data, "permissions", file, at) if "permissions" in data else None
        seen: set[str] = set()
        for item, src in list_items(data, "fields", file):
            fname = item.get("name")
            if not isinstance(fname, str):
                continue
            if fname in seen:
                self.error(src, "DB212", f"field '{fname}' is declared twice in entity '{name}'")
                continue
            seen.add(fname)
            layer = Layered(src)
            layer.merge(item, file, self.when)
            draft.fields[fname] = layer
        if "sections" in data:
            draft.sections_declared = True
            for item, src in list_items(data, "sections", file):
                self._section(draft, item, src, file, new_only=True)
        draft.indexes.extend((item, file) for item, _ in list_items(data, "indexes", file))
        self.merged.entities[name] = draft

    # -- extend: an overlay on an entity from an earlier pack ----------------
    def _extend(self, doc: Doc) -> None:
        data, file = doc.data, doc.file
        name = data.get(EXTEND)
        if not isinstance(name, str):
            return
        at = Source(file, data.key_line(EXTEND))
        draft = self.merged.entities.get(name)
        if draft is None or draft.pack >= doc.pack:
            hint = (" (it is declared in this same pack: put the change in its entity file)"
                    if draft is not None else "")
            self.error(at, "DB214", f"extend: '{name}' names no entity of an earlier pack{hint}")
            return
        draft.overlays.append(at)
        draft.head.merge(data, file, self.when, skip=_ENTITY_PARTS + (EXTEND,))
        for part in ("list", "permissions"):
            if part in data:
                layer = getattr(draft, part) or Layered(Source(file, data.key_line(part)))
                layer.merge(data[part], file, self.when)
                setattr(draft, part, layer)
        if "sections" in data and not draft.sections_declared:
            self._default_section(draft)   # before new fields arrive: they are not in it
        seen: set[str] = set()
        for item, src in list_items(data, "fields", file):
            fname = item.get("name")
            if not isinstance(fname, str):
                continue
            if fname in seen:
                self.error(src, "DB212", f"field '{fname}' appears twice in this extend: of '{name}'")
                continue
            seen.add(fname)
            existing = draft.fields.get(fname)
            if existing is not None:
                existing.merge(item, file, self.when, skip=("name",))
                continue
            if "type" not in item:
                self.error(src, "DB111", f"new field '{fname}' needs a type")
            if "label" not in item:
                self.error(src, "DB250", f"new field '{fname}' needs a label with zh and en")
            layer = Layered(src)
            layer.merge(item, file, self.when)
            draft.fields[fname] = layer
        if "sections" in data:
            seen_keys: set[str] = set()
            for item, src in list_items(data, "sections", file):
                key = item.get("key")
                if isinstance(key, str) and key in seen_keys:
                    self.error(src, "DB212", f"section '{key}' appears twice in this extend: of '{name}'")
                    continue
                seen_keys.add(key)
                self._section(draft, item, src, file, new_only=False)
        draft.indexes.extend((item, file) for item, _ in list_items(data, "indexes", file))

    def _default_section(self, draft: EntityDraft) -> None:
        """Before a later pack adds sections to an entity that had none, the
        implicit one-section layout becomes explicit, so its fields stay placed."""
        head = Layered(draft.head.at)
        head.values["key"] = DEFAULT_SECTION
        if "label" in draft.head:
            head.values["label"] = draft.head.get("label")
        section = SectionDraft(DEFAULT_SECTION, head, [(n, f.at) for n, f in draft.fields.items()])
        draft.sections[DEFAULT_SECTION] = section
        draft.sections_declared = True

    def _section(self, draft: EntityDraft, item: LineDict, src: Source, file: str, new_only: bool):
        key = item.get("key")
        if not isinstance(key, str):
            return
        section = draft.sections.get(key)
        if section is not None and new_only:
            self.error(src, "DB212", f"section '{key}' is declared twice in entity '{draft.name}'")
            return
        if section is None:
            if not new_only and "label" not in item:   # in an entity file the schema requires both
                self.error(src, "DB250", f"new section '{key}' needs a label with zh and en")
            if not new_only and "fields" not in item:
                self.error(src, "DB111", f"new section '{key}' needs fields")
            section = SectionDraft(key, Layered(src))
            draft.sections[key] = section
        section.head.merge(item, file, self.when, skip=("fields",))
        fields = item.get("fields")
        if isinstance(fields, LineList):
            section.fields.extend((f, Source(file, fields.item_line(i)))
                                  for i, f in enumerate(fields) if isinstance(f, str))

    def _layered(self, data: LineDict, key: str, file: str, at: Source) -> Layered:
        node = data.get(key)
        layer = Layered(Source(file, data.key_line(key)) if key in data else at)
        if isinstance(node, LineDict):
            layer.merge(node, file, self.when)
        return layer

    # -- roles, menus, codelists, rules, scorecards, workflows, the business ---
    def _lists(self, doc: Doc) -> None:
        for kind, (key_name, needs, what) in LIST_KINDS.items():
            table = getattr(self.merged, kind)
            for item, src in list_items(doc.data, kind, doc.file):
                name = item.get(key_name)
                if not isinstance(name, str):
                    continue
                earlier = self._declared.get((kind, name))
                if earlier is not None and earlier[0] == doc.pack:
                    self.error(src, "DB212", f"{what} '{name}' is declared twice in this pack "
                                             f"(first at {earlier[1]})")
                    continue
                self._declared[(kind, name)] = (doc.pack, src)
                layer = table.get(name)
                if layer is None:
                    missing = [k for k in needs if k not in item]
                    if missing:
                        self.error(src, "DB111", f"new {what} '{name}' needs {', '.join(missing)}")
                    layer = table[name] = Layered(src)
                layer.merge(item, doc.file, self.when)


def list_items(data, key: str, file: str) -> list[tuple[LineDict, Source]]:
    """The mapping items of a list-valued key, with their lines."""
    value = data.get(key)
    if not isinstance(value, LineList):
        return []
    return [(item, Source(file, value.item_line(i))) for i, item in enumerate(value)
            if isinstance(item, LineDict)]


def key_source(node, key: str, fallback: Source) -> Source:
    """Where ``key`` of a nested mapping was written (in ``fallback``'s file), else ``fallback``."""
    return Source(fallback.file, node.key_line(key)) if isinstance(node, LineDict) and key in node else fallback


def overlay(docs) -> tuple[Merged, list[PackError]]:
    """Apply ``docs`` (already in load order) and return the merged drafts."""
    state = Overlay()
    for doc in docs:
        state.apply(doc)
    return state.merged, state.errors
