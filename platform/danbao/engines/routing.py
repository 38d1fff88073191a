"""Route filters: which workflows a record may start, decided outside the workflow engine.

The workflow engine is generic: it knows workflows, groups, priorities and
``applies_if``, not guarantee products. An app on the platform (the
guarantee business, engines/business.py) or a plugin registers a *route
filter* ``fn(meta, entity, values) -> set of workflow codes | None``: the
codes this record (its plain values) may start, or None for no opinion.
``candidates`` offers only workflows every filter with an opinion allows, so
a product that names its own route cannot be approved by the standard one.
A leaf module, so the business can register without importing the engine.
"""
from __future__ import annotations

ROUTE_FILTERS: list = []


def register_route_filter(fn):
    """Add a route filter (idempotent)."""
    if fn not in ROUTE_FILTERS:
        ROUTE_FILTERS.append(fn)
    return fn


def allowed_routes(meta, entity: str, values) -> set[str] | None:
    """The codes every filter with an opinion allows, or None when none has one."""
    allowed: set[str] | None = None
    for fn in ROUTE_FILTERS:
        codes = fn(meta, entity, values)
        if codes is not None:
            allowed = set(codes) if allowed is None else allowed & set(codes)
    return allowed
