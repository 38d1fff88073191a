"""Data permissions (数据权限, issue 10 finding 11): record rules from the core pack.

A project manager lists, counts, opens, edits and searches only his projects
(engine, REST and screens, with CSRF on); a department head his department's
and the departments below; the auditor reads everything and writes nothing;
a record outside the read scope is 404, outside the write scope DP001; a save
that hands a project to somebody else is DP002; a user field refuses a user
without its role (DP003). Then a control matrix generated from the metadata:
every core role × entity × read/write/delete × record, through the record
service and REST. On SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import itertools
import random
import re

import pytest
import sqlalchemy as sa

from conftest import CORE_PACK
from danbao.demo import make_uscc
from danbao.engines.inbox import Viewer, inbox, open_count
from danbao.engines.query import ListQuery, lookup, run_list
from danbao.engines.record_rules import OutOfScope, RecordAccess, role_scope
from danbao.engines.records import Actor, NotFound, RecordService, ValidationFailed
from danbao.model.system import WARNING_TABLE
from webfixtures import PASSWORD, add_user, jwt, make_app

NOW = dt.datetime(2026, 12, 1, 10, 0)          # the frozen clock of every engine write here
PROJECT = "guarantee_project"

#: who is who: one login per role, plus three project managers in a department tree
CAST = {"pm1": "project_manager", "pm2": "project_manager", "pm3": "project_manager",
        "head1": "department_head", "head2": "department_head", "risk": "risk_officer",
        "comm": "committee_member", "fin": "finance", "boss": "manager", "audit": "auditor", "root": "Admin"}
#: 业务一部 (head1; pm1), 业务二部 (head2; pm2) and below it 业务二部一组 (pm3)
DEPARTMENT_PEOPLE = {"head1": {"head1", "pm1"}, "head2": {"head2", "pm2", "pm3"}}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    from wfapifixtures import dispose
    app = make_app(module_database_url, tmp_path_factory.mktemp("instance"), WTF_CSRF_ENABLED=True)
    app.ids = {name: add_user(app, name, role) for name, role in CAST.items()}
    client = app.test_client()
    app.tokens = {name: jwt(client, name) for name in CAST}
    app.rec = _seed(app)
    yield app
    dispose(app)


def _system(app) -> RecordService:
    rt = app.extensions["danbao"]
    return RecordService(rt.models, rt.session, Actor(None, "seed"), clock=lambda: NOW)


def _as(app, who: str) -> RecordService:
    rt = app.extensions["danbao"]
    uid = app.ids[who]
    return RecordService(rt.models, rt.session, Actor(uid, who), clock=lambda: NOW,
                         access=RecordAccess.for_user(rt.session, rt.models, uid))


def _seed(app) -> dict[str, int]:
    ids = app.ids
    with app.app_context():
        svc = _system(app)
        d1 = svc.create("department", {"name": "业务一部", "head": ids["head1"], "members": [{"member": ids["pm1"]}]})
        d2 = svc.create("department", {"name": "业务二部", "head": ids["head2"], "members": [{"member": ids["pm2"]}]})
        d2a = svc.create("department", {"name": "业务二部一组", "parent_department": d2.id,
                                        "members": [{"member": ids["pm3"], "position": "客户经理"}]})
        corp = {n: svc.create("corporate_customer", {"name": f"权限企业{n}", "uscc": make_uscc(random.Random(70 + n), "320100")}).id
                for n in (1, 2)}
        c4 = _as(app, "pm1").create("corporate_customer", {"name": "权限企业4（张经理新建）",
                                                           "uscc": make_uscc(random.Random(74), "320100")}).id
        ind = svc.create("individual_customer", {"name": "权限个人", "id_type": "resident_id",
                                                 "id_no": "110101199003071233"}).id
        p1 = _project(svc, 1, ids["pm1"], None, corporate=corp[1])
        p2 = _project(svc, 2, ids["pm2"], ids["pm3"], corporate=corp[2])
        p3 = _project(svc, 3, ids["pm3"], None, individual=ind)
        bank = svc.create("bank", {"name": "权限银行"}).id
    return {"p1": p1, "p2": p2, "p3": p3, "c1": corp[1], "c2": corp[2], "c4": c4, "i1": ind, "bank": bank,
            "d1": d1.id, "d2": d2.id, "d2a": d2a.id}


def _project(svc, n, a, b, *, corporate=None, individual=None) -> int:
    data = {"project_no": f"QX-{n:03d}", "name": f"权限项目{n}", "amount": "1000000", "term_months": 12,
            "a_manager": a, "b_manager": b}
    if corporate:
        data.update(customer_kind="corporate", corporate_customer=corporate)
    else:
        data.update(customer_kind="individual", individual_customer=individual)
    return svc.create(PROJECT, data).id


def _ids(rows) -> set[int]:
    return {r.id for r in rows}


# -- the engine ------------------------------------------------------------------------------
def test_a_project_manager_lists_counts_and_looks_up_only_his_own(app):
    rec = app.rec
    rt = app.extensions["danbao"]
    with app.app_context():
        access = RecordAccess.for_user(rt.session, rt.models, app.ids["pm1"])
        em = rt.meta.entity(PROJECT)
        page = run_list(rt.session, rt.models, em, ListQuery(), access=access)
        assert (page.total, _ids(page.rows)) == (1, {rec["p1"]})
        everything = run_list(rt.session, rt.models, em, ListQuery())        # the system sees all three
        assert everything.total == 3
        corp = run_list(rt.session, rt.models, rt.meta.entity("corporate_customer"), ListQuery(), access=access)
        assert _ids(corp.rows) == {rec["c1"], rec["c4"]}       # his project's customer and the one he created
        assert run_list(rt.session, rt.models, rt.meta.entity("individual_customer"), ListQuery(),
                        access=access).total == 0
        picked = lookup(rt.session, rt.models, rt.meta.entity("corporate_customer"), "权限", access=access)
        assert {i for i, _ in picked} == {rec["c1"], rec["c4"]}
        searched = run_list(rt.session, rt.models, em, ListQuery(q="权限项目"), access=access)
        assert _ids(searched.rows) == {rec["p1"]}


def test_a_b_manager_sees_the_project_he_assists(app):
    rt = app.extensions["danbao"]
    with app.app_context():
        access = RecordAccess.for_user(rt.session, rt.models, app.ids["pm3"])
        page = run_list(rt.session, rt.models, rt.meta.entity(PROJECT), ListQuery(), access=access)
        assert _ids(page.rows) == {app.rec["p2"], app.rec["p3"]}


def test_a_department_head_sees_his_department_and_below(app):
    rec = app.rec
    rt = app.extensions["danbao"]
    with app.app_context():
        for head, projects, customers in (("head1", {"p1"}, {"c1", "c4"}), ("head2", {"p2", "p3"}, {"c2"})):
            access = RecordAccess.for_user(rt.session, rt.models, app.ids[head])
            page = run_list(rt.session, rt.models, rt.meta.entity(PROJECT), ListQuery(), access=access)
            assert _ids(page.rows) == {rec[p] for p in projects}, head
            corp = run_list(rt.session, rt.models, rt.meta.entity("corporate_customer"), ListQuery(), access=access)
            assert _ids(corp.rows) == {rec[c] for c in customers}, head
        access = RecordAccess.for_user(rt.session, rt.models, app.ids["head2"])
        assert sorted(access.department_users()) == sorted(app.ids[n] for n in ("head2", "pm2", "pm3"))


def test_out_of_scope_is_not_found_and_writes_are_refused_with_codes(app):
    rec = app.rec
    rt = app.extensions["danbao"]
    with app.app_context():
        pm1 = _as(app, "pm1")
        with pytest.raises(NotFound) as raised:
            pm1.get(PROJECT, rec["p2"])
        assert raised.value.code == "RC003"
        with pytest.raises(NotFound):
            pm1.update(PROJECT, rec["p2"], {"name": "改名"}, expected_version=1)
        with pytest.raises(NotFound):
            pm1.delete(PROJECT, rec["p2"])
        audit = _as(app, "audit")
        p2 = audit.get(PROJECT, rec["p2"])                        # the auditor reads everything
        with pytest.raises(OutOfScope) as refused:
            audit.update(PROJECT, rec["p2"], {"name": "稽核改名"}, expected_version=p2.version)
        assert (refused.value.code, refused.value.status) == ("DP001", 403)
        rt.session.rollback()
        assert _system(app).get(PROJECT, rec["p2"]).name == "权限项目2"


def test_a_project_manager_cannot_hand_his_project_to_someone_else(app):
    rec = app.rec
    rt = app.extensions["danbao"]
    with app.app_context():
        before = rt.session.execute(sa.select(sa.func.count()).select_from(rt.models.table(PROJECT))).scalar_one()
        pm1 = _as(app, "pm1")
        with pytest.raises(OutOfScope) as refused:
            pm1.create(PROJECT, {"project_no": "QX-900", "name": "替人建", "amount": "100000", "term_months": 6,
                                 "customer_kind": "corporate", "corporate_customer": rec["c1"],
                                 "a_manager": app.ids["pm2"]})
        assert (refused.value.code, refused.value.status, refused.value.field) == ("DP002", 422, "a_manager")
        after = rt.session.execute(sa.select(sa.func.count()).select_from(rt.models.table(PROJECT))).scalar_one()
        assert after == before
        p1 = pm1.get(PROJECT, rec["p1"])
        with pytest.raises(OutOfScope) as refused:
            pm1.update(PROJECT, rec["p1"], {"a_manager": app.ids["pm2"]}, expected_version=p1.version)
        assert refused.value.code == "DP002"
        assert _system(app).get(PROJECT, rec["p1"]).a_manager_id == app.ids["pm1"]


def test_user_fields_refuse_a_user_without_the_role(app):
    rec = app.rec
    with app.app_context():
        risk = _as(app, "risk")
        p1 = risk.get(PROJECT, rec["p1"])
        with pytest.raises(ValidationFailed) as refused:
            risk.update(PROJECT, rec["p1"], {"b_manager": app.ids["audit"]}, expected_version=p1.version)
        assert (refused.value.code, refused.value.status, refused.value.field) == ("DP003", 422, "b_manager")
        assert refused.value.errors["b_manager"].zh == "所选用户不是项目经理，不能担任此职"
        app.extensions["danbao"].session.rollback()
        assert _system(app).get(PROJECT, rec["p1"]).b_manager_id is None
        with pytest.raises(ValidationFailed) as both:
            risk.update(PROJECT, rec["p1"], {"b_manager": app.ids["audit"], "amount": "-1"}, expected_version=p1.version)
        assert both.value.code == "RC001"                 # other errors too: the generic code
        app.extensions["danbao"].session.rollback()


def test_the_inbox_shows_only_warnings_of_readable_records(app):
    rec = app.rec
    rt = app.extensions["danbao"]
    with app.app_context():
        w = rt.models.system[WARNING_TABLE]
        rows = [{"rule": "project_due_soon", "entity": PROJECT, "record_id": rec[p], "level": "yellow",
                 "message_zh": f"{p} 将到期", "message_en": f"{p} due", "status": "open", "opened_at": NOW,
                 "opened_as_of": NOW.date(), "meta_version": "t"} for p in ("p1", "p2", "p3")]
        rt.session.execute(w.insert(), rows)
        rt.session.commit()
        try:
            def seen(who):
                uid = app.ids[who]
                access = RecordAccess.for_user(rt.session, rt.models, uid)
                viewer = Viewer(uid, access.roles, access=access)
                return ({i.record_id for i in inbox(rt.session, rt.models, rt.meta, viewer).items},
                        open_count(rt.session, rt.models, rt.meta, viewer))
            assert seen("pm1") == ({rec["p1"]}, 1)
            assert seen("pm3") == ({rec["p2"], rec["p3"]}, 2)
            assert seen("head2") == (set(), 0)           # the rule notifies project managers, not heads
        finally:
            rt.session.execute(w.delete())
            rt.session.commit()


def test_whoever_an_approval_asks_may_read_the_record_but_not_write_it(app):
    """A task on a project (another manager signing for it) opens it for reading, not for writing."""
    rec = app.rec
    rt = app.extensions["danbao"]
    client = app.test_client()
    assert client.get(f"/api/v1/guarantee_project/{rec['p1']}", headers=app.tokens["pm2"]).status_code == 404
    with app.app_context():
        inst, task = rt.models.system["danbao_wf_instance"], rt.models.system["danbao_wf_task"]
        iid = rt.session.execute(inst.insert().values(
            workflow="project_standard", workflow_version="t", digest="t", definition="{}", entity=PROJECT,
            record_id=rec["p1"], state="running", step="manager_sign", round=1, step_entered_at=NOW,
            started_by_id=app.ids["pm1"], started_by="pm1", started_at=NOW, lock=0)).inserted_primary_key[0]
        rt.session.execute(task.insert().values(instance_id=iid, step="manager_sign", round=1, position=0,
                                                user_id=app.ids["pm2"], status="open", created_at=NOW))
        rt.session.commit()
    try:
        got = client.get(f"/api/v1/guarantee_project/{rec['p1']}", headers=app.tokens["pm2"])
        assert got.status_code == 200
        put = client.put(f"/api/v1/guarantee_project/{rec['p1']}", json={"name": "代签改名",
                         "version": got.get_json()["result"]["version"]}, headers=app.tokens["pm2"])
        assert (put.status_code, put.get_json()["code"]) == (403, "DP001")
        listed = client.get("/api/v1/guarantee_project/", headers=app.tokens["pm2"]).get_json()
        assert sorted(r["id"] for r in listed["result"]) == sorted([rec["p1"], rec["p2"]])
    finally:
        with app.app_context():
            rt.session.execute(task.delete())
            rt.session.execute(inst.delete())
            rt.session.commit()
    assert client.get(f"/api/v1/guarantee_project/{rec['p1']}", headers=app.tokens["pm2"]).status_code == 404
    with app.app_context():
        assert _system(app).get(PROJECT, rec["p1"]).name == "权限项目1"


# -- REST --------------------------------------------------------------------------------------
def test_rest_lists_gets_and_refuses_by_scope(app):
    rec = app.rec
    client = app.test_client()
    listed = client.get("/api/v1/guarantee_project/", headers=app.tokens["pm1"]).get_json()
    assert (listed["count"], [r["id"] for r in listed["result"]]) == (1, [rec["p1"]])
    searched = client.get("/api/v1/guarantee_project/?name__contains=权限", headers=app.tokens["pm2"]).get_json()
    assert [r["id"] for r in searched["result"]] == [rec["p2"]]
    assert client.get(f"/api/v1/guarantee_project/{rec['p2']}", headers=app.tokens["pm1"]).status_code == 404
    resp = client.put(f"/api/v1/guarantee_project/{rec['p2']}", json={"name": "偷改", "version": 1},
                      headers=app.tokens["pm1"])
    assert (resp.status_code, resp.get_json()["code"]) == (404, "RC003")
    version = client.get(f"/api/v1/guarantee_project/{rec['p2']}", headers=app.tokens["audit"]).get_json()
    resp = client.put(f"/api/v1/guarantee_project/{rec['p2']}",
                      json={"name": "稽核改", "version": version["result"]["version"]}, headers=app.tokens["audit"])
    assert resp.status_code == 403                     # the auditor has no write permission at all
    resp = client.put(f"/api/v1/guarantee_project/{rec['p1']}",
                      json={"b_manager": app.ids["audit"], "version": _version(app, "p1")}, headers=app.tokens["risk"])
    body = resp.get_json()
    assert (resp.status_code, body["code"], sorted(body["errors"])) == (422, "DP003", ["b_manager"])
    resp = client.put(f"/api/v1/guarantee_project/{rec['p1']}",
                      json={"a_manager": app.ids["pm2"], "version": _version(app, "p1")}, headers=app.tokens["pm1"])
    assert (resp.status_code, resp.get_json()["code"], resp.get_json()["field"]) == (422, "DP002", "a_manager")
    ok = client.put(f"/api/v1/guarantee_project/{rec['p1']}",
                    json={"name": "权限项目1", "b_manager": app.ids["pm3"], "version": _version(app, "p1")},
                    headers=app.tokens["pm1"])
    assert ok.status_code == 200 and ok.get_json()["result"]["b_manager"] == app.ids["pm3"]
    # pm3 is now B角 of p1 too: he sees it; set it back
    assert client.get(f"/api/v1/guarantee_project/{rec['p1']}", headers=app.tokens["pm3"]).status_code == 200
    back = client.put(f"/api/v1/guarantee_project/{rec['p1']}", json={"b_manager": None, "version": _version(app, "p1")},
                      headers=app.tokens["pm1"])
    assert back.status_code == 200
    assert client.get(f"/api/v1/guarantee_project/{rec['p1']}", headers=app.tokens["pm3"]).status_code == 404


def _version(app, key) -> int:
    rt = app.extensions["danbao"]
    with app.app_context():
        table = rt.models.table(PROJECT)
        return rt.session.execute(sa.select(table.c.version).where(table.c.id == app.rec[key])).scalar_one()


def test_rest_workflow_and_ledger_of_another_managers_project_do_not_exist(app):
    rec = app.rec
    client = app.test_client()
    resp = client.post(f"/api/v1/guarantee_project/{rec['p2']}/workflow", json={}, headers=app.tokens["pm1"])
    assert resp.status_code == 404
    assert client.get(f"/api/v1/guarantee_project/{rec['p2']}/workflow", headers=app.tokens["pm1"]).status_code == 404
    assert client.get(f"/api/v1/guarantee_project/{rec['p2']}/ledger", headers=app.tokens["pm1"]).status_code == 404
    assert client.get(f"/api/v1/guarantee_project/{rec['p1']}/ledger", headers=app.tokens["pm1"]).status_code == 200


# -- screens (a real login, CSRF on) -----------------------------------------------------------
def _login(client, who: str):
    page = client.get("/login/").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)
    resp = client.post("/login/", data={"username": who, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code in (302, 303)
    return client


def test_screens_list_open_edit_and_pick_by_scope(app):
    rec = app.rec
    client = _login(app.test_client(), "pm1")
    listing = client.get("/e/guarantee_project/").get_data(as_text=True)
    assert "QX-001" in listing and "QX-002" not in listing and "QX-003" not in listing
    assert client.get(f"/e/guarantee_project/{rec['p1']}").status_code == 200
    assert client.get(f"/e/guarantee_project/{rec['p2']}").status_code == 404
    assert client.get(f"/e/guarantee_project/{rec['p2']}/edit").status_code == 404
    form = client.get(f"/e/guarantee_project/{rec['p1']}/edit").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', form).group(1)
    # a project manager may not delete projects at all (permissions): 403 whoever's it is
    assert client.post(f"/e/guarantee_project/{rec['p2']}/delete", data={"csrf_token": token}).status_code == 403
    picked = client.get("/e/corporate_customer/lookup?q=权限").get_json()
    assert {r["id"] for r in picked["results"]} == {rec["c1"], rec["c4"]}
    # the B角 picker offers project managers only: not the auditor, the risk officer or a head
    select = re.search(r'<select[^>]*name="b_manager".*?</select>', form, re.S).group(0)
    offered = {int(v) for v in re.findall(r'<option value="(\d+)"', select)}
    assert offered == {app.ids[n] for n in ("pm1", "pm2", "pm3")}
    workbench = client.get("/workbench/").get_data(as_text=True)
    counts = dict(re.findall(r'href="/e/([a-z_]+)/".*?<div class="panel-body">(\d+) ', workbench, re.S))
    assert (counts.get("guarantee_project"), counts.get("corporate_customer")) == ("1", "2")
    auditor = _login(app.test_client(), "audit")
    assert auditor.get(f"/e/guarantee_project/{rec['p2']}").status_code == 200
    assert auditor.get(f"/e/guarantee_project/{rec['p2']}/edit").status_code == 403


def test_screens_refuse_a_save_that_hands_the_project_over(app):
    rec = app.rec
    client = _login(app.test_client(), "pm1")
    form = client.get(f"/e/guarantee_project/{rec['p1']}/edit").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', form).group(1)
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', form))
    data = {k: v for k, v in fields.items() if k in ("project_no", "name", "amount", "term_months", "version")}
    data.update(csrf_token=token, customer_kind="corporate", corporate_customer=str(rec["c1"]), product="bank_loan",
                a_manager=str(app.ids["pm2"]), status="applying", risk_class="normal")
    resp = client.post(f"/e/guarantee_project/{rec['p1']}/edit", data=data)
    assert resp.status_code == 422
    assert "不在您的数据权限范围内" in resp.get_data(as_text=True)
    with app.app_context():
        assert _system(app).get(PROJECT, rec["p1"]).a_manager_id == app.ids["pm1"]


# -- the control matrix ------------------------------------------------------------------------
def _in_scope(app, who: str, key: str, scope: str) -> bool:
    """Whether record ``key`` is in ``who``'s scope, from the fixture's facts (not the engine)."""
    if scope == "all":
        return True
    if scope == "none":
        return False
    # own: A角 or B角 (a customer: created by me); department: also the A角 (the creator)
    # is someone in my departments or below
    people = (DEPARTMENT_PEOPLE.get(who, set()) | {who}) if scope == "department" else {who}
    projects = {"p1": ("pm1", None), "p2": ("pm2", "pm3"), "p3": ("pm3", None)}
    if key in projects:
        a, b = projects[key]
        return who in (a, b) or a in people
    projects_of = {"c1": ["p1"], "c2": ["p2"], "i1": ["p3"], "c4": []}
    created = {"c4": "pm1"}.get(key)
    return created in people or any(_in_scope(app, who, p, scope) for p in projects_of[key])


MATRIX_RECORDS = {PROJECT: ("p1", "p2", "p3"), "corporate_customer": ("c1", "c2", "c4"),
                  "individual_customer": ("i1",), "department": ("d1",), "bank": ("bank",)}


def _expected(app, who: str, entity: str, key: str, action: str) -> bool:
    meta = app.extensions["danbao"].meta
    em = meta.entity(entity)
    role = CAST[who]
    if role != "Admin" and role not in em.permissions.get(action, ()):
        return False
    rules = em.record_rules
    scope = "all" if rules is None or role == "Admin" else rules.scope(role, action)
    return _in_scope(app, who, key, scope)


def test_matrix_scopes_follow_the_declared_rules(app):
    """The engine's scope per role equals the metadata's: permission first, then the rule."""
    meta = app.extensions["danbao"].meta
    for role, entity, action in itertools.product(list(meta.roles) + ["Admin"], MATRIX_RECORDS, ("read", "write", "delete")):
        em = meta.entity(entity)
        want = ("all" if role == "Admin" else "none" if role not in em.permissions.get(action, ())
                else "all" if em.record_rules is None else em.record_rules.scope(role, action))
        assert role_scope(meta, em, role, action) == want, (role, entity, action)
    assert role_scope(meta, meta.entity(PROJECT), "auditor", "write") == "none"
    assert role_scope(meta, meta.entity(PROJECT), "committee_member", "read") == "all"
    assert role_scope(meta, meta.entity(PROJECT), "project_manager", "delete") == "none"   # no delete permission


@pytest.mark.parametrize("who", sorted(CAST))
def test_control_matrix_through_the_record_service_and_rest(app, who):
    rt = app.extensions["danbao"]
    client = app.test_client()
    checked = 0
    for entity, keys in MATRIX_RECORDS.items():
        for key in keys:
            rid = app.rec[key]
            can_read = _expected(app, who, entity, key, "read")
            can_write = _expected(app, who, entity, key, "write")
            can_delete = _expected(app, who, entity, key, "delete")
            with app.app_context():
                svc = _as(app, who)
                # read
                if can_read:
                    assert svc.get(entity, rid).id == rid
                else:
                    with pytest.raises(NotFound):
                        svc.get(entity, rid)
                # write: an edit that changes nothing, so the matrix leaves the data as it was
                access = svc.access
                readable = access.allows(entity, rid, "read")
                assert readable == (access.scope(entity, "read") != "none" and _in_scope(
                    app, who, key, access.scope(entity, "read"))), (who, entity, key)
                if readable:
                    obj = svc.get(entity, rid)
                    if can_write:
                        svc.update(entity, rid, {}, expected_version=obj.version)
                    else:
                        with pytest.raises(OutOfScope) as refused:
                            svc.update(entity, rid, {}, expected_version=obj.version)
                        assert refused.value.code == "DP001"
                        rt.session.rollback()
                assert access.allows(entity, rid, "delete") == (readable and access.scope(entity, "delete") != "none"
                                                                and _in_scope(app, who, key, access.scope(entity, "delete")))
            # REST (top-level entities; FAB's permission answers 403 before any record is looked at)
            em = rt.meta.entity(entity)
            perm = lambda a: CAST[who] == "Admin" or CAST[who] in em.permissions.get(a, ())   # noqa: E731
            got = client.get(f"/api/v1/{entity}/{rid}", headers=app.tokens[who])
            assert got.status_code == (200 if can_read else 404 if perm("read") else 403), (who, entity, key)
            version = got.get_json()["result"]["version"] if got.status_code == 200 else 1
            put = client.put(f"/api/v1/{entity}/{rid}", json={"version": version}, headers=app.tokens[who])
            want = 403 if not perm("write") else 404 if not can_read else 200 if can_write else 403
            assert put.status_code == want, (who, entity, key, put.get_json())
            if want == 403 and perm("write"):
                assert put.get_json()["code"] == "DP001"
            if not can_delete:
                deleted = client.delete(f"/api/v1/{entity}/{rid}", headers=app.tokens[who])
                assert deleted.status_code == (403 if not perm("delete") else 404 if not can_read else 403)
                if perm("delete") and can_read:
                    assert deleted.get_json()["code"] == "DP001"
            checked += 1
    # still there, unchanged by the refused deletes
    with app.app_context():
        for entity, keys in MATRIX_RECORDS.items():
            for key in keys:
                assert _system(app).get(entity, app.rec[key]).id == app.rec[key]
    assert checked == 9


@pytest.mark.parametrize("who", ["risk", "root"])
def test_allowed_deletes_go_through(app, who):
    """The roles that may delete projects and customers (scope all) delete throwaway ones."""
    rt = app.extensions["danbao"]
    client = app.test_client()
    with app.app_context():
        svc = _system(app)
        n = 500 + app.ids[who]
        corp = svc.create("corporate_customer", {"name": f"待删企业{n}", "uscc": make_uscc(random.Random(n), "320100")})
        project = _project(svc, n, app.ids["pm2"], None, corporate=app.rec["c2"])
        corp_id = corp.id
    assert client.delete(f"/api/v1/guarantee_project/{project}", headers=app.tokens[who]).status_code == 200
    with app.app_context():
        _as(app, who).delete("corporate_customer", corp_id)
        with pytest.raises(NotFound):
            _system(app).get("corporate_customer", corp_id)
        with pytest.raises(NotFound):
            _system(app).get(PROJECT, project)
    assert rt is not None
