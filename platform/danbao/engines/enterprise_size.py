"""Enterprise size (大/中/小/微) by 工信部联企业〔2011〕300号, from a table in settings.

The setting ``enterprise_size_table`` lists industry rows; each names the
industry codes it covers (GB/T 4754 sections or divisions) and, for large,
medium and small, the thresholds a company must reach on every criterion
it lists (``staff``, ``revenue`` in 10k CNY, ``assets`` in 10k CNY). Below
the small thresholds a company is micro. A row without ``industries`` is
the fallback. A criterion the customer has no figure for is not used; with
no figure at all the size is left as entered.

A save hook classifies every record of an entity with the fields
``industry``, ``employees``, ``annual_revenue`` (optionally ``total_assets``)
and ``enterprise_size``. No Flask here.
"""
from __future__ import annotations

from decimal import Decimal

from danbao.engines.records import register_save_hook

SIZES = ("large", "medium", "small")
FIGURES = {"staff": "employees", "revenue": "annual_revenue", "assets": "total_assets"}


def industry_row(table, code: str | None, parent_of) -> dict | None:
    """The table row for an industry code: the code itself, else its parents, else the fallback."""
    seen = set()
    while code and code not in seen:
        seen.add(code)
        for row in table:
            if code in [str(c) for c in row.get("industries") or ()]:
                return row
        code = parent_of(code)
    return next((row for row in table if not row.get("industries")), None)


def classify(row: dict, figures: dict[str, Decimal | None]) -> str | None:
    """``large`` … ``micro`` for these figures, or None if no criterion of the row can be judged."""
    judged = False
    for size in SIZES:
        limits = row.get(size) or {}
        usable = {k: v for k, v in limits.items() if figures.get(k) is not None}
        judged = judged or bool(usable)
        if usable and all(Decimal(str(figures[k])) >= Decimal(str(v)) for k, v in usable.items()):
            return size
    return "micro" if judged else None


@register_save_hook
def keep_enterprise_size(service, em, obj, by_user) -> None:
    table = service.meta.setting("enterprise_size_table")
    if not table or not all(em.has_field(n) for n in ("industry", "enterprise_size", "employees", "annual_revenue")):
        return
    codelist = service.meta.codelists.get(em.field("industry").codelist or "")
    parents = {i.code: i.parent for i in codelist.items} if codelist else {}
    row = industry_row(table, obj.industry, parents.get)
    if row is None:
        return
    figures = {k: getattr(obj, f, None) if em.has_field(f) else None for k, f in FIGURES.items()}
    size = classify(row, figures)
    if size is not None and size != obj.enterprise_size:
        service.set_system_values(em, obj, {"enterprise_size": size})
