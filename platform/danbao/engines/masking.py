"""Personal data masked (个人信息脱敏): ID numbers, phones and bank accounts.

A field declared ``sensitive: id_number | phone | bank_account`` is shown
masked (110***********1234, 138****5678) to every role but the entity's
``unmask`` roles (a child entity takes its parent's) and Admin, on every
output: record pages, lists, forms, REST, history. Masked viewers may find
a record by the exact value only (no partial search: a LIKE would let them
read a number digit by digit). Each time someone sees a record's sensitive
fields in clear, who, when and which record is written to
``danbao_sensitive_view``. No Flask.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from danbao.meta.model import EntityMeta, FieldMeta, Meta
from danbao.model.system import SENSITIVE_VIEW_TABLE

ADMIN_ROLE = "Admin"
STAR = "*"


def mask_text(kind: str | None, text) -> str:
    """The masked form of ``text``: ID numbers keep 3 + 4, phones 3 + 4, accounts 4 + 4."""
    if text is None or text == "":
        return "" if text is None else text
    text = str(text)
    n = len(text)
    keep_head, keep_tail = {"id_number": (3, 4), "phone": (3, 4), "bank_account": (4, 4)}.get(kind or "", (1, 1))
    if n <= keep_head + keep_tail:
        return STAR * n
    return text[:keep_head] + STAR * (n - keep_head - keep_tail) + text[n - keep_tail:]


def unmask_roles(meta: Meta, em: EntityMeta) -> tuple[str, ...]:
    """The roles that see ``em``'s sensitive fields in clear (a child: its parent's unless declared)."""
    seen = set()
    while em.unmask is None and em.parent and em.name not in seen:
        seen.add(em.name)
        em = meta.entity(em.parent)
    return em.unmask or ()


def has_sensitive(meta: Meta, em: EntityMeta, seen=None) -> bool:
    """Whether ``em`` or any of its child entities has a sensitive field."""
    seen = seen or set()
    if em.name in seen:
        return False
    seen.add(em.name)
    return any(f.sensitive for f in em.fields) or any(
        has_sensitive(meta, meta.entity(c.target), seen) for c in em.children)


class Masker:
    """Masks for one viewer. ``roles=None`` (the system, scripts) masks nothing."""

    def __init__(self, meta: Meta, roles):
        self.meta = meta
        self.roles = None if roles is None else frozenset(roles)
        self._owner = _field_owners(meta)

    def masks(self, em: EntityMeta) -> bool:
        """Whether this viewer sees ``em``'s sensitive fields masked."""
        if self.roles is None or ADMIN_ROLE in self.roles:
            return False
        return not (self.roles & set(unmask_roles(self.meta, em)))

    def masks_field(self, f: FieldMeta, em: EntityMeta | None = None) -> bool:
        if not f.sensitive:
            return False
        em = em or self._owner.get(id(f))
        return em is None or self.masks(em)

    def value(self, f: FieldMeta, value, em: EntityMeta | None = None):
        """``value`` as this viewer may see it."""
        return mask_text(f.sensitive, value) if value is not None and self.masks_field(f, em) else value

    def masked_fields(self, em: EntityMeta) -> frozenset[str]:
        """Names of ``em``'s fields this viewer sees masked (searched by exact value only)."""
        return frozenset(f.name for f in em.fields if f.sensitive and self.masks(em))

    def sees_clear(self, em: EntityMeta) -> bool:
        """Whether showing a record of ``em`` to this viewer shows sensitive values in clear."""
        return self.roles is not None and has_sensitive(self.meta, em) and not self._masks_tree(em)

    def _masks_tree(self, em: EntityMeta) -> bool:
        own = any(f.sensitive for f in em.fields)
        if own and not self.masks(em):
            return False
        return all(self._masks_tree(self.meta.entity(c.target)) for c in em.children
                   if has_sensitive(self.meta, self.meta.entity(c.target)))

    def keep_stored(self, em: EntityMeta, obj, data: Mapping[str, Any]) -> dict:
        """A masked viewer's edit sends back the masked text it was shown: that
        means "unchanged", so those values are dropped and the stored ones kept."""
        out = dict(data)
        if obj is None:
            return out
        for f in em.fields:
            if f.sensitive and f.name in out and self.masks_field(f, em):
                stored = getattr(obj, f.column_name)
                if stored is not None and out[f.name] == mask_text(f.sensitive, stored):
                    del out[f.name]
            elif f.type == "children" and isinstance(out.get(f.name), list):
                child_em = self.meta.entity(f.target)
                rows = {c.id: c for c in getattr(obj, f.name)}
                out[f.name] = [self._row(child_em, rows, row) for row in out[f.name]]
        return out

    def _row(self, child_em, rows, row):
        if not isinstance(row, Mapping):
            return row
        rid = row.get("id")
        rid = int(rid) if isinstance(rid, str) and rid.isdigit() else rid
        child = rows.get(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None
        return self.keep_stored(child_em, child, row) if child is not None else row


_OWNERS: dict[int, tuple[Meta, dict[int, EntityMeta]]] = {}


def _field_owners(meta: Meta) -> dict[int, EntityMeta]:
    """id(FieldMeta) -> its entity, so a field alone says whose ``unmask`` applies."""
    cached = _OWNERS.get(id(meta))
    if cached is None or cached[0] is not meta:
        cached = (meta, {id(f): em for em in meta.entities.values() for f in em.fields})
        if len(_OWNERS) > 8:
            _OWNERS.clear()
        _OWNERS[id(meta)] = cached
    return cached[1]


def record_clear_views(session, models, masker: Masker, user_id, username: str, em: EntityMeta, record_ids,
                       channel: str, now: dt.datetime | None = None) -> int:
    """Write who saw which records' sensitive fields in clear; how many rows (not committed)."""
    ids = [rid for rid in record_ids if rid is not None]
    if not ids or not masker.sees_clear(em):
        return 0
    at = now or dt.datetime.now()
    table = models.system[SENSITIVE_VIEW_TABLE]
    session.execute(table.insert(), [{"at": at, "user_id": user_id, "username": username, "entity": em.name,
                                      "record_id": rid, "channel": channel} for rid in ids])
    return len(ids)
