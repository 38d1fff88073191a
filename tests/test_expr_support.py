"""Shared helpers for the expression tests (no tests here).

One small entity, ``deal``, with a field of every kind the differential
tests need, and helpers to put rows in a real table and compare what Python
evaluation and the SQL translation select.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from danbao.expr import Scope, compile_expression, entity_columns, row_values
from danbao.model.builder import build_models
from metafactory import entity, field, meta

STATUSES = ("active", "closed", "draft")

DEAL_META = meta(
    entity("deal",
           field("amount", "money"),
           field("rate", "rate"),
           field("term", "integer"),
           field("status", "enum", options=list(STATUSES)),
           field("flag", "boolean"),
           field("start", "date"),
           field("maturity", "date")),
)
DEAL = DEAL_META.entity("deal")
SCOPE = Scope.for_entity(DEAL_META, "deal")
FIELDS = tuple(f.name for f in DEAL.column_fields)
TODAY = dt.date(2024, 2, 29)


def deal_values(**kw) -> dict:
    """A full values dict for a deal (unnamed fields are None)."""
    values = {name: None for name in FIELDS}
    values.update(kw)
    return values


class DealTable:
    """The deal table in a real database (SQLite file or PostgreSQL schema)."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url)
        self.models = build_models(DEAL_META)
        self.models.metadata.create_all(self.engine)
        self.table = self.models.table("deal")
        self.columns = entity_columns(DEAL, self.table)
        self.dialect = self.engine.dialect.name

    def dispose(self):
        self.engine.dispose()

    def compare(self, conn, sources, today: dt.date):
        """For each source: (python ids, sql ids, sql ids of NOT pred, all ids) over
        the rows currently in the table (inside ``conn``'s transaction)."""
        rows = conn.execute(sa.select(self.table)).mappings().all()
        ids = {r["id"] for r in rows}
        out = []
        for src in sources:
            ce = compile_expression(src, SCOPE, expect="boolean")
            py = {r["id"] for r in rows if ce.evaluate(row_values(DEAL, r), today=today) is True}
            pred = ce.to_sql(self.columns, today=today, dialect_name=self.dialect)
            got = set(conn.scalars(sa.select(self.table.c.id).where(pred)))
            neg = set(conn.scalars(sa.select(self.table.c.id).where(sa.not_(pred))))
            out.append((src, py, got, neg, ids))
        return out

    def insert(self, conn, rows):
        if rows:
            conn.execute(self.table.insert(), [dict(r, id=i + 1, version=1) for i, r in enumerate(rows)])


def assert_agree(results):
    bad = []
    for src, py, got, neg, ids in results:
        if py != got or neg != ids - got:
            bad.append(f"{src}\n  python: {sorted(py)}\n  sql:    {sorted(got)}\n  not:    {sorted(neg)}")
    assert not bad, "Python and SQL disagree:\n" + "\n".join(bad)


def D(text) -> Decimal:
    return Decimal(str(text))
