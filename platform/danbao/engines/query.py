"""Listing records: filters, search, sorting and paging declared in metadata.

Shared by the list screen and the REST list so both understand the same
filter syntax: ``field=value`` for choices, ``field__from`` / ``field__to``
for ranges, ``field__contains`` for text, and ``q`` for the declared search.
Unknown or malformed filters are reported, not ignored and not crashed on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import sqlalchemy as sa

from danbao.engines.coerce import CONTROL_CHARS, FieldError, coerce_value, is_blank
from danbao.meta.model import EntityMeta, Label

RANGE_TYPES = {"integer", "decimal", "money", "rate", "date", "datetime"}
CHOICE_TYPES = {"enum", "code", "boolean", "reference", "user"}
TEXT_TYPES = {"string", "text"}
MAX_PAGE_SIZE = 100
MAX_SEARCH = 100


@dataclass
class ListQuery:
    """A parsed list request."""
    filters: dict[str, Any] = field(default_factory=dict)   # "name", "name__from", ...
    q: str = ""
    sort: str | None = None         # field name, "-" prefix for descending
    page: int = 1
    page_size: int = 20
    errors: dict[str, Label] = field(default_factory=dict)


@dataclass
class Page:
    rows: list
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def filter_kind(field_type: str) -> str:
    if field_type in RANGE_TYPES:
        return "range"
    if field_type in CHOICE_TYPES:
        return "choice"
    return "text"


def parse_list_args(em: EntityMeta, args: Mapping[str, str], meta, *, allowed: tuple[str, ...] | None = None) -> ListQuery:
    """Read filters from request args; only declared filter fields (or ``allowed``) count."""
    allowed = em.list.filters if allowed is None else allowed
    lq = ListQuery(page_size=em.list.page_size)
    for name in allowed:
        f = em.field(name)
        kind = filter_kind(f.type)
        keys = {"range": ("__from", "__to"), "choice": ("",), "text": ("__contains",)}[kind]
        for suffix in keys:
            raw = args.get(name + suffix)
            if is_blank(raw):
                continue
            if kind == "text":
                lq.filters[name + suffix] = _clean(raw)
                continue
            try:
                codelist = meta.codelists.get(f.codelist) if f.codelist else None
                lq.filters[name + suffix] = coerce_value(_unbounded(f), raw, codelist=codelist)
            except FieldError as exc:
                lq.errors[name + suffix] = exc.message
    lq.q = _clean(args.get("q") or "")
    sort = args.get("sort")
    if sort:
        name = sort.lstrip("-")
        if em.has_field(name) and em.field(name).is_column:
            lq.sort = sort
        elif name not in ("id", "created_at", "updated_at"):
            lq.errors["sort"] = Label("不能按此字段排序", "cannot sort by this field")
        else:
            lq.sort = sort
    lq.page = _positive_int(args.get("page"), 1, lq, "page", 10**6)
    lq.page_size = _positive_int(args.get("page_size"), em.list.page_size, lq, "page_size", MAX_PAGE_SIZE)
    return lq


def _clean(text) -> str:
    """Search text without control characters (PostgreSQL refuses NUL), bounded."""
    return CONTROL_CHARS.sub("", str(text))[:MAX_SEARCH].strip()


def _unbounded(f):
    """Filters take any value of the type: min/max and checks apply to saved data, not searches."""
    from dataclasses import replace
    return replace(f, min=None, max=None, check=None, pattern=None, min_length=None)


def _positive_int(raw, default, lq, key, limit) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or value > limit:
        lq.errors[key] = Label(f"应为 1 到 {limit} 之间的整数", f"must be a whole number from 1 to {limit}")
        return default
    return value


def run_list(session, models, em: EntityMeta, lq: ListQuery, *, parent_id: int | None = None,
             access=None) -> Page:
    """One page of records and their count. ``access`` (record_rules.RecordAccess):
    only the records that user may read, and the fields masked for them are
    matched by their exact value only (a partial search would read them out)."""
    cls = models.cls(em.name)
    query = sa.select(cls)
    conditions = []
    masked = access.masker.masked_fields(em) if access is not None else frozenset()
    if access is not None:
        scope = access.condition(em.name, "read", cls.__table__)
        if scope is not None:
            conditions.append(scope)
    if parent_id is not None:
        conditions.append(cls.parent_id == parent_id)
    for key, value in lq.filters.items():
        name, _, op = key.partition("__")
        col = getattr(cls, em.field(name).column_name)
        if op == "from":
            conditions.append(col >= value)
        elif op == "to":
            conditions.append(col <= value)
        elif op == "contains" and name in masked:
            conditions.append(col == value)
        elif op == "contains":
            conditions.append(col.ilike(f"%{_escape_like(value)}%", escape="\\"))
        else:
            conditions.append(col == value)
    if lq.q and em.list.search:
        pattern = f"%{_escape_like(lq.q)}%"
        conditions.append(sa.or_(*(getattr(cls, n) == lq.q if n in masked else getattr(cls, n).ilike(pattern, escape="\\")
                                   for n in em.list.search)))
    if lq.sort and lq.sort.lstrip("-") in masked:
        lq.sort = None          # the order of masked values would tell them
    if conditions:
        query = query.where(*conditions)
    total = session.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    order = _order(cls, em, lq.sort or em.list.order_by)
    if access is not None and len(conditions) > (parent_id is not None):
        # a scoped page: sort and cut the matching ids first (an index answers them), then read
        # those rows; sorting every row of a manager's thousands before the cut is what costs
        ids = (sa.select(cls.id).where(*conditions).order_by(*order)
               .offset((lq.page - 1) * lq.page_size).limit(lq.page_size))
        query = sa.select(cls).where(cls.id.in_(ids.scalar_subquery())).order_by(*order)
    else:
        query = query.order_by(*order).offset((lq.page - 1) * lq.page_size).limit(lq.page_size)
    rows = list(session.execute(query).scalars())
    return Page(rows=rows, total=total, page=lq.page, page_size=lq.page_size)


def _order(cls, em: EntityMeta, sort: str):
    name = sort.lstrip("-")
    column_name = em.field(name).column_name if em.has_field(name) else name
    col = getattr(cls, column_name)
    primary = col.desc() if sort.startswith("-") else col.asc()
    return (primary, cls.id.desc()) if name != "id" else (primary,)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def lookup(session, models, em: EntityMeta, q: str, limit: int = 20, *, access=None) -> list[tuple[int, str]]:
    """(id, title) pairs for a reference picker, searching the title field; with
    ``access``, only records that user may read."""
    cls = models.cls(em.name)
    title = getattr(cls, em.field(em.title).column_name)
    query = sa.select(cls.id, title)
    if access is not None:
        query = access.filter(query, em.name, "read", cls.__table__)
    if q:
        query = query.where(title.ilike(f"%{_escape_like(q[:MAX_SEARCH])}%", escape="\\"))
    rows = session.execute(query.order_by(title).limit(limit)).all()
    return [(r[0], str(r[1])) for r in rows]


def record_titles(session, models, meta, refs) -> dict[tuple[str, int], str]:
    """(entity, id) -> the record's title (its title field, else ``#id``), one query per entity."""
    wanted: dict[str, set[int]] = {}
    for entity, rid in refs:
        if entity in meta.entities:
            wanted.setdefault(entity, set()).add(rid)
    out = {}
    for entity, ids in wanted.items():
        em = meta.entity(entity)
        table = models.table(entity)
        column = table.c[em.field(em.title).column_name] if em.title and em.has_field(em.title) else table.c.id
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            for rid, value in session.execute(sa.select(table.c.id, column).where(table.c.id.in_(chunk))):
                out[(entity, rid)] = str(value) if value not in (None, "") else f"#{rid}"
    return out
