"""The product drives the project: its ``workflow:`` decides the approval routes offered.

Registered as a route filter of the generic workflow engine (engines/routing.py).
A product names workflow groups or workflow codes. The rule, per project entity:

* a workflow some product names — by its code, or through its group — is
  *claimed*: only a project of a product that names it may start it;
* naming a group claims its workflows except those another product names by
  code (a product's own route stays its own even inside a shared group);
* workflows no product names (release, compensation, write-off) stay open to
  every project, and a project without a known product is not filtered.

So a new product whose pack names its own route is offered only that route,
and its extra step cannot be skipped by starting the standard one.
"""
from __future__ import annotations

from danbao.engines.projects import project_em
from danbao.engines.routing import register_route_filter


def _claims(meta, product, by_code: set[str]) -> set[str]:
    out: set[str] = set()
    for name in product.workflows:
        if name in meta.workflows:
            out.add(name)
        out |= {w.code for w in meta.workflows.values() if w.group == name and w.code not in by_code}
    return out


def routes_of(meta, entity: str, product_code: str | None) -> set[str] | None:
    """Workflow codes a record of ``product_code`` may start, or None (no say)."""
    product = meta.products.get(product_code or "")
    if product is None or product.entity != entity or not product.workflows:
        return None
    products = [p for p in meta.products.values() if p.entity == entity]
    by_code = {n for p in products for n in p.workflows if n in meta.workflows}
    claimed = set().union(*(_claims(meta, p, by_code) for p in products))
    own = _claims(meta, product, by_code)
    return {w.code for w in meta.workflows.values() if w.entity == entity and (w.code not in claimed or w.code in own)}


@register_route_filter
def product_routes(meta, entity: str, values) -> set[str] | None:
    em = project_em(meta)
    if em is None or em.name != entity or not em.has_field("product"):
        return None
    return routes_of(meta, entity, values.get("product"))
