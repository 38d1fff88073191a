"""Read an HTML form post into the payload ``RecordService`` takes.

The form uses plain names: ``field`` for a value, ``child-<i>-field`` for a
row of an inline child table (``child-<i>-id`` for an existing row). Rows
whose every input is empty are dropped, so the blank template row never
becomes a record.
"""
from __future__ import annotations

import re

from danbao.meta.model import EntityMeta

ROW_KEY = re.compile(r"^(?P<child>[a-z][a-z0-9_]*)-(?P<i>\d{1,4})-(?P<field>[a-z][a-z0-9_]*)$")


def _last(form, name):
    values = form.getlist(name)
    return values[-1] if values else None


def payload_from_form(em: EntityMeta, form, meta) -> dict:
    data = {}
    for f in em.fields:
        if f.type in ("attachments",) or f.readonly:
            continue
        if f.type == "children":
            data[f.name] = _child_rows(f.name, meta.entity(f.target), form)
        elif f.name in form:
            data[f.name] = _last(form, f.name)
    return data


def _child_rows(child: str, child_em: EntityMeta, form) -> list[dict]:
    rows: dict[int, dict] = {}
    for key in form.keys():
        m = ROW_KEY.match(key)
        if not m or m["child"] != child:
            continue
        name = m["field"]
        if name != "id" and not child_em.has_field(name):
            continue
        rows.setdefault(int(m["i"]), {})[name] = _last(form, key)
    result = []
    for i in sorted(rows):
        row = rows[i]
        values = [v for k, v in row.items() if k != "id" and k in _meaningful(child_em)]
        if not row.get("id") and all(v in (None, "", "false") for v in values):
            continue
        result.append(row)
    return result


def _meaningful(child_em: EntityMeta) -> set[str]:
    return {f.name for f in child_em.column_fields}
