"""The warnings inbox: who sees which warning, the badge, acknowledging (screen and
REST), links to a child's parent record, the guard against duplicate open
warnings, and the in-server scheduler. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import logging
import random
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import CORE_PACK, REPO
from danbao.demo import make_uscc
from danbao.engines import warnings as warnings_engine
from danbao.engines.inbox import Viewer, acknowledge_visible, inbox, open_count, parse_inbox_args
from danbao.engines.records import Actor, RecordService
from danbao.engines.warnings import scan
from danbao.model.system import WARNING_OPEN_INDEX
from webfixtures import PASSWORD, add_user, csrf_from, jwt, login, make_app

INBOX_PACK = REPO / "tests" / "packs" / "inbox"
DAY = dt.date(2026, 11, 1)


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance", packs=(CORE_PACK, INBOX_PACK))
    yield app
    _dispose(app)


def _dispose(app):
    with app.app_context():
        app.extensions["danbao"].db.session.remove()
        app.extensions["danbao"].db.engine.dispose()


@pytest.fixture
def people(app):
    return {name: add_user(app, name, role) for name, role in [
        ("risk", "risk_officer"), ("pm", "project_manager"), ("am1", "finance"), ("am2", "finance"),
        ("boss", "Admin"), ("nobody", "auditor")]}


def _corp(app, seed, **kw):
    data = {"name": f"企业{seed}", "uscc": make_uscc(random.Random(seed), "320100"), "established_on": "2010-01-01"}
    data.update(kw)
    with app.app_context():
        rt = app.extensions["danbao"]
        obj = RecordService(rt.models, rt.session, Actor(None, "t")).create("corporate_customer", data)
        return obj.id


def _scan(app, rules=None, as_of=DAY):
    with app.app_context():
        rt = app.extensions["danbao"]
        return scan(rt.session, rt.models, rt.meta, as_of=as_of, rules=rules)


def _viewer(app, user_id):
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.get_user_by_id(user_id)
        return Viewer(user.id, frozenset(r.name for r in user.roles))


def _rules_seen(app, user_id, **args):
    with app.app_context():
        rt = app.extensions["danbao"]
        page = inbox(rt.session, rt.models, rt.meta, _viewer(app, user_id), parse_inbox_args(args))
        return sorted(i.rule for i in page.items)


def _count(app, user_id):
    with app.app_context():
        rt = app.extensions["danbao"]
        return open_count(rt.session, rt.models, rt.meta, _viewer(app, user_id))


@pytest.fixture
def scanned(app, people):
    """One company: tax grade D (risk officers), capital 50 with account manager am1
    (that person), a 60 % shareholder (project managers, child entity)."""
    cid = _corp(app, 1, tax_grade="D", registered_capital="50", account_manager=people["am1"],
                shareholders=[{"name": "张伟", "holder_type": "person", "share_ratio": "0.6"},
                              {"name": "李娜", "holder_type": "person", "share_ratio": "0.4"}])
    results = {r.rule: r for r in _scan(app)}
    assert results["corp_tax_grade_low"].opened == 1
    assert results["corp_small_capital"].opened == 1
    assert results["shareholder_majority"].opened == 1
    assert "corp_retired_rule" not in results          # inactive rules are not scanned
    return cid


def test_who_sees_which_warning(app, people, scanned):
    assert _rules_seen(app, people["risk"]) == ["corp_tax_grade_low"]
    assert _rules_seen(app, people["pm"]) == ["shareholder_majority"]
    assert _rules_seen(app, people["am1"]) == ["corp_small_capital"]
    assert _rules_seen(app, people["am2"]) == []
    assert _rules_seen(app, people["nobody"]) == []
    assert _rules_seen(app, people["boss"]) == ["corp_small_capital", "corp_tax_grade_low", "shareholder_majority"]
    assert [_count(app, people[n]) for n in ("risk", "pm", "am1", "am2", "nobody", "boss")] == [1, 1, 1, 0, 0, 3]
    assert _rules_seen(app, people["boss"], level="orange") == ["corp_small_capital"]
    assert _rules_seen(app, people["boss"], rule="shareholder_majority") == ["shareholder_majority"]
    assert _rules_seen(app, people["boss"], acknowledged="true") == []
    assert _rules_seen(app, people["boss"], status="closed") == []

    # the account manager changes: the warning follows the person, without a new scan
    with app.app_context():
        rt = app.extensions["danbao"]
        svc = RecordService(rt.models, rt.session, Actor(None, "t"))
        obj = svc.get("corporate_customer", scanned)
        svc.update("corporate_customer", scanned, {"account_manager": people["am2"]}, expected_version=obj.version)
    assert _rules_seen(app, people["am1"]) == [] and _count(app, people["am1"]) == 0
    assert _rules_seen(app, people["am2"]) == ["corp_small_capital"] and _count(app, people["am2"]) == 1

    # a rule no longer in the metadata: its warnings are the Admin's only
    with app.app_context():
        rt = app.extensions["danbao"]
        w = rt.models.system["danbao_warning"]
        rt.session.execute(w.insert().values(
            rule="gone_rule", entity="corporate_customer", record_id=scanned, level="red", message_zh="旧",
            message_en="old", status="open", opened_at=dt.datetime(2026, 1, 1), opened_as_of=dt.date(2026, 1, 1),
            meta_version="old"))
        rt.session.commit()
    assert "gone_rule" in _rules_seen(app, people["boss"])
    assert all("gone_rule" not in _rules_seen(app, people[n]) for n in ("risk", "pm", "am1", "am2"))


def test_acknowledging_needs_a_comment_and_visibility(app, people, scanned):
    with app.app_context():
        rt = app.extensions["danbao"]
        w = rt.models.system["danbao_warning"]
        wid = rt.session.execute(sa.select(w.c.id).where(w.c.rule == "corp_tax_grade_low")).scalar_one()
        from danbao.engines.inbox import CommentInvalid
        with pytest.raises(CommentInvalid):
            acknowledge_visible(rt.session, rt.models, rt.meta, _viewer(app, people["risk"]), wid,
                                username="risk", comment="   ")
        # not in the project manager's inbox: as if it did not exist
        assert acknowledge_visible(rt.session, rt.models, rt.meta, _viewer(app, people["pm"]), wid,
                                   username="pm", comment="看过") is None
        item = acknowledge_visible(rt.session, rt.models, rt.meta, _viewer(app, people["risk"]), wid,
                                   username="risk", comment=" 已约谈 ")
        assert item.ack_comment == "已约谈" and item.acknowledged_by == "risk"
        assert item.acknowledged_by_name.endswith("(risk)")
    assert _count(app, people["risk"]) == 0
    assert _rules_seen(app, people["risk"], acknowledged="true") == ["corp_tax_grade_low"]
    assert _rules_seen(app, people["risk"], acknowledged="false") == []


def test_screen_badge_link_to_parent_and_acknowledge(app, people, scanned):
    with app.app_context():     # the company is a customer of the project manager's project (record rules)
        rt = app.extensions["danbao"]
        RecordService(rt.models, rt.session, Actor(None, "t")).create("guarantee_project", {
            "project_no": "IB-001", "name": "收件箱项目", "customer_kind": "corporate", "corporate_customer": scanned,
            "amount": "100000", "term_months": 6, "a_manager": people["pm"]})
    c = app.test_client()
    login(c, "pm")
    page = c.get("/warnings/").get_data(as_text=True)
    assert "股东 张伟 持股 0.600000" in page
    # a shareholder is a child row: the link goes to its company's page
    assert f'href="/e/corporate_customer/{scanned}"' in page and "企业1" in page
    assert 'id="danbao-warning-badge"' in page and '>1</span>' in page
    assert "控股股东" in page and "黄色" in page
    # the badge is in the menu bar of every page, and the menu has the entry
    other = c.get(f"/e/corporate_customer/{scanned}").get_data(as_text=True)
    assert 'id="danbao-warning-badge"' in other and '<a tabindex="-1" href="/warnings/">' in other and "预警" in other
    bench = c.get("/workbench/").get_data(as_text=True)
    assert 'id="workbench-warning-count"' in bench and "股东 张伟 持股" in bench

    with app.app_context():
        rt = app.extensions["danbao"]
        w = rt.models.system["danbao_warning"]
        wid = rt.session.execute(sa.select(w.c.id).where(w.c.rule == "shareholder_majority")).scalar_one()
        other_wid = rt.session.execute(sa.select(w.c.id).where(w.c.rule == "corp_tax_grade_low")).scalar_one()
    resp = c.post(f"/warnings/{wid}/acknowledge", data={"comment": "  ", "next": "/warnings/?status=open"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/warnings/?status=open")
    assert "请填写处理意见" in c.get("/warnings/").get_data(as_text=True)
    assert c.post(f"/warnings/{other_wid}/acknowledge", data={"comment": "不是我的"}).status_code == 404
    resp = c.post(f"/warnings/{wid}/acknowledge", data={"comment": "已核实股权结构", "next": "https://evil.example/"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/warnings/")
    page = c.get("/warnings/").get_data(as_text=True)
    assert "已确认预警" in page and "已核实股权结构" in page and "(pm)" in page
    assert 'id="danbao-warning-badge"' not in page          # nothing left unacknowledged

    # the condition stops holding: the warning is closed and kept as history
    with app.app_context():
        rt = app.extensions["danbao"]
        sh = rt.models.table("shareholder")
        rt.session.execute(sh.update().where(sh.c.name == "张伟").values(share_ratio="0.5"))
        rt.session.commit()
    _scan(app, ["shareholder_majority"])
    assert "暂无预警" in c.get("/warnings/").get_data(as_text=True)
    history = c.get("/warnings/?status=closed").get_data(as_text=True)
    assert "已解除" in history and "已核实股权结构" in history

    c.get("/lang/en")
    page = c.get("/warnings/?status=all").get_data(as_text=True)
    assert "My warnings" in page and "Shareholder 张伟 holds 0.600000" in page and "Closed" in page
    assert c.get("/warnings/?level=purple").status_code == 200     # a bad filter is a message, not an error

    anonymous = app.test_client()
    assert anonymous.get("/warnings/").status_code == 302


def test_acknowledge_form_refuses_posts_without_csrf(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "csrf", packs=(CORE_PACK, INBOX_PACK), WTF_CSRF_ENABLED=True)
    try:
        add_user(app, "risk", "risk_officer")
        _corp(app, 3, tax_grade="C")
        _scan(app, ["corp_tax_grade_low"])
        c = app.test_client()
        page = c.get("/login/").get_data(as_text=True)
        c.post("/login/", data={"username": "risk", "password": PASSWORD, "csrf_token": csrf_from(page)})
        page = c.get("/warnings/").get_data(as_text=True)
        wid = int(page.split('id="warning-')[1].split('"')[0])
        assert c.post(f"/warnings/{wid}/acknowledge", data={"comment": "看过"}).status_code == 400
        resp = c.post(f"/warnings/{wid}/acknowledge", data={"comment": "看过", "csrf_token": csrf_from(page)})
        assert resp.status_code == 302
        assert "看过" in c.get("/warnings/?acknowledged=true").get_data(as_text=True)
    finally:
        _dispose(app)


def test_rest_inbox_and_acknowledge(app, people, scanned):
    c = app.test_client()
    assert c.get("/api/v1/warnings/").status_code == 401
    h = jwt(c, "risk")
    body = c.get("/api/v1/warnings/", headers=h).get_json()
    assert body["count"] == 1 and body["page"] == 1
    [item] = body["result"]
    assert item["rule"] == "corp_tax_grade_low" and item["level"] == "red" and item["status"] == "open"
    assert item["link"] == f"/e/corporate_customer/{scanned}" and item["message"] == "企业1 纳税信用等级为 D 级"
    assert item["opened_as_of"] == DAY.isoformat() and item["acknowledged_at"] is None
    en = c.get("/api/v1/warnings/", headers=dict(h, **{"Accept-Language": "en"})).get_json()
    assert en["result"][0]["message"] == "企业1 has tax credit grade D"
    bad = c.get("/api/v1/warnings/?status=done&page=0", headers=h)
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"status", "page"}

    wid = item["id"]
    resp = c.post(f"/api/v1/warnings/{wid}/acknowledge", json={}, headers=h)
    assert resp.status_code == 422 and "comment" in resp.get_json()["errors"]
    resp = c.post(f"/api/v1/warnings/{wid}/acknowledge", json={"comment": ""}, headers=h)
    assert resp.status_code == 422
    resp = c.post(f"/api/v1/warnings/{wid}/acknowledge", data="{not json", headers=h)
    assert resp.status_code == 400
    hp = jwt(c, "pm")
    assert c.post(f"/api/v1/warnings/{wid}/acknowledge", json={"comment": "x"}, headers=hp).status_code == 404
    assert c.post("/api/v1/warnings/99999/acknowledge", json={"comment": "x"}, headers=h).status_code == 404
    assert c.post("/api/v1/warnings/abc/acknowledge", json={"comment": "x"}, headers=h).status_code == 404
    resp = c.post(f"/api/v1/warnings/{wid}/acknowledge", json={"comment": "已约谈企业负责人"}, headers=h)
    assert resp.status_code == 200, resp.get_json()
    result = resp.get_json()["result"]
    assert result["acknowledged_by"] == "risk" and result["ack_comment"] == "已约谈企业负责人"
    assert c.get("/api/v1/warnings/?acknowledged=false", headers=h).get_json()["count"] == 0
    assert c.get("/api/v1/warnings/?acknowledged=true", headers=h).get_json()["count"] == 1

    spec = c.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/warnings/" in spec["paths"] and "/api/v1/warnings/{warning_id}/acknowledge" in spec["paths"]


# -- no duplicate open warnings ------------------------------------------------------------

def test_two_sessions_cannot_both_open_the_same_warning(app):
    with app.app_context():
        engine = app.extensions["danbao"].db.engine
        w = app.extensions["danbao"].models.system["danbao_warning"]
    row = dict(rule="r", entity="corporate_customer", record_id=1, level="red", message_zh="甲", message_en="a",
               status="open", opened_at=dt.datetime(2026, 11, 1), opened_as_of=DAY, meta_version="1")
    with Session(engine) as one, Session(engine) as two:
        one.execute(w.insert().values(**row))
        one.commit()
        with pytest.raises(sa.exc.IntegrityError):
            two.execute(w.insert().values(**row))
            two.commit()
        two.rollback()
        # closed ones are history: as many as there were
        two.execute(w.insert().values(**dict(row, status="closed")))
        two.execute(w.insert().values(**dict(row, status="closed")))
        two.commit()
        counts = dict(one.execute(sa.select(w.c.status, sa.func.count()).group_by(w.c.status)).all())
    assert counts == {"open": 1, "closed": 2}


class _Records(logging.Handler):
    """Log lines of one logger (the suite runs with ``-p no:logging``: no caplog)."""

    def __init__(self, name, level):
        super().__init__(level)
        self.lines, self.logger = [], logging.getLogger(name)

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        self.saved = self.logger.level
        self.logger.setLevel(self.level)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved)

    @property
    def text(self):
        return "\n".join(self.lines)


def test_a_scan_that_loses_the_race_rolls_back_and_does_not_crash(app, monkeypatch):
    """Another process opens the same warning between our reading the open
    warnings and our insert: ours is refused, the rule is scanned again."""
    cid = _corp(app, 4, tax_grade="D")
    with app.app_context():
        rt = app.extensions["danbao"]
        engine = rt.db.engine
        w = rt.models.system["danbao_warning"]
    original = warnings_engine._open
    raced = []

    def racing_open(session, models, meta, rule, em, table, new, now):
        if not raced:
            raced.append(True)
            with Session(engine) as other:      # the other process, committing first
                other.execute(w.insert().values(
                    rule=rule.code, entity=rule.entity, record_id=cid, level=rule.level, message_zh="他",
                    message_en="other", status="open", opened_at=now, opened_as_of=DAY, meta_version="1"))
                other.commit()
        return original(session, models, meta, rule, em, table, new, now)

    monkeypatch.setattr(warnings_engine, "_open", racing_open)
    with _Records("danbao.engines.warnings", logging.WARNING) as logged:
        [result] = _scan(app, ["corp_tax_grade_low"])
    assert raced and result.opened == 0 and result.matched == 1
    assert "concurrent scan" in logged.text
    with app.app_context():
        rt = app.extensions["danbao"]
        rows = rt.session.execute(sa.select(w.c.status, w.c.message_zh).where(w.c.rule == "corp_tax_grade_low")).all()
    assert [tuple(r) for r in rows] == [("open", "他")]


def test_existing_databases_get_the_index_and_lose_their_duplicates(database_url, tmp_path):
    from danbao.meta.loader import load_packs
    from danbao.model.builder import build_models
    from danbao.model.engine import make_engine
    from danbao.model.migrate import ensure_schema, plan_migration
    models = build_models(load_packs([CORE_PACK]))
    engine = make_engine(database_url)
    ensure_schema(engine, models)
    w = models.system["danbao_warning"]
    state = models.system["danbao_schema_state"]
    row = dict(rule="r", entity="corporate_customer", record_id=1, level="red", message_zh="甲", message_en="a",
               status="open", opened_at=dt.datetime(2026, 11, 1), opened_as_of=DAY, meta_version="1")
    with engine.begin() as conn:     # a database from before the index, where two scans once raced
        conn.execute(sa.text(f"DROP INDEX {WARNING_OPEN_INDEX}"))
        conn.execute(state.update().values(digest="from-an-older-version"))
        conn.execute(w.insert(), [row, row, dict(row, record_id=2)])
    plan = plan_migration(engine, models)
    assert [op.describe("en") for op in plan] == [
        f"add index {WARNING_OPEN_INDEX} on system table danbao_warning (rule, record_id)"]
    assert plan.refusals(allow_destructive=False) == []
    ensure_schema(engine, models)
    with engine.connect() as conn:
        assert WARNING_OPEN_INDEX in {ix["name"] for ix in sa.inspect(conn).get_indexes("danbao_warning")}
        rows = conn.execute(sa.select(w.c.id, w.c.record_id, w.c.status).order_by(w.c.id)).all()
    assert [(r.record_id, r.status) for r in rows] == [(1, "open"), (1, "closed"), (2, "open")]
    assert plan_migration(engine, models).operations == []
    with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(w.insert().values(**row))
    engine.dispose()


# -- the scheduler -------------------------------------------------------------------------

def _settings(database_url, tmp_path, **kw):
    from danbao.config import Settings
    return Settings(instance_dir=tmp_path / "sched", database_url=database_url, packs=(CORE_PACK, INBOX_PACK),
                    secret_key="sched-test-secret-0123456789abcdef", testing=True,
                    extra={"WTF_CSRF_ENABLED": False}, **kw)


def test_scheduler_jobs_per_active_rule_run_scans_and_stop_on_swap(database_url, tmp_path):
    from danbao.app import create_app
    from danbao.web.switch import AppSwitcher
    settings = _settings(database_url, tmp_path, scheduler=True)
    switcher = AppSwitcher(lambda meta=None: create_app(settings, meta=meta))
    first = switcher.app
    try:
        sched = first.extensions["danbao_scheduler"]
        assert sched.running
        intervals = sched.intervals()
        meta = first.extensions["danbao"].meta
        assert intervals == {r.code: dt.timedelta(minutes=r.every_minutes) for r in meta.warnings.values() if r.active}
        assert intervals["corp_tax_grade_low"] == dt.timedelta(days=1)
        assert intervals["corp_small_capital"] == dt.timedelta(hours=1)
        assert intervals["shareholder_majority"] == dt.timedelta(minutes=5)
        assert "corp_retired_rule" not in intervals                      # inactive
        soonest = min(job.next_run_time for job in sched.scheduler.get_jobs())
        assert soonest > dt.datetime.now(soonest.tzinfo)                 # nothing runs at once on start

        _corp(first, 5, tax_grade="D")
        sched.run_soon("corp_tax_grade_low")
        with first.app_context():
            rt = first.extensions["danbao"]
            w = rt.models.system["danbao_warning"]
            scans = rt.models.system["danbao_warning_scan"]
            engine = rt.db.engine
        deadline = time.monotonic() + 20
        found = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.2)
            with engine.connect() as conn:
                found = conn.execute(sa.select(w.c.rule).where(w.c.status == "open")).scalars().all()
        assert found == ["corp_tax_grade_low"]
        with engine.connect() as conn:
            [as_of] = conn.execute(sa.select(scans.c.as_of)).scalars().all()
        from danbao.config import local_tz
        assert abs((as_of - dt.datetime.now(local_tz()).date()).days) <= 1

        assert sched.run_rule("no_such_rule") == []     # a rule gone from the metadata scans nothing

        second = switcher.reload()
        assert not sched.running and "danbao_scheduler" not in first.extensions
        new = second.extensions["danbao_scheduler"]
        assert new.running and new is not sched
        # a rule scanned a moment ago waits its whole interval again
        job = new.scheduler.get_job("warning:corp_tax_grade_low")
        assert job.next_run_time > dt.datetime.now(job.next_run_time.tzinfo) + dt.timedelta(hours=23)
    finally:
        for a in (first, switcher.app):
            from danbao.scheduler import stop_for
            stop_for(a)
            _dispose(a)


def test_scheduler_is_off_unless_asked(database_url, tmp_path, monkeypatch):
    from danbao.config import Settings
    app = make_app(database_url, tmp_path / "inst")
    try:
        assert "danbao_scheduler" not in app.extensions
    finally:
        _dispose(app)
    monkeypatch.delenv("DANBAO_SCHEDULER", raising=False)
    assert Settings.from_env(tmp_path / "env").scheduler is True
    monkeypatch.setenv("DANBAO_SCHEDULER", "0")
    assert Settings.from_env(tmp_path / "env").scheduler is False
    monkeypatch.setenv("DANBAO_SCHEDULER", "maybe")
    with pytest.raises(ValueError):
        Settings.from_env(tmp_path / "env")


def test_a_failing_job_logs_and_returns(database_url, tmp_path):
    from danbao.scheduler import WarningScheduler
    from danbao.meta.loader import load_packs
    from danbao.model.builder import build_models
    from danbao.model.engine import make_engine
    from zoneinfo import ZoneInfo
    models = build_models(load_packs([CORE_PACK]))
    engine = make_engine(database_url)   # no tables: the scan fails
    sched = WarningScheduler(engine, models, models.meta, ZoneInfo("Asia/Shanghai"))
    with _Records("danbao.scheduler", logging.ERROR) as logged:
        assert sched.run_rule("corp_tax_grade_low") is None
    assert "scheduled warning scan corp_tax_grade_low failed" in logged.text
    engine.dispose()
