"""How typed values read on screen, in the user's language."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from danbao.meta.model import FieldMeta, Meta


def display(meta: Meta, f: FieldMeta, obj, lang: str, users=None) -> str:
    """The text a person reads for ``f`` on ``obj`` (never None)."""
    if f.type == "reference":
        target = getattr(obj, f.name, None)
        return title_of(meta, target) if target is not None else ""
    value = getattr(obj, f.column_name, None)
    return format_value(meta, f, value, lang, users)


def format_value(meta: Meta, f: FieldMeta, value, lang: str, users=None) -> str:
    """``users`` maps user ids to names for ``user`` fields (see UserNames)."""
    if value is None:
        return ""
    if f.type == "user":
        return (users if users is not None else {}).get(value, f"#{value}")
    if f.type == "boolean":
        return ("是" if value else "否") if lang == "zh" else ("Yes" if value else "No")
    if f.type == "enum":
        return f.option_label(value, lang)
    if f.type == "code":
        codelist = meta.codelists.get(f.codelist)
        return codelist.label_of(value, lang) if codelist else str(value)
    if f.type == "money":
        return f"{Decimal(value):,.2f}"
    if f.type == "rate":
        return percent_text(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def percent_text(value) -> str:
    """A rate as people read it, to 0.01% rounded half up: 0.018 -> 1.8%,
    1.201115 -> 120.11% (Decimal, no trailing zeros; fee rates are exact)."""
    shown = (Decimal(value) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize()
    return f"{shown:f}%"


def title_of(meta: Meta, obj) -> str:
    em = obj.__danbao_entity__
    value = getattr(obj, em.field(em.title).column_name, None)
    return str(value) if value not in (None, "") else f"#{obj.id}"


def input_value(f: FieldMeta, value) -> str:
    """The value as an HTML input expects it."""
    if value is None:
        return ""
    if f.type == "datetime" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if f.type == "rate" and isinstance(value, (Decimal, int)):   # as people type it, exactly: 0.018 -> 1.8%
        return f"{(Decimal(value) * 100).normalize():f}%"          # (what was posted is shown as typed)
    return str(value)


def audit_value(meta: Meta, em, field_name: str | None, text: str | None, lang: str) -> str:
    """An audit row's stored text, read as people read the field (option labels, yes/no, #id)."""
    if text is None or em is None or not field_name or not em.has_field(field_name):
        return text or ""
    f = em.field(field_name)
    if f.type in ("enum", "code"):
        return format_value(meta, f, text, lang)
    if f.type == "boolean":
        return format_value(meta, f, text == "true", lang)
    if f.type in ("reference", "user"):
        return f"#{text}"
    return text


class UserNames(dict):
    """id -> display name, read from the database the first time a name is needed."""

    def __init__(self, load):
        super().__init__()
        self._load = load
        self._loaded = False

    def get(self, key, default=None):
        if not self._loaded:
            self.update(self._load())
            self._loaded = True
        return super().get(key, default)
