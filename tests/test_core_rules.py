"""The core pack's warning rules on real rows: due soon, overdue, fee overdue, a low grade; lawsuits, credit
records, concentration, post-guarantee checks, coverage, the application flag, asset preservation."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

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
    svc.assign("guarantee_project", late.id, {"status": "released"})     # as the release workflow does
    session.commit()
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


# -- the business rules of the core pack: customer signals, concentration, project monitoring ----------
def _corp(svc, seed, **values):
    return svc.create("corporate_customer", {"name": f"企业{seed}", "uscc": make_uscc(random.Random(seed), "320100"),
                                             **values})


def _in_force(svc, no, customer, amount, *, kind="corporate", status="guaranteeing", start=dt.date(2026, 6, 1), **values):
    ref = "corporate_customer" if kind == "corporate" else "individual_customer"
    return svc.create("guarantee_project", {
        "project_no": f"DB-{no}", "name": f"项目{no}", "customer_kind": kind, ref: customer.id, "amount": amount,
        "term_months": 24, "start_date": start.isoformat(), "status": status, **values})


def test_lawsuit_flags_and_credit_overdue_raise_warnings(world):
    models, session, svc = world
    corp = _corp(svc, 201, lawsuits=[
        {"case_no": "（2026）苏0102执123号", "role": "defendant", "status": "enforcing", "dishonest": True},
        {"case_no": "（2026）苏0102执124号", "role": "defendant", "status": "enforcing", "consumption_restricted": True},
        {"case_no": "（2025）苏0102民初55号", "role": "plaintiff", "status": "closed"}],
        credit_records=[{"queried_on": "2026-11-01", "current_overdue": "0.00"},
                        {"queried_on": "2026-11-20", "current_overdue": "15000.00", "overdue_count_history": 3}])
    scan(session, models, META, as_of=TODAY, rules=["lawsuit_dishonest", "credit_record_overdue"])
    suits = {s.case_no: s.id for s in corp.lawsuits}
    assert _open(session, models, "lawsuit_dishonest") == sorted([suits["（2026）苏0102执123号"], suits["（2026）苏0102执124号"]])
    late = next(r.id for r in corp.credit_records if r.current_overdue)
    assert _open(session, models, "credit_record_overdue") == [late]
    w = models.system["danbao_warning"]
    message = session.execute(sa.select(w.c.message_zh).where(w.c.rule == "credit_record_overdue")).scalar_one()
    assert "15000.00" in message and "2026-11-20" in message


def test_concentration_near_and_over_the_limits(world):
    from danbao.engines.regulatory import refresh_exposures
    models, session, svc = world
    # net assets 500m: one party near from 45m (90% of 10%), over above 50m; a group near from 67.5m, over above 75m
    near, over, alone = _corp(svc, 301), _corp(svc, 302), _corp(svc, 303)
    _in_force(svc, 301, near, "46000000.00")
    _in_force(svc, 302, over, "30000000.00")
    _in_force(svc, 303, over, "25000000.00")
    _in_force(svc, 304, alone, "1000000.00")
    b = _corp(svc, 311)
    a = _corp(svc, 310, related_parties=[{"name": b.name, "relation": "same_controller", "related_customer": b.id}])
    _in_force(svc, 310, a, "40000000.00")
    _in_force(svc, 311, b, "40000000.00")                                    # group 80m: over 15%
    d = _corp(svc, 321)
    c = _corp(svc, 320, related_parties=[{"name": d.name, "relation": "mutual_guarantee", "uscc": d.uscc}])
    _in_force(svc, 320, c, "35000000.00")
    _in_force(svc, 321, d, "35000000.00")                                    # group 70m: near
    person = svc.create("individual_customer", {"name": "王强", "id_type": "resident_id", "id_no": "11010519491231002X"})
    _in_force(svc, 330, person, "46000000.00", kind="individual")
    refresh_exposures(session, models, META)
    session.commit()
    rules = ["corp_exposure_near", "corp_exposure_breach", "group_exposure_near", "group_exposure_breach",
             "person_exposure_near", "person_exposure_breach"]
    scan(session, models, META, as_of=TODAY, rules=rules)
    assert _open(session, models, "corp_exposure_near") == [near.id]
    assert _open(session, models, "corp_exposure_breach") == [over.id]
    assert _open(session, models, "group_exposure_near") == sorted([c.id, d.id])
    assert _open(session, models, "group_exposure_breach") == sorted([a.id, b.id])
    assert _open(session, models, "person_exposure_near") == [person.id]
    assert _open(session, models, "person_exposure_breach") == []
    w = models.system["danbao_warning"]
    message = session.execute(sa.select(w.c.message_zh).where(w.c.rule == "corp_exposure_near")).scalar_one()
    assert "46000000.00" in message and "9.2" in message


def test_post_check_overdue_follows_the_product_cycle(world):
    models, session, svc = world
    corp = _corp(svc, 401)
    late = _in_force(svc, 401, corp, "1000000.00", start=dt.date(2026, 5, 1))        # check due 2026-08-01
    checked = _in_force(svc, 402, corp, "1000000.00", start=dt.date(2026, 5, 1),
                        post_checks=[{"round_no": 1, "done_on": "2026-09-15", "method": "site_visit",
                                      "conclusion": "normal"}])                            # next due 2026-12-15
    recent = _in_force(svc, 403, corp, "1000000.00", start=dt.date(2026, 10, 1))      # due 2027-01-01
    released = _in_force(svc, 404, corp, "1000000.00", start=dt.date(2026, 1, 1), status="released")
    assert late.next_check_due == dt.date(2026, 8, 1) and checked.next_check_due == dt.date(2026, 12, 15)
    assert recent.next_check_due == dt.date(2027, 1, 1) and released.next_check_due is None
    worrying = _in_force(svc, 405, corp, "1000000.00", start=dt.date(2026, 8, 1), post_checks=[
        {"round_no": 1, "done_on": "2026-11-01", "method": "site_visit", "conclusion": "risk", "findings": "停产两个月"}])
    scan(session, models, META, as_of=TODAY, rules=["post_check_overdue", "post_check_risk"])
    assert _open(session, models, "post_check_overdue") == [late.id]
    assert _open(session, models, "post_check_risk") == [worrying.post_checks[0].id]
    w = models.system["danbao_warning"]
    assert "停产两个月" in session.execute(sa.select(w.c.message_zh).where(w.c.rule == "post_check_risk")).scalar_one()


def test_coverage_short_and_the_application_limit_flag(world):
    models, session, svc = world
    corp, big = _corp(svc, 501), _corp(svc, 502)
    bare = _in_force(svc, 501, corp, "1000000.00")                       # no counter-guarantee: coverage 0
    covered = _in_force(svc, 502, corp, "1000000.00", counter_guarantees=[
        {"kind": "mortgage", "asset_kind": "real_estate", "appraised_value": "1000000.00"},   # 0.70
        {"kind": "earnest", "appraised_value": "300000.00"}])                                # 1.00
    refused = _in_force(svc, 503, corp, "1000000.00", status="rejected")
    assert (bare.coverage_short, covered.coverage_short) == (True, False)
    assert covered.coverage_ratio == Decimal("1.000000")
    assert [r.covered_value for r in covered.counter_guarantees] == [Decimal("700000.00"), Decimal("300000.00")]
    _in_force(svc, 504, big, "45000000.00")
    flagged = _in_force(svc, 505, big, "10000000.00", status="applying")  # 55m for one customer: over 10%
    fine = _in_force(svc, 506, corp, "10000000.00", status="applying")
    assert flagged.limit_flag and "单一客户集中度" in flagged.limit_flag and fine.limit_flag is None
    scan(session, models, META, as_of=TODAY, rules=["coverage_short", "application_limit_flag"])
    short = _open(session, models, "coverage_short")
    assert bare.id in short and covered.id not in short and refused.id not in short
    assert _open(session, models, "application_limit_flag") == [flagged.id]


def test_asset_preservation_about_to_lapse(world):
    models, session, svc = world
    corp = _corp(svc, 601)
    project = _in_force(svc, 601, corp, "1000000.00", status="compensated", preservations=[
        {"kind": "seal", "court": "南京市玄武区人民法院", "case_no": "（2026）苏0102执保1号",
         "until_on": (TODAY + dt.timedelta(days=10)).isoformat(), "status": "active"},
        {"kind": "freeze", "case_no": "（2026）苏0102执保2号", "until_on": (TODAY + dt.timedelta(days=40)).isoformat()},
        {"kind": "seize", "case_no": "（2026）苏0102执保3号", "until_on": (TODAY + dt.timedelta(days=5)).isoformat(),
         "status": "released"}])
    scan(session, models, META, as_of=TODAY, rules=["preservation_expiring"])
    soon = next(p.id for p in project.preservations if p.case_no.endswith("1号"))
    assert _open(session, models, "preservation_expiring") == [soon]
