"""Every WF refusal code through the REST API: the code in the JSON, the status
from the code's kind (forbidden 403, invalid 422 on its field, conflict 409),
and nothing changed (the instance is read again after each refusal). Also the
score API choosing the card by the product (finding 10) and the catalogue:
every WF code declared is documented in the README and exercised here."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from danbao.engines.refusals import CODES
from danbao.model.system import WF_INSTANCE_TABLE, WF_TASK_TABLE
from wfapifixtures import add_role, dispose, make_project
from wfhelpers import REPO
from webfixtures import add_user, jwt, make_app

ENTITY = "guarantee_project"
CAST = [("pm", "project_manager"), ("pm2", "project_manager"), ("risk", "risk_officer"), ("boss", "manager"),
        ("gm", "manager"), ("fin", "finance"), ("c1", "committee_member"), ("c2", "committee_member"),
        ("c3", "committee_member"), ("c4", "committee_member")]
EXERCISED: set[str] = set()


@pytest.fixture
def world(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance")
    uid = {name: add_user(app, name, role) for name, role in CAST}
    add_role(app, "c1", "project_manager")      # a committee member who also manages projects (recusal)
    client = app.test_client()
    headers = {name: jwt(client, name) for name, _ in CAST}
    yield app, client, uid, headers
    dispose(app)


def expect(resp, status: int, code: str, field: str | None = None):
    body = resp.get_json()
    assert (resp.status_code, body.get("code")) == (status, code), body
    if field is not None:
        assert list(body["errors"]) == [field] and body["errors"][field], body
    else:
        assert body["message"], body
    EXERCISED.add(code)
    return body


def tasks_of(c, h, project):
    resp = c.get("/api/v1/tasks/", headers=h)
    return [t for t in resp.get_json()["result"] if t["record_id"] == project]


def task(c, h, project) -> int:
    mine = tasks_of(c, h, project)
    assert len(mine) == 1, mine
    return mine[0]["id"]


def act(c, h, tid, **body):
    return c.post(f"/api/v1/tasks/{tid}/actions", json=body, headers=h)


def vote(c, h, tid, choice="agree", comment="同意"):
    return c.post(f"/api/v1/tasks/{tid}/vote", json={"vote": choice, "comment": comment}, headers=h)


def start(c, h, project, code="project_standard"):
    return c.post(f"/api/v1/{ENTITY}/{project}/workflow", json={"workflow": code}, headers=h)


def state(c, h, project) -> tuple:
    inst = c.get(f"/api/v1/{ENTITY}/{project}/workflow", headers=h).get_json()["instances"][0]
    return inst["state"], inst["step"], inst["round"], len(inst["timeline"])


def force_task(app, iid: int, user_id: int) -> int:
    rt = app.extensions["danbao"]
    inst_t, tasks = rt.models.system[WF_INSTANCE_TABLE], rt.models.system[WF_TASK_TABLE]
    with app.app_context(), rt.db.engine.begin() as conn:
        inst = conn.execute(sa.select(inst_t).where(inst_t.c.id == iid)).first()
        return conn.execute(tasks.insert().values(
            instance_id=iid, step=inst.step, round=inst.round, position=99, user_id=user_id, status="open",
            created_at=inst.step_entered_at, escalated=False).returning(tasks.c.id)).scalar_one()


def set_active(app, username: str, active: bool) -> None:
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.find_user(username=username)
        user.active = active
        sm.update_user(user)


def tamper(app, iid: int, change) -> None:
    """Rewrite the stored definition of an instance (as an older version would be), with its own digest."""
    rt = app.extensions["danbao"]
    inst_t = rt.models.system[WF_INSTANCE_TABLE]
    with app.app_context(), rt.db.engine.begin() as conn:
        row = conn.execute(sa.select(inst_t).where(inst_t.c.id == iid)).first()
        data = json.loads(row.definition)
        change(data)
        conn.execute(inst_t.update().where(inst_t.c.id == iid).values(
            definition=json.dumps(data, ensure_ascii=False), digest=f"tampered-{iid}-{len(json.dumps(data))}"))


def test_who_asks_and_which_field_codes(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"], b_manager=uid["pm2"], fee_rate="0.015")
    expect(start(c, h["risk"], p), 403, "WF005")                    # may write, but is no starter
    resp = start(c, h["pm2"], p)
    assert resp.status_code == 201
    iid = resp.get_json()["instance_id"]
    expect(start(c, h["pm2"], p), 409, "WF020")                     # its group is running
    t = task(c, h["risk"], p)
    before = state(c, h["pm2"], p)
    expect(act(c, h["boss"], t, action="approve"), 403, "WF001")
    expect(act(c, h["risk"], t, action="fly"), 422, "WF010", "action")
    expect(act(c, h["risk"], t, action="reject"), 422, "WF011", "comment")
    expect(act(c, h["risk"], t, action="return", comment="退回", target_step="second_review"), 422, "WF013",
           "target_step")
    expect(act(c, h["risk"], t, action="delegate", user_id=uid["pm2"]), 422, "WF014", "user_id")
    expect(vote(c, h["risk"], t), 409, "WF023")
    expect(c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={}, headers=h["risk"]), 403, "WF003")
    expect(c.post(f"/api/v1/workflow-instances/{iid}/resubmit", json={}, headers=h["pm2"]), 409, "WF031")
    assert state(c, h["pm2"], p) == before                          # none of it changed anything
    assert act(c, h["risk"], t, action="approve", comment="同意").status_code == 200
    expect(act(c, h["risk"], t, action="approve"), 409, "WF021")
    expect(c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={}, headers=h["pm2"]), 409, "WF025")
    # separation of duties and self-approval, on tasks forced onto the wrong people
    before = state(c, h["pm2"], p)
    expect(act(c, h["risk"], force_task(app, iid, uid["risk"]), action="approve"), 403, "WF006")
    expect(act(c, h["pm2"], force_task(app, iid, uid["pm2"]), action="approve"), 403, "WF002")
    assert state(c, h["pm2"], p) == before
    assert act(c, h["gm"], task(c, h["gm"], p), action="approve").status_code == 200
    t = task(c, h["c1"], p)
    expect(act(c, h["c1"], t, action="approve"), 409, "WF022")
    expect(vote(c, h["c1"], t, choice="maybe"), 422, "WF012", "vote")
    expect(vote(c, h["c1"], t, comment=" "), 422, "WF011", "comment")
    expect(c.post(f"/api/v1/workflow-instances/{iid}/close-meeting", json={}, headers=h["c1"]), 403, "WF004")
    en = c.post(f"/api/v1/workflow-instances/{iid}/close-meeting", json={}, headers={**h["c1"], "Accept-Language": "en"})
    assert en.get_json()["message"] == "Only the chairman can close the meeting"


def test_recusal_finished_and_resubmit_codes(world):
    app, c, uid, h = world
    p = make_project(app, uid["c1"], b_manager=uid["pm2"])                                # c1, a committee member, is the A角
    iid = start(c, h["pm2"], p).get_json()["instance_id"]
    for name in ("risk", "gm"):
        assert act(c, h[name], task(c, h[name], p), action="approve").status_code == 200
    assert {t["user_id"] for t in c.get(f"/api/v1/{ENTITY}/{p}/workflow", headers=h["pm2"]).get_json()[
        "instances"][0]["tasks"]} == {uid[n] for n in ("boss", "c2", "c3", "c4")}
    before = state(c, h["pm2"], p)
    expect(vote(c, h["c1"], force_task(app, iid, uid["c1"])), 403, "WF007")
    assert state(c, h["pm2"], p) == before
    # returned to the applicant and resubmitted through the API
    resp = act(c, h["c2"], task(c, h["c2"], p), action="return", comment="请补充资料", target_step="_applicant")
    assert resp.status_code == 200 and resp.get_json()["step_after"] == "_applicant"
    view = c.get(f"/api/v1/{ENTITY}/{p}/workflow", headers=h["pm2"]).get_json()["instances"][0]
    assert (view["with_applicant"], view["step_label"], view["tasks"]) == (True, "退回申请人补充资料", [])
    assert c.get(f"/api/v1/{ENTITY}/{p}", headers=h["pm2"]).get_json()["result"]["status"] == "applying"
    expect(c.post(f"/api/v1/workflow-instances/{iid}/resubmit", json={}, headers=h["pm"]), 403, "WF003")
    resp = c.post(f"/api/v1/workflow-instances/{iid}/resubmit", json={"comment": "已补充"}, headers=h["pm2"])
    assert resp.status_code == 200 and resp.get_json()["step_after"] == "first_review"
    assert act(c, h["risk"], task(c, h["risk"], p), action="reject", comment="不符合条件").status_code == 200
    expect(c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={}, headers=h["pm2"]), 409, "WF024")


def test_state_codes_nobody_requires_and_old_versions(world):
    app, c, uid, h = world
    # WF026: nobody active holds the first step's role
    p = make_project(app, uid["pm"], b_manager=uid["pm2"])
    set_active(app, "risk", False)
    expect(start(c, h["pm2"], p), 409, "WF026")
    assert c.get(f"/api/v1/{ENTITY}/{p}/workflow", headers=h["pm2"]).get_json()["instances"] == []
    set_active(app, "risk", True)
    # WF028: first review requires the product's coverage
    short = make_project(app, uid["pm"], b_manager=uid["pm2"], counter_guarantees=[])
    start(c, h["pm2"], short)
    expect(act(c, h["risk"], task(c, h["risk"], short), action="approve"), 409, "WF028")
    # WF027: the only other manager is gone, 总经理审批 would have nobody who did not sign 复审
    q = make_project(app, uid["pm"], b_manager=uid["pm2"], amount="1000000")
    start(c, h["pm2"], q)
    act(c, h["risk"], task(c, h["risk"], q), action="approve")
    set_active(app, "boss", False)
    before = state(c, h["pm2"], q)
    expect(act(c, h["gm"], task(c, h["gm"], q), action="approve"), 409, "WF027")
    assert state(c, h["pm2"], q) == before
    set_active(app, "boss", True)
    # WF029 / WF030: older stored versions whose transitions no longer lead on / no longer compile
    r = make_project(app, uid["pm"], b_manager=uid["pm2"])
    rid = start(c, h["pm2"], r).get_json()["instance_id"]
    act(c, h["risk"], task(c, h["risk"], r), action="approve")

    def no_way_on(data):
        step = next(s for s in data["steps"] if s["key"] == "second_review")
        step["next"] = [{"to": "committee", "when": "amount >= 999999999999"}]
    tamper(app, rid, no_way_on)
    expect(act(c, h["gm"], task(c, h["gm"], r), action="approve"), 409, "WF029")
    s = make_project(app, uid["pm"], b_manager=uid["pm2"])
    sid = start(c, h["pm2"], s).get_json()["instance_id"]

    def broken(data):
        data["steps"][0]["requires"] = "no_such_field > 1"
    tamper(app, sid, broken)
    expect(act(c, h["risk"], task(c, h["risk"], s), action="approve"), 409, "WF030")


def test_a_refused_step_action_is_a_conflict(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"], b_manager=uid["pm2"], amount="1000000", fee_rate="0.02")
    start(c, h["pm2"], p)
    for name in ("risk", "gm", "boss", "fin"):
        assert act(c, h[name], task(c, h[name], p), action="approve").status_code == 200, name
    rt = app.extensions["danbao"]
    with app.app_context(), rt.db.engine.begin() as conn:             # its product withdrawn from the metadata
        table = rt.models.table(ENTITY)
        conn.execute(table.update().where(table.c.id == p).values(product="withdrawn_product"))
    before = state(c, h["pm2"], p)
    body = expect(act(c, h["pm"], task(c, h["pm"], p), action="return", comment="重新核费",
                      target_step="fee_collection"), 409, "WF032")
    assert body["message"] == "项目没有有效的担保产品，无法生成收费计划"
    assert state(c, h["pm2"], p) == before


def test_the_score_api_uses_the_card_of_the_product(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance", packs=(REPO / "metadata" / "core",
                                                               REPO / "tests" / "packs" / "product_route"))
    add_user(app, "risk", "risk_officer")
    pm = add_user(app, "pm", "project_manager")
    c = app.test_client()
    h = jwt(c, "risk")
    try:
        special = make_project(app, pm, product="special_loan")     # pm's: his project page links the scoring
        standard = make_project(app, None)
        with app.app_context():
            rt = app.extensions["danbao"]
            table = rt.models.table(ENTITY)
            customer = rt.session.execute(sa.select(table.c.corporate_customer_id).where(
                table.c.id == special)).scalar_one()
        url = f"/api/v1/corporate_customer/{customer}/scores"
        assert c.post(url, json={"project": special}, headers=h).get_json()["scorecard"] == "big_corporate"
        assert c.post(url, json={"product": "special_loan"}, headers=h).get_json()["scorecard"] == "big_corporate"
        sme = {"industry_outlook": "good", "management": "strong", "credit_record": "clean", "lawsuits": "none"}
        resp = c.post(url, json={"inputs": sme}, headers=h)              # no context: the entity's card
        assert resp.get_json()["scorecard"] == "sme_corporate", resp.get_json()
        resp = c.post(url, json={"product": "bank_loan", "inputs": sme}, headers=h)
        assert resp.get_json()["scorecard"] == "sme_corporate"
        resp = c.post(url, json={"project": standard}, headers=h)       # not this customer's project
        assert resp.status_code == 422 and "project" in resp.get_json()["errors"]
        resp = c.post(url, json={"product": "nope"}, headers=h)
        assert resp.status_code == 422 and "product" in resp.get_json()["errors"]
        scores = c.get(url, headers=h).get_json()["result"]
        assert [s["scorecard"] for s in scores] == ["sme_corporate", "sme_corporate", "big_corporate",
                                                     "big_corporate"]
        page = login_page(app, special)
        assert f"/scores/corporate_customer/{customer}/new?card=big_corporate&amp;project={special}" in page
    finally:
        dispose(app)


def login_page(app, project: int) -> str:
    from webfixtures import login
    return login(app.test_client(), "pm").get(f"/e/{ENTITY}/{project}").text


def test_every_wf_code_is_documented_and_exercised():
    wf_codes = {code for code in CODES if code.startswith("WF")}
    readme = Path(REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| (WF\d{3}) \| (\d{3}) \|", readme, re.M))
    assert {code for code, _ in documented} == wf_codes
    from danbao.engines.refusals import KIND_STATUS
    assert {(code, str(KIND_STATUS[CODES[code].kind])) for code in wf_codes} == documented
    if EXERCISED:                       # when the tests above ran in this session
        assert EXERCISED == wf_codes, sorted(wf_codes - EXERCISED)
