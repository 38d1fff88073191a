"""Warning scans: SQL pushdown, no duplicates, closing, missed days, acknowledgement."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import CORE_PACK
from danbao.engines.records import Actor, RecordService
from danbao.engines.warnings import acknowledge, scan
from danbao.meta.loader import load_packs
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import ensure_schema
from danbao.demo import make_resident_id, make_uscc


@pytest.fixture
def world(database_url):
    meta = load_packs([CORE_PACK])
    models = build_models(meta)
    engine = make_engine(database_url)
    ensure_schema(engine, models)
    session = Session(engine)
    yield meta, models, session
    session.close()
    engine.dispose()


def _corp(svc, i, **kw):
    import random
    data = {"name": f"企业{i}", "uscc": make_uscc(random.Random(i), "320100")}
    data.update(kw)
    return svc.create("corporate_customer", data).id


def _open(session, models, rule):
    w = models.system["danbao_warning"]
    return sorted(r[0] for r in session.execute(sa.select(w.c.record_id).where(w.c.rule == rule, w.c.status == "open")))


def test_scan_opens_keeps_and_closes_without_duplicates(world):
    meta, models, session = world
    svc = RecordService(models, session, Actor(None, "t"))
    low = _corp(svc, 1, tax_grade="D")
    mid = _corp(svc, 2, tax_grade="C")
    _corp(svc, 3, tax_grade="A")
    _corp(svc, 4)
    day = dt.date(2026, 11, 1)
    [r] = scan(session, models, meta, as_of=day, rules=["corp_tax_grade_low"])
    assert (r.matched, r.opened, r.closed) == (2, 2, 0)
    assert _open(session, models, "corp_tax_grade_low") == [low, mid]
    [r] = scan(session, models, meta, as_of=day, rules=["corp_tax_grade_low"])
    assert (r.opened, r.closed) == (0, 0)                 # no duplicates
    obj = svc.get("corporate_customer", mid)
    svc.update("corporate_customer", mid, {"tax_grade": "B"}, expected_version=obj.version)
    [r] = scan(session, models, meta, as_of=day, rules=["corp_tax_grade_low"])
    assert (r.matched, r.opened, r.closed) == (1, 0, 1)
    assert _open(session, models, "corp_tax_grade_low") == [low]
    w = models.system["danbao_warning"]
    row = session.execute(sa.select(w).where(w.c.record_id == low, w.c.rule == "corp_tax_grade_low")).first()
    assert row.message_zh == "企业1 纳税信用等级为 D 级" and row.level == "red"
    assert acknowledge(session, models, row.id, user="risk", comment="已约谈企业负责人")
    assert session.execute(sa.select(w.c.ack_comment).where(w.c.id == row.id)).scalar() == "已约谈企业负责人"
    closed = session.execute(sa.select(sa.func.count()).select_from(w).where(w.c.status == "closed")).scalar()
    assert closed == 1                                     # history is kept


def test_a_date_rule_true_only_between_scans_is_not_skipped(world):
    """Scans run on 2026-11-01 and then not until 2026-11-20. A company entered in
    between, founded 2025-11-08, was 'less than a year old' on 2026-11-02..07 only:
    the second scan still reports it (opened as of the first day it held, then
    closed), instead of silently skipping it."""
    meta, models, session = world
    svc = RecordService(models, session, Actor(None, "t"))
    _corp(svc, 6, established_on="2020-01-01")
    scan(session, models, meta, as_of=dt.date(2026, 11, 1), rules=["corp_newly_founded"])
    young = _corp(svc, 5, established_on="2025-11-08")
    [r] = scan(session, models, meta, as_of=dt.date(2026, 11, 20), rules=["corp_newly_founded"])
    assert (r.matched, r.opened, r.closed) == (0, 1, 1)
    w = models.system["danbao_warning"]
    row = session.execute(sa.select(w).where(w.c.rule == "corp_newly_founded")).one()
    assert row.record_id == young and row.status == "closed" and row.opened_as_of == dt.date(2026, 11, 2)


def test_sql_scan_agrees_with_python_evaluation(world):
    meta, models, session = world
    svc = RecordService(models, session, Actor(None, "t"))
    import random
    rng = random.Random(3)
    for i in range(40):
        income = rng.choice([None, "0", "100000", "250000"])
        svc.create("individual_customer", {
            "name": f"客户{i}", "id_type": "resident_id",
            "id_no": make_resident_id(rng, "320100", dt.date(1980, 1, 1 + i % 28), True),
            "annual_income": income, "total_debt": rng.choice([None, "0", "50000", "200000", "400000"])})
    [r] = scan(session, models, meta, as_of=dt.date(2026, 11, 1), rules=["person_debt_to_income_high"])
    rule = meta.expressions["warning:person_debt_to_income_high"]
    cls = models.cls("individual_customer")
    expected = sorted(o.id for o in session.execute(sa.select(cls)).scalars()
                      if rule.evaluate({"debt_to_income": o.debt_to_income}, today=dt.date(2026, 11, 1)) is True)
    assert _open(session, models, "person_debt_to_income_high") == expected and r.matched == len(expected) > 0
