"""The demo portfolio (``danbao demo --size N``): every stage present, ledger balances
that agree with the fee plans and the project stages, and a dashboard with figures."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa

from danbao.demo import ensure_staff, load_demo_data, start_demo_workflows
from danbao.demo_portfolio import STAGE_SHARES, stage_plan
from danbao.engines.ledger import LedgerService
from danbao.engines.regulatory import dashboard
from danbao.model.system import LEDGER_TABLE
from webfixtures import make_app

TODAY = dt.date(2026, 11, 29)
SIZE = 40
IN_FORCE = ("guaranteeing", "overdue")


@pytest.fixture(scope="module")
def demo(module_database_url, tmp_path_factory):
    app = make_app(module_database_url, tmp_path_factory.mktemp("inst"))
    with app.app_context():
        ensure_staff(app, "Secret-123")
        loaded = load_demo_data(app, size=SIZE, today=TODAY)
        rt = app.extensions["danbao"]
        started = start_demo_workflows(rt, loaded.submit)
        yield app, rt, loaded, started


def rows(rt, entity, *where):
    t = rt.models.table(entity)
    return rt.session.execute(sa.select(t).where(*where)).all()


def test_stage_plan_has_every_stage_once_the_book_allows():
    for n in (9, 40, 200, 1000):
        plan = stage_plan(n)
        assert len(plan) == n and set(plan) == {s for s, _ in STAGE_SHARES}
    assert stage_plan(3) == ["guaranteeing", "applying", "released"]


def test_every_stage_and_status_appears(demo):
    _app, rt, loaded, started = demo
    assert sum(loaded.stages.values()) == SIZE
    assert set(loaded.stages) == {s for s, _ in STAGE_SHARES}
    statuses = Counter(r.status for r in rows(rt, "guarantee_project"))
    assert set(statuses) == {"applying", "reviewing", "approved", "rejected", "guaranteeing", "released", "overdue",
                             "compensated", "written_off"}
    assert started == len(loaded.submit) == statuses["reviewing"] > 0
    products = {r.product for r in rows(rt, "guarantee_project")}
    assert products == set(rt.meta.products)
    companies, people = rows(rt, "corporate_customer"), rows(rt, "individual_customer")
    assert len(companies) == SIZE // 2 and len(people) == SIZE // 5
    for child in ("bank_credit", "bank_account", "credit_record", "related_party", "financial_statement", "shop",
                  "personal_asset", "counter_guarantee", "post_check", "compensation", "recovery", "asset_preservation"):
        assert rows(rt, child), child
    assert any(r.dishonest for r in rows(rt, "lawsuit"))
    assert all(r.credit_grade for r in companies + people)


def test_projects_in_force_have_fee_plans_checks_and_coverage(demo):
    _app, rt, _loaded, _started = demo
    fees = Counter((r.parent_id, r.kind) for r in rows(rt, "fee_instalment"))
    for p in rows(rt, "guarantee_project"):
        if p.status in IN_FORCE:
            assert fees[(p.id, "guarantee_fee")] >= 1, p.project_no
            assert p.next_check_due is not None and p.start_date <= TODAY
        if p.status not in ("applying", "reviewing", "rejected"):
            assert fees[(p.id, "guarantee_fee")] >= 1
        assert p.coverage_ratio is not None and p.project_no.startswith("DB-")
        if p.status == "overdue":
            assert p.overdue_since < TODAY and p.risk_class != "normal"
    product = {p.code: p for p in rt.meta.products.values()}
    approved = [p for p in rows(rt, "guarantee_project") if p.status in IN_FORCE + ("approved", "released")]
    short = [p for p in approved if p.coverage_ratio < product[p.product].min_coverage]
    assert len(short) <= len(approved) // 5          # approved projects met the minimum (a few revalued since)


def test_ledger_balances_agree_with_entries_fees_and_stages(demo):
    _app, rt, _loaded, _started = demo
    ledger = LedgerService(rt.session, rt.models, rt.meta)
    entries = rt.session.execute(sa.select(rt.models.system[LEDGER_TABLE])).all()
    projects = {p.id: p for p in rows(rt, "guarantee_project")}
    paid = Counter()
    for f in rows(rt, "fee_instalment"):
        if f.paid_amount:
            paid[(f.parent_id, f.kind)] += f.paid_amount
    kinds = rt.meta.ledger_kinds
    for pid, p in projects.items():
        mine = [e for e in entries if e.project_id == pid]
        expected = Counter()
        for e in mine:
            if e.state == "confirmed":
                for balance, sign in kinds[e.kind].effects.items():
                    expected[balance] += e.amount * e.direction * sign
        balances = ledger.balances(pid)
        assert {k: v for k, v in balances.items() if v} == {k: v for k, v in expected.items() if v}, p.project_no
        booked = Counter()                      # confirmed receipts pay the fee plan (setting ledger_settles)
        for e in mine:
            if e.state == "confirmed":
                booked[e.kind] += e.amount * e.direction
        assert booked["guarantee_fee_received"] == paid[(pid, "guarantee_fee")], p.project_no
        assert booked["review_fee_received"] == paid[(pid, "review_fee")], p.project_no
        assert balances["deposit_held"] == (0 if p.status == "released" else paid[(pid, "deposit")])
        outstanding = p.amount if p.status in IN_FORCE else Decimal(0)
        assert balances["guarantee_outstanding"] == outstanding, p.project_no
        comp = sum((c.amount for c in rows(rt, "compensation", rt.models.table("compensation").c.parent_id == pid)),
                   Decimal(0))
        assert balances["compensation_paid"] == comp
        if p.status in ("compensated", "written_off"):
            assert comp > 0 and any(e.kind == "compensation_paid" and e.state == "confirmed" for e in mine)
        for e in mine:
            assert e.made_by_id == p.a_manager_id
            assert len({e.made_by_id, e.checked_by_id, e.confirmed_by_id} - {None}) == \
                (e.checked_by_id is not None) + (e.confirmed_by_id is not None) + 1
            assert e.booked_on <= TODAY
    states = Counter(e.state for e in entries)
    assert states["confirmed"] > 100 and states["made"] + states["checked"] >= 1 and states["rejected"] == 1
    assert any(e.direction == -1 and e.state == "confirmed" for e in entries)      # one reversal


def test_dashboard_has_figures(demo):
    _app, rt, _loaded, _started = demo
    board = dashboard(rt.session, rt.models, rt.meta, today=TODAY)
    assert board.outstanding > 0 and board.in_force_count > 0 and board.leverage > 0
    assert board.compensation_in_year > 0 and board.ended_in_year > 0 and board.compensation_rate > 0
    assert board.compensation_total > 0 and board.recovered_total > 0 and 0 < board.loss_rate < 1
    assert board.top_customers and board.top_groups
    assert board.customers_near >= 1 and board.groups_near >= 1 and not board.customers_breach
    assert {s for s, _n, _a in board.by_status} >= {"guaranteeing", "overdue", "released"}
    assert len(board.by_product) >= 2 and len(board.by_risk_class) >= 2


def test_every_identity_number_in_the_demo_passes_its_check(demo):
    """Demo data passes the checks it would meet in a form: credit codes, and each
    ID number by its own ID type (issue 15)."""
    from danbao.checks import NAMED_CHECKS
    _app, rt, _loaded, _started = demo
    checked = 0
    for em in rt.meta.entities.values():
        for f in em.column_fields:
            if not (f.check or f.check_by):
                continue
            for row in rows(rt, em.name):
                value = getattr(row, f.column_name)
                name = f.check or f.check_by.check_for(getattr(row, f.check_by.field))
                if value is None:
                    continue
                assert name is not None, (em.name, f.name, value)
                assert NAMED_CHECKS[name].failure(value, TODAY) is None, (em.name, f.name, value)
                checked += 1
    assert checked > SIZE
