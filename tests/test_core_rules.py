"""The core pack's warning rules on real rows: due soon, overdue, fee overdue, a low grade."""
from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import CORE_PACK
from danbao.demo import make_uscc
from danbao.engines.records import Actor, RecordService
from danbao.engines.scoring import score_record
from danbao.engines.warnings import scan
from danbao.meta.loader import load_packs
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import ensure_schema

META = load_packs([CORE_PACK])
TODAY = dt.date(2026, 11, 29)


@pytest.fixture
def world(database_url):
    models = build_models(META)
    engine = make_engine(database_url)
    ensure_schema(engine, models)
    session = Session(engine)
    yield models, session, RecordService(models, session, Actor(None, "tester"))
    session.close()
    engine.dispose()


def _open(session, models, rule):
    w = models.system["danbao_warning"]
    return sorted(r[0] for r in session.execute(sa.select(w.c.record_id).where(w.c.rule == rule, w.c.status == "open")))


def _project(svc, no, start, months, status="guaranteeing", fees=()):
    corp = svc.create("corporate_customer", {"name": f"企业{no}", "uscc": make_uscc(random.Random(no), "320100")})
    return svc.create("guarantee_project", {
        "project_no": f"DB-{no}", "name": f"项目{no}", "customer_kind": "corporate", "corporate_customer": corp.id,
        "amount": "1000000.00", "term_months": months, "start_date": start.isoformat(), "status": status,
        "fee_instalments": [dict(due_on=d.isoformat(), amount="10000.00", paid_amount=p) for d, p in fees]})


def test_due_soon_and_overdue_follow_the_due_date(world):
    models, session, svc = world
    soon = _project(svc, 1, dt.date(2025, 12, 15), 12)          # due 2026-12-15: 16 days ahead
    edge = _project(svc, 2, dt.date(2025, 12, 29), 12)          # due in exactly 30 days
    later = _project(svc, 3, dt.date(2025, 12, 30), 12)         # 31 days: not yet
    late = _project(svc, 4, dt.date(2025, 11, 28), 12)          # due 2026-11-28: overdue
    released = _project(svc, 5, dt.date(2025, 11, 1), 12, status="released")
    assert soon.due_date == dt.date(2026, 12, 15)
    scan(session, models, META, as_of=TODAY, rules=["project_due_soon", "project_overdue"])
    assert _open(session, models, "project_due_soon") == sorted([soon.id, edge.id])
    assert _open(session, models, "project_overdue") == [late.id]
    assert released.id not in _open(session, models, "project_overdue")
    # a day later the edge case is due in 29 days, and the release of the late one closes its warning
    svc.update("guarantee_project", late.id, {"status": "released"}, expected_version=late.version)
    scan(session, models, META, as_of=TODAY + dt.timedelta(days=1), rules=["project_due_soon", "project_overdue"])
    assert _open(session, models, "project_due_soon") == sorted([soon.id, edge.id, later.id])
    assert _open(session, models, "project_overdue") == []


def test_fee_instalment_overdue_until_paid_in_full(world):
    models, session, svc = world
    project = _project(svc, 6, dt.date(2026, 1, 1), 24, fees=[
        (dt.date(2026, 10, 1), "10000.00"), (dt.date(2026, 11, 1), "4000.00"), (dt.date(2026, 11, 28), None),
        (dt.date(2026, 12, 1), None)])
    scan(session, models, META, as_of=TODAY, rules=["fee_instalment_overdue"])
    rows = {r.due_on: r.id for r in project.fee_instalments}
    assert _open(session, models, "fee_instalment_overdue") == sorted([rows[dt.date(2026, 11, 1)],
                                                                        rows[dt.date(2026, 11, 28)]])
    w = models.system["danbao_warning"]
    message = session.execute(sa.select(w.c.message_zh).where(
        w.c.rule == "fee_instalment_overdue", w.c.record_id == rows[dt.date(2026, 11, 1)])).scalar_one()
    assert "10000.00" in message and "4000.00" in message


def test_a_customer_scored_down_to_c_gets_a_warning(world):
    models, session, svc = world
    corp = svc.create("corporate_customer", {"name": "低分企业", "uscc": make_uscc(random.Random(99), "320100"),
                                             "tax_grade": "D"})
    poor = {"industry_outlook": "restricted", "management": "weak", "credit_record": "serious", "lawsuits": "major"}
    score_record(session, models, META, "sme_corporate", corp.id, inputs=poor, actor=Actor(None, "risk"), as_of=TODAY)
    scan(session, models, META, as_of=TODAY, rules=["corp_low_grade"])
    assert _open(session, models, "corp_low_grade") == [corp.id]
