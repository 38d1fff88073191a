"""What the settings say a guarantee project is, for every engine that needs it.

The project entity (setting ``project_entity``), its customer references
(``project_customer_fields``, in order: a project names one customer, the
first that is set) and the statuses whose amount is outstanding liability
(``project_in_force_statuses``). A leaf module: no engine imports, so the
business rules, documents, ledger and regulatory engines can all use it.
"""
from __future__ import annotations

from danbao.meta.model import EntityMeta, FieldMeta, Meta


def project_em(meta: Meta) -> EntityMeta | None:
    name = meta.setting("project_entity")
    return meta.entity(name) if name and name in meta.entities else None


def customer_fields(meta: Meta) -> list[FieldMeta]:
    """The project's customer reference fields the settings name, in their order."""
    em = project_em(meta)
    if em is None:
        return []
    return [em.field(n) for n in meta.setting("project_customer_fields", ()) or ()
            if em.has_field(n) and em.field(n).type == "reference"]


def customer_of(meta: Meta, project) -> tuple[str, int] | None:
    """(customer entity, id) of a project record or row: its first customer reference that is set."""
    for f in customer_fields(meta):
        value = getattr(project, f.column_name, None)
        if value is not None:
            return f.target, value
    return None


def in_force_statuses(meta: Meta) -> tuple[str, ...]:
    return tuple(meta.setting("project_in_force_statuses", ("guaranteeing", "overdue")))
