"""Read an HTML form post into the payload ``RecordService`` takes.

The form uses plain names: ``field`` for a value, ``child-<i>-field`` for a
row of an inline child table (``child-<i>-id`` for an existing row, a file
input ``child-<i>-<attachments field>`` for a row's uploads). Rows whose
every input is empty (and that carry no file) are dropped, so the blank
template row never becomes a record. Read-only and computed fields of a row
are the system's to write, so they are not read from the post (as at the
top level).

It also says how a child row looks: which of its fields its own conditions
show, require or lock for its values (the same rules records.py enforces on
save), and whether the rows are a table or stacked blocks.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Mapping

from danbao.engines.coerce import FieldError, coerce_value
from danbao.engines.records import condition_holds, hidden_sections
from danbao.meta.model import EntityMeta

ROW_KEY = re.compile(r"^(?P<child>[a-z][a-z0-9_]*)-(?P<i>\d{1,4})-(?P<field>[a-z][a-z0-9_]*)$")
#: a child with more column fields than this is shown as stacked blocks, not a wide table row
TABLE_MAX_COLUMNS = 10
CONDITIONS = ("visible_if", "required_if", "readonly_if")


def _last(form, name):
    values = form.getlist(name)
    return values[-1] if values else None


def payload_from_form(em: EntityMeta, form, meta, files=None) -> dict:
    data = {}
    for f in em.fields:
        if f.type in ("attachments",) or f.readonly:
            continue
        if f.type == "children":
            data[f.name] = [row for _, row in posted_rows(f.name, meta.entity(f.target), form, files)]
        elif f.name in form:
            data[f.name] = _last(form, f.name)
    return data


def posted_rows(child: str, child_em: EntityMeta, form, files=None) -> list[tuple[int, dict]]:
    """(posted index ``i``, row values) of the kept rows of one children field, in the
    order the payload lists them: the index names the row's file inputs."""
    rows: dict[int, dict] = {}
    for key in form.keys():
        m = ROW_KEY.match(key)
        if not m or m["child"] != child:
            continue
        name = m["field"]
        if name != "id" and name not in _posted_fields(child_em):
            continue
        rows.setdefault(int(m["i"]), {})[name] = _last(form, key)
    with_files = {i for i, _ in row_uploads(child, child_em, files)}
    for i in with_files:
        rows.setdefault(i, {})
    result = []
    for i in sorted(rows):
        row = rows[i]
        values = [v for k, v in row.items() if k != "id"]
        if not row.get("id") and i not in with_files and all(v in (None, "", "false") for v in values):
            continue
        result.append((i, row))
    return result


def row_uploads(child: str, child_em: EntityMeta, files) -> dict[tuple[int, str], list]:
    """{(posted index, attachments field): [uploaded files]} of one children field."""
    out: dict[tuple[int, str], list] = {}
    if files is None:
        return out
    names = {f.name for f in child_em.attachment_fields}
    for key in files.keys():
        m = ROW_KEY.match(key)
        if not m or m["child"] != child or m["field"] not in names:
            continue
        chosen = [u for u in files.getlist(key) if u and u.filename]
        if chosen:
            out[(int(m["i"]), m["field"])] = chosen
    return out


def _posted_fields(child_em: EntityMeta) -> set[str]:
    return {f.name for f in child_em.column_fields if not f.readonly and not f.computed}


# -- how a child row looks -------------------------------------------------------
def stacked(child_em: EntityMeta) -> bool:
    """Rows of a wide child, of one whose fields depend on the row (a counter-guarantee's
    kind), or with files are blocks of labelled inputs; small plain ones stay a table."""
    conditional = any(getattr(f, kind) for f in child_em.column_fields for kind in CONDITIONS) \
        or any(s.visible_if for s in child_em.sections)
    return conditional or bool(child_em.attachment_fields) or len(child_em.column_fields) > TABLE_MAX_COLUMNS


@dataclass(frozen=True)
class RowState:
    """Which sections and fields of one record or child row its conditions hide,
    require or lock."""
    hidden: frozenset
    required: frozenset
    readonly: frozenset
    sections: frozenset = frozenset()             # the keys of the sections hidden


def row_values(meta, child_em: EntityMeta, row) -> dict[str, Any]:
    """A row's typed values: a saved record's, or what was posted (unreadable input counts as empty)."""
    if not isinstance(row, Mapping):
        return {f.name: getattr(row, f.column_name, None) for f in child_em.column_fields}
    values = {}
    for f in child_em.column_fields:
        try:
            values[f.name] = coerce_value(f, row.get(f.name),
                                          codelist=meta.codelists.get(f.codelist) if f.codelist else None)
        except FieldError:
            values[f.name] = None
    return values


def row_state(meta, child_em: EntityMeta, row, today: dt.date) -> RowState:
    """The child entity's own conditions evaluated on this row, as records.py does on
    save: a condition that cannot be evaluated does not hold."""
    values = row_values(meta, child_em, row)

    def holds(name: str, kind: str) -> bool | None:
        return condition_holds(meta, child_em.name, name, kind, values, today)

    closed = hidden_sections(meta, child_em, values, today)
    in_closed = {n for s in child_em.sections if s.key in closed for n in s.fields}
    hidden, required, readonly = set(), set(), set()
    for f in child_em.fields:
        if f.name in in_closed or holds(f.name, "visible_if") is False:
            hidden.add(f.name)
        if f.required or holds(f.name, "required_if") is True:
            required.add(f.name)
        if holds(f.name, "readonly_if") is True:
            readonly.add(f.name)
    return RowState(frozenset(hidden), frozenset(required), frozenset(readonly), frozenset(closed))
