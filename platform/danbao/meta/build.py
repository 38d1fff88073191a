"""Freeze checked drafts into the immutable Meta dataclasses, filling defaults.

Runs only when the packs have no errors, so it may rely on every name and
value being valid; it decides nothing the cross-checks have not checked.
"""
from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

from danbao.meta import defaults
from danbao.meta.model import (WarningRuleMeta, CheckBy, CodeItem, CodeListMeta, EntityMeta, FieldMeta, IndexMeta, Label,
                               ListMeta, MenuMeta, Option, OrganisationMeta, RecordRulesMeta, RoleMeta,
                               SectionMeta)
from danbao.meta.overlay import EntityDraft, Layered, Merged

ACTIONS = ("read", "write", "delete")


def label(value) -> Label | None:
    return None if value is None else Label(zh=value["zh"], en=value["en"])


def build_field(f: Layered, codelists: dict[str, CodeListMeta]) -> FieldMeta:
    ftype = f.get("type")
    precision, scale = defaults.precision_scale(ftype, f.get("precision"), f.get("scale"))
    default = f.get("default")
    if default is not None:
        codelist = codelists.get(f.get("codelist"))
        codes = {item.code for item in codelist.items} if codelist else None
        default = defaults.typed_default(ftype, default, f, codes)
    return FieldMeta(
        name=f.get("name"),
        type=ftype,
        label=label(f.get("label")),
        help=label(f.get("help")),
        required=bool(f.get("required", False)),
        unique=bool(f.get("unique", False)),
        index=bool(f.get("index", False)),
        min=decimal_or_none(f.get("min")),
        max=decimal_or_none(f.get("max")),
        min_length=f.get("min_length"),
        max_length=f.get("max_length"),
        pattern=f.get("pattern"),
        check=f.get("check"),
        check_by=_check_by(f.get("check_by")),
        normalize=tuple(f.get("normalize") or ()),
        precision=precision,
        scale=scale,
        options=tuple(Option(value=o["value"], label=label(o["label"])) for o in f.get("options") or ()),
        codelist=f.get("codelist"),
        target=f.get("target"),
        accept=tuple(f.get("accept") or ()),
        max_size_mb=f.get("max_size_mb"),
        max_files=f.get("max_files"),
        default=default,
        readonly=bool(f.get("readonly", False)) or f.get("computed") is not None,
        computed=f.get("computed"),
        visible_if=f.get("visible_if"),
        required_if=f.get("required_if"),
        readonly_if=f.get("readonly_if"),
        numbering=f.get("numbering"),
        roles=_names(f.get("role")),
        sensitive=f.get("sensitive"),
        renamed_from=f.get("renamed_from"),
        source=f.at,
    )


def _check_by(spec) -> CheckBy | None:
    if not spec:
        return None
    return CheckBy(field=spec["field"], checks=tuple((str(k), v) for k, v in spec["checks"].items()))


def decimal_or_none(value) -> Decimal | None:
    """Packs give Decimals and ints; a float (from other YAML readers) goes through
    its shortest text, so 0.1 stays 0.1 rather than 0.1000000000000000055…."""
    if value is None:
        return None
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def build_entity(e: EntityDraft, codelists, permissions: dict[str, tuple[str, ...]]) -> EntityMeta:
    fields = tuple(build_field(f, codelists) for f in e.fields.values())
    title = e.head.get("title") or defaults.default_title(e.fields)
    entity_label = label(e.head.get("label"))
    if e.sections_declared:
        sections = tuple(
            SectionMeta(key=key, label=label(s.head.get("label")), fields=tuple(n for n, _ in s.fields),
                        visible_if=s.head.get("visible_if"))
            for key, s in e.sections.items())
    else:
        sections = (SectionMeta(key=defaults.DEFAULT_SECTION, label=entity_label,
                                fields=tuple(f.name for f in fields)),)
    lst = e.list
    list_meta = ListMeta(
        columns=tuple(lst.get("columns") or defaults.default_columns(e.fields, title)),
        filters=tuple(lst.get("filters") or ()),
        search=tuple(lst.get("search") or ()),
        order_by=lst.get("order_by", defaults.ORDER_BY),
        page_size=lst.get("page_size", defaults.PAGE_SIZE),
    )
    indexes = tuple(IndexMeta(fields=tuple(node["fields"]), unique=bool(node.get("unique", False)))
                    for node, _ in e.indexes)
    return EntityMeta(
        name=e.name,
        label=entity_label,
        title=title,
        fields=fields,
        sections=sections,
        list=list_meta,
        permissions=MappingProxyType(dict(permissions)),
        indexes=indexes,
        parent=e.head.get("parent"),
        menu=e.head.get("menu"),
        icon=e.head.get("icon", "fa-table"),
        renamed_from=e.head.get("renamed_from"),
        source=e.head.at,
        overlays=tuple(e.overlays),
        record_rules=build_record_rules(e),
        unmask=tuple(e.head.get("unmask")) if e.head.get("unmask") is not None else None,
        organisation=OrganisationMeta(**dict(e.head.get("organisation"))) if e.head.get("organisation") else None,
    )


