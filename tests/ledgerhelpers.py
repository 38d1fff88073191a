"""A ledger to test against: the core pack's guarantee_project with the users of
``wfhelpers.WfWorld`` and ledger kinds and settings made here (so the tests do
not depend on what the business pack declares)::

    world = LedgerWorld(database_url)
    p = world.project(status="guaranteeing")
    e = world.ledger().make(p, "deposit_received", D("100.00"), world.actor("pm"))
    world.ledger().check(e, world.actor("fin")); world.ledger().confirm(e, world.actor("boss"))

Who may act: maker = finance or the project's A角 (``a_manager``); checker =
finance; confirmer = manager. ``cfo`` holds finance and manager, so can act at
every step (but only once per entry).
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import sqlalchemy as sa
from sqlalchemy.orm import Session

from danbao.engines.ledger import LedgerService
from danbao.meta.model import Label, LedgerKindMeta, SettingMeta
from danbao.model.system import LEDGER_TABLE
from wfhelpers import CORE, ENTITY, WfWorld

PACKS = (CORE,)

PEOPLE = {
    "pm": ["project_manager"], "pm2": ["project_manager"], "fin": ["finance"], "fin2": ["finance"],
    "boss": ["manager"], "boss2": ["manager"], "cfo": ["finance", "manager"], "risk": ["risk_officer"],
    "clerk": [],
}


def kind(code: str, effects: dict, **kw) -> LedgerKindMeta:
    return LedgerKindMeta(code=code, label=Label(code, code), effects=effects, **kw)


KINDS = {k.code: k for k in (
    kind("review_fee_received", {"review_fee": 1}),
    kind("guarantee_fee_received", {"guarantee_fee": 1}),
    kind("deposit_received", {"deposit_held": 1}),
    kind("deposit_refunded", {"deposit_held": -1}, statuses=("guaranteeing", "overdue", "released"),
         not_above="deposit_held"),
    kind("loan_drawn", {"loan_outstanding": 1, "guarantee_outstanding": 1}, statuses=("guaranteeing",)),
    kind("loan_repaid", {"loan_outstanding": -1, "guarantee_outstanding": -1}, not_above="loan_outstanding"),
    kind("compensation", {"compensation_paid": 1, "guarantee_outstanding": -1}, not_above="guarantee_outstanding"),
    kind("recovery", {"recovered": 1}),
    kind("fee_adjustment", {"guarantee_fee": 1}, allow_negative=True),
)}

SETTINGS = {s.name: s for s in (
    SettingMeta("project_entity", ENTITY),
    SettingMeta("project_customer_fields", ["corporate_customer", "individual_customer"]),
    SettingMeta("ledger_closed_statuses", ["released", "written_off", "rejected"]),
    SettingMeta("ledger_maker", {"roles": ["finance"], "fields": ["a_manager"]}),
    SettingMeta("ledger_checker", {"roles": ["finance"]}),
    SettingMeta("ledger_confirmer", {"roles": ["manager"]}),
)}


def ledger_meta(meta, kinds=None, settings=None):
    """``meta`` with the test's ledger kinds and settings (a later pack's own are replaced)."""
    return dataclasses.replace(meta, ledger_kinds=KINDS if kinds is None else kinds,
                               settings={**meta.settings, **(SETTINGS if settings is None else settings)})


class LedgerWorld(WfWorld):
    def __init__(self, url: str, **kw):
        super().__init__(url, people=PEOPLE, packs=PACKS, **kw)
        self.lmeta = ledger_meta(self.meta)

    def ledger(self, session: Session | None = None, meta=None) -> LedgerService:
        return LedgerService(session or self.s, self.models, meta or self.lmeta, clock=self.clock)

    def project(self, amount="5000000", *, status: str | None = None, **kw) -> int:
        p = super().project(amount, **kw)
        if status is not None:
            self.set(ENTITY, p, status=status)
        return p

    @property
    def table(self) -> sa.Table:
        return self.models.system[LEDGER_TABLE]

    def rows(self) -> list[tuple]:
        """Every ledger row, as plain tuples (to compare before and after)."""
        self.s.commit()
        return [tuple(r) for r in self.s.execute(sa.select(self.table).order_by(self.table.c.id)).all()]

    def entry(self, entry_id: int):
        self.s.commit()
        return self.s.execute(sa.select(self.table).where(self.table.c.id == entry_id)).first()

    def book(self, project: int, kind_code: str, amount, *, maker="pm", checker="fin", confirmer="boss",
             meta=None, **kw) -> int:
        """An entry made, checked and confirmed (stopping early when checker/confirmer is None),
        under ``meta`` (default: the test's ledger kinds)."""
        ledger = self.ledger(meta=meta)
        e = ledger.make(project, kind_code, D(amount), self.actor(maker), **kw)
        if checker:
            ledger.check(e, self.actor(checker))
            if confirmer:
                ledger.confirm(e, self.actor(confirmer))
        return e

    def balance(self, project: int, name: str = "deposit_held", meta=None) -> D:
        self.s.commit()
        return self.ledger(meta=meta).balances(project)[name]