def _names(value) -> tuple[str, ...]:
    """A name or a list of names (``role: project_manager`` or ``role: [a, b]``)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def build_record_rules(e: EntityDraft) -> RecordRulesMeta | None:
    node = e.head.get("record_rules")
    if node is None:
        return None
    owners = tuple(node.get("owners") or ())
    roles = {}
    for item in node.get("roles") or ():
        grant = {a: item[a] for a in ACTIONS if a in item}
        roles[item["role"]] = MappingProxyType(grant)
    return RecordRulesMeta(
        owners=owners,
        department=tuple(node["department"]) if node.get("department") is not None else owners,
        via=tuple((v["entity"], v["field"]) for v in node.get("via") or ()),
        roles=MappingProxyType(roles), source=e.head.src("record_rules"))


def resolve_permissions(entities: dict[str, EntityDraft]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Declared permissions per entity; a child takes each action it leaves
    undeclared from its parent (recursively), a top-level entity grants it to
    no role (only Admin)."""
    resolved: dict[str, dict[str, tuple[str, ...]]] = {}

    def of(name: str) -> dict[str, tuple[str, ...]]:
        if name not in resolved:
            e = entities[name]
            inherited = of(e.head.get("parent")) if e.head.get("parent") else {}
            declared = e.permissions.values if e.permissions is not None else {}
            resolved[name] = {a: tuple(declared[a]) if a in declared else inherited.get(a, ())
                              for a in ACTIONS}
        return resolved[name]

    for name in entities:
        of(name)
    return resolved


def build_codelist(name: str, layer: Layered) -> CodeListMeta:
    items = tuple(CodeItem(code=i["code"], label=label(i["label"]), parent=i.get("parent"))
                  for i in layer.get("items") or ())
    return CodeListMeta(name=name, label=label(layer.get("label")), items=items)


def build(merged: Merged):
    """Return ``(entities, codelists, roles, menus)`` as name -> frozen meta."""
    codelists = {n: build_codelist(n, layer) for n, layer in merged.codelists.items()}
    roles = {n: RoleMeta(name=n, label=label(layer.get("label"))) for n, layer in merged.roles.items()}
    menus = {n: MenuMeta(key=n, label=label(layer.get("label")), icon=layer.get("icon", "fa-folder"),
                         order=layer.get("order", 100))
             for n, layer in merged.menus.items()}
    permissions = resolve_permissions(merged.entities)
    entities = {n: build_entity(e, codelists, permissions[n]) for n, e in merged.entities.items()}
    return entities, codelists, roles, menus


def build_warnings(merged: Merged) -> dict[str, WarningRuleMeta]:
    return {code: WarningRuleMeta(
        code=code, label=label(w.get("label")), entity=w.get("entity"), when=w.get("when"),
        level=w.get("level"), message=label(w.get("message")),
        notify_roles=tuple((w.get("notify") or {}).get("roles", ()) or ()),
        notify_fields=tuple((w.get("notify") or {}).get("fields", ()) or ()),
        every_minutes=int(w.get("every_minutes", 1440)), active=bool(w.get("active", True)), source=w.at)
        for code, w in merged.warnings.items()}

