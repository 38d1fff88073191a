"""REST for approvals (web/workflow_api.py) through the test client, on SQLite
and PostgreSQL: a project driven from submission through first review,
second review (mode all), a secret committee of five with the chairman to fee
collection; the refusals and their status codes; withdrawing; delegating and
returning; the record's view with secret votes hidden until the meeting
closes; the OpenAPI document."""
from __future__ import annotations

import datetime as dt

import pytest

from danbao.engines.workflow import ACTIONS
from wfapifixtures import add_role, dispose, make_project
from webfixtures import add_user, jwt, make_app

ENTITY = "guarantee_project"
#: pm2 submits (and also holds risk_officer, so self-approval is really tested);
#: pm is the A角; gm (manager) does the second review, boss (manager) chairs the committee
CAST = [("pm", "project_manager"), ("pm2", "project_manager"), ("risk", "risk_officer"), ("boss", "manager"),
        ("gm", "manager"),
        ("fin", "finance"), ("c1", "committee_member"), ("c2", "committee_member"), ("c3", "committee_member"),
        ("c4", "committee_member"), ("clerk", "auditor")]


@pytest.fixture
def world(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance")
    uid = {name: add_user(app, name, role) for name, role in CAST}
    add_role(app, "pm2", "risk_officer")
    client = app.test_client()
    headers = {name: jwt(client, name) for name, _ in CAST}
    yield app, client, uid, headers
    dispose(app)


def _tasks(client, headers):
    resp = client.get("/api/v1/tasks/", headers=headers)
    assert resp.status_code == 200, resp.data
    return resp.get_json()["result"]


def _task_of(client, headers, project):
    mine = [t for t in _tasks(client, headers) if t["record_id"] == project]
    assert len(mine) == 1, mine
    return mine[0]


def _view(client, headers, project):
    resp = client.get(f"/api/v1/{ENTITY}/{project}/workflow", headers=headers)
    assert resp.status_code == 200, resp.data
    return resp.get_json()


def _act(client, headers, task_id, **body):
    return client.post(f"/api/v1/tasks/{task_id}/actions", json=body, headers=headers)


def _vote(client, headers, task_id, vote="agree", comment="同意"):
    return client.post(f"/api/v1/tasks/{task_id}/vote", json={"vote": vote, "comment": comment}, headers=headers)


def test_a_project_from_submission_to_fee_collection(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"], amount="5000000", fee_rate="0.015")

    before = _view(c, h["pm2"], p)
    assert before["instances"] == [] and before["record_title"].startswith("WF")
    assert [w["code"] for w in before["can_start"]] == ["project_standard"]
    assert _view(c, h["clerk"], p)["can_start"] == []                  # read-only role: may look, not start
    assert c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"},
                  headers=h["clerk"]).status_code == 403

    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard", "comment": "请审"},
                  headers=h["pm2"])
    assert resp.status_code == 201, resp.data
    started = resp.get_json()
    iid = started["instance_id"]
    assert started["result"]["state"] == "running" and started["result"]["step"] == "first_review"
    # the starter is a risk officer too, but gets no task on their own application
    assert [t["user_id"] for t in started["result"]["tasks"]] == [uid["risk"]]
    assert _tasks(c, h["pm2"]) == []
    # a second start of the same group is refused while it runs
    again = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"}, headers=h["pm2"])
    assert again.status_code == 409
    assert _view(c, h["pm2"], p)["can_start"] == []

    # first review
    task = _task_of(c, h["risk"], p)
    assert task["kind"] == "approval" and task["step"] == "first_review" and task["step_label"] == "初审"
    assert task["workflow"] == "project_standard" and task["workflow_label"] == "标准审批流程"
    assert task["entity"] == ENTITY and task["record_title"] == before["record_title"]
    assert task["due_at"] and task["overdue"] is False
    en = c.get("/api/v1/tasks/", headers=dict(h["risk"], **{"Accept-Language": "en"})).get_json()["result"]
    assert en[0]["step_label"] == "First review" and en[0]["workflow_label"] == "Standard approval"
    assert _act(c, h["boss"], task["id"], action="approve").status_code == 403           # not yours
    resp = _act(c, h["risk"], task["id"], action="reject")
    assert resp.status_code == 422 and "comment" in resp.get_json()["errors"]           # reject needs a comment
    resp = _act(c, h["risk"], task["id"], action="reject", comment="   ")
    assert resp.status_code == 422 and "comment" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="approve", comment="材料齐全")
    assert resp.status_code == 200, resp.data
    assert resp.get_json() == {"instance_id": iid, "state": "running", "step_before": "first_review",
                               "step_after": "second_review", "step_after_label": "复审"}
    again = _act(c, h["risk"], task["id"], action="approve")
    assert again.status_code == 409                                                     # done already

    # second review: the managers, not the risk officer who did the first review (one approval moves on)
    view = _view(c, h["pm2"], p)["instances"][0]
    assert view["step"] == "second_review"
    assert {t["user_id"]: t["status"] for t in view["tasks"]} == {uid["boss"]: "open", uid["gm"]: "open"}
    assert [s["step"] for s in view["path_ahead"]] == ["committee", "fee_collection", "contract_signing",
                                                        "loan_confirmation", "in_force"]
    assert [s["step"] for s in view["return_targets"]] == ["_applicant", "first_review"]
    assert [s["label"] for s in view["return_targets"]] == ["退回申请人补充资料", "初审"]
    gm_task = _task_of(c, h["gm"], p)
    resp = _vote(c, h["gm"], gm_task["id"])
    assert resp.status_code == 409 and resp.get_json()["code"] == "WF023"                 # not a committee step
    resp = _act(c, h["gm"], gm_task["id"], action="approve")
    assert resp.status_code == 200 and resp.get_json()["step_after"] == "committee"

    # committee: four members and the chairman (the manager), secret ballot
    voters = ["c1", "c2", "c3", "c4", "boss"]
    tasks = {name: _task_of(c, h[name], p) for name in voters}
    assert {t["kind"] for t in tasks.values()} == {"committee"}
    resp = _act(c, h["c1"], tasks["c1"]["id"], action="approve")
    assert resp.status_code == 409                                                      # vote instead
    assert _vote(c, h["c1"], tasks["c1"]["id"], vote="maybe").status_code == 422
    resp = _vote(c, h["c1"], tasks["c1"]["id"], comment="")
    assert resp.status_code == 422 and "comment" in resp.get_json()["errors"]
    assert c.post(f"/api/v1/workflow-instances/{iid}/close-meeting", json={}, headers=h["c1"]).status_code == 403
    resp = _vote(c, h["c1"], tasks["c1"]["id"], comment="同意，担保措施充足")
    assert resp.status_code == 200 and resp.get_json()["step_after"] == "committee"

    seen_by_c2 = _view(c, h["c2"], p)["instances"][0]
    assert seen_by_c2["votes"] == [{"hidden": True}]
    vote_line = [a for a in seen_by_c2["timeline"] if a["action"] == "vote"]
    assert vote_line and vote_line[0]["hidden"] is True
    assert vote_line[0]["target"] is None and vote_line[0]["comment"] is None
    seen_by_c1 = _view(c, h["c1"], p)["instances"][0]
    assert seen_by_c1["votes"][0]["vote"] == "agree" and seen_by_c1["votes"][0]["hidden"] is False
    assert seen_by_c1["votes"][0]["comment"] == "同意，担保措施充足"
    assert "同意，担保措施充足" not in c.get(f"/api/v1/{ENTITY}/{p}/workflow", headers=h["pm2"]).get_data(as_text=True)

    for name in ["c2", "c3", "c4"]:
        assert _vote(c, h[name], tasks[name]["id"]).status_code == 200
    resp = _vote(c, h["boss"], tasks["boss"]["id"], comment="同意（主任委员）")
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["step_after"] == "fee_collection" and resp.get_json()["state"] == "running"

    after = _view(c, h["c2"], p)["instances"][0]
    assert len(after["votes"]) == 5 and not any(v["hidden"] for v in after["votes"])
    assert [v["chairman"] for v in after["votes"]] == [False, False, False, False, True]
    assert {v["user_id"] for v in after["votes"]} == {uid[n] for n in voters}
    assert not any(a["hidden"] for a in after["timeline"])
    actions = [a["action"] for a in after["timeline"]]
    assert actions == ["start", "approve", "approve", "vote", "vote", "vote", "vote", "vote", "meeting_passed"]
    assert after["timeline"][0]["comment"] == "请审" and after["timeline"][0]["user_id"] == uid["pm2"]

    # fee collection: the finance user's task; the project is approved
    fee = _task_of(c, h["fin"], p)
    assert fee["step"] == "fee_collection" and fee["kind"] == "approval"
    record = c.get(f"/api/v1/{ENTITY}/{p}", headers=h["pm2"]).get_json()["result"]
    assert record["status"] == "approved"
    resp = _act(c, h["fin"], fee["id"], action="approve", comment="已收费")
    assert resp.status_code == 200 and resp.get_json()["step_after"] == "contract_signing"
    assert _task_of(c, h["pm"], p)["step"] == "contract_signing"

    done = c.get("/api/v1/tasks/done", headers=h["risk"]).get_json()["result"]
    assert [d["action"] for d in done] == ["approve"]
    assert done[0]["step"] == "first_review" and done[0]["comment"] == "材料齐全"
    assert done[0]["record_title"] == before["record_title"]
    assert len(c.get("/api/v1/tasks/done?limit=1", headers=h["risk"]).get_json()["result"]) == 1
    assert c.get("/api/v1/tasks/done?limit=0", headers=h["risk"]).status_code == 400
    assert c.get("/api/v1/tasks/done?limit=x", headers=h["risk"]).status_code == 400
    assert [d["target"] for d in c.get("/api/v1/tasks/done", headers=h["c1"]).get_json()["result"]] == ["agree"]


def test_withdraw_before_anyone_acted(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"])
    iid = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"},
                 headers=h["pm2"]).get_json()["instance_id"]
    assert c.get(f"/api/v1/{ENTITY}/{p}", headers=h["pm2"]).get_json()["result"]["status"] == "reviewing"
    assert c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={}, headers=h["risk"]).status_code == 403
    resp = c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={"comment": "补充材料"}, headers=h["pm2"])
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["state"] == "withdrawn" and resp.get_json()["step_after"] == "withdrawn"
    assert c.get(f"/api/v1/{ENTITY}/{p}", headers=h["pm2"]).get_json()["result"]["status"] == "applying"
    assert _tasks(c, h["risk"]) == []
    again = c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={}, headers=h["pm2"])
    assert again.status_code == 409
    view = _view(c, h["pm2"], p)
    assert view["instances"][0]["state"] == "withdrawn" and view["instances"][0]["path_ahead"] == []
    assert [w["code"] for w in view["can_start"]] == ["project_standard"]

    # resubmitted; once someone has acted it can no longer be withdrawn
    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"}, headers=h["pm2"])
    second = resp.get_json()["instance_id"]
    assert [i["id"] for i in _view(c, h["pm2"], p)["instances"]] == [second, iid]           # newest first
    assert _act(c, h["risk"], _task_of(c, h["risk"], p)["id"], action="approve").status_code == 200
    resp = c.post(f"/api/v1/workflow-instances/{second}/withdraw", json={}, headers=h["pm2"])
    assert resp.status_code == 409
    assert c.post("/api/v1/workflow-instances/999999/withdraw", json={}, headers=h["pm2"]).status_code == 404


def test_delegate_return_and_comment(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"])
    c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"}, headers=h["pm2"])
    task = _task_of(c, h["risk"], p)
    resp = _act(c, h["risk"], task["id"], action="delegate")
    assert resp.status_code == 422 and "user_id" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="delegate", user_id=True)
    assert resp.status_code == 422 and "user_id" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="delegate", user_id=uid["pm2"])          # the applicant
    assert resp.status_code == 422 and "user_id" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="delegate", user_id=424242)
    assert resp.status_code == 422 and "user_id" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="delegate", user_id=uid["clerk"], until="2000-01-01T00:00")
    assert resp.status_code == 422 and "until" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="delegate", user_id=uid["clerk"], until="tomorrow")
    assert resp.status_code == 422 and "until" in resp.get_json()["errors"]
    resp = _act(c, h["risk"], task["id"], action="approve", user_id=uid["clerk"])
    assert resp.status_code == 422 and "user_id" in resp.get_json()["errors"]
    until = (dt.datetime.now() + dt.timedelta(days=2)).replace(microsecond=0)
    resp = _act(c, h["risk"], task["id"], action="delegate", user_id=uid["clerk"], until=until.isoformat(),
                comment="出差，请代审")
    assert resp.status_code == 200, resp.data
    mine = _task_of(c, h["clerk"], p)
    assert mine["delegated_from_id"] == uid["risk"] and mine["delegated_until"] == until.isoformat()
    assert _tasks(c, h["risk"]) == []

    resp = _act(c, h["clerk"], mine["id"], action="comment")
    assert resp.status_code == 422
    assert _act(c, h["clerk"], mine["id"], action="comment", comment="需补充财报").status_code == 200
    assert _act(c, h["clerk"], mine["id"], action="approve").status_code == 200
    view = _view(c, h["pm2"], p)["instances"][0]
    delegate = [a for a in view["timeline"] if a["action"] == "delegate"][0]
    assert delegate["target"] == str(uid["clerk"]) and delegate["target_label"]

    boss = _task_of(c, h["boss"], p)
    resp = _act(c, h["boss"], boss["id"], action="return", comment="退回初审")
    assert resp.status_code == 422 and "target_step" in resp.get_json()["errors"]
    resp = _act(c, h["boss"], boss["id"], action="return", comment="退回", target_step="committee")
    assert resp.status_code == 422 and "target_step" in resp.get_json()["errors"]
    resp = _act(c, h["boss"], boss["id"], action="return", comment="请补充财报", target_step="first_review")
    assert resp.status_code == 200 and resp.get_json()["step_after"] == "first_review"
    back = [a for a in _view(c, h["pm2"], p)["instances"][0]["timeline"] if a["action"] == "return"][0]
    assert back["target"] == "first_review" and back["target_label"] == "初审"


def test_chairman_closes_the_meeting(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"], amount="4000000", fee_rate="0.02")
    iid = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"},
                 headers=h["pm2"]).get_json()["instance_id"]
    for name in ["risk", "gm"]:
        assert _act(c, h[name], _task_of(c, h[name], p)["id"], action="approve").status_code == 200
    for name in ["c1", "c2", "c3", "c4"]:
        assert _vote(c, h[name], _task_of(c, h[name], p)["id"]).status_code == 200
    resp = c.post(f"/api/v1/workflow-instances/{iid}/close-meeting", json={"comment": "散会"},
                  headers={**h["boss"], "Accept-Language": "en"})
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["step_after"] == "fee_collection" and resp.get_json()["step_after_label"] == "Fee collection"
    again = c.post(f"/api/v1/workflow-instances/{iid}/close-meeting", json={},
                   headers={**h["boss"], "Accept-Language": "en"})
    assert again.status_code == 409 and again.get_json()["message"] == "No committee meeting is open"


def test_bad_requests_get_json_errors(world):
    app, c, uid, h = world
    p = make_project(app, uid["pm"])
    assert c.get("/api/v1/tasks/").status_code == 401
    assert c.get("/api/v1/tasks/done").status_code == 401
    assert c.get(f"/api/v1/{ENTITY}/{p}/workflow").status_code == 401
    assert c.post("/api/v1/tasks/1/actions", json={"action": "approve"}).status_code == 401
    assert c.get("/api/v1/bank/1/workflow", headers=h["pm2"]).status_code == 404          # no workflow on banks
    assert c.get("/api/v1/nothing/1/workflow", headers=h["pm2"]).status_code == 404
    assert c.get(f"/api/v1/{ENTITY}/999999/workflow", headers=h["pm2"]).status_code == 404
    assert c.get(f"/api/v1/{ENTITY}/abc/workflow", headers=h["pm2"]).status_code == 404
    assert c.post(f"/api/v1/{ENTITY}/999999/workflow", json={"workflow": "project_standard"},
                  headers=h["pm2"]).status_code == 404
    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "nope"}, headers=h["pm2"])
    assert resp.status_code == 422 and "workflow" in resp.get_json()["errors"]
    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard", "x": 1}, headers=h["pm2"])
    assert resp.status_code == 422 and "x" in resp.get_json()["errors"]
    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_release"}, headers=h["pm2"])
    assert resp.status_code == 409                                                       # not in force yet
    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", data="{oops", headers=h["pm2"])
    assert resp.status_code == 400 and resp.is_json
    resp = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json=[1], headers=h["pm2"])
    assert resp.status_code == 422
    iid = c.post(f"/api/v1/{ENTITY}/{p}/workflow", json={"workflow": "project_standard"},
                 headers=h["pm2"]).get_json()["instance_id"]
    task = _task_of(c, h["risk"], p)["id"]
    for body in ({}, {"action": "fly"}, {"action": ["approve"]}, {"action": "approve", "comment": 5},
                 {"action": "approve", "comment": "x" * 4001}, {"action": "approve", "until": "2030-01-01"},
                 {"action": "approve", "target_step": "first_review"}, {"action": "reject", "comment": "不\x00行"},
                 {"action": "reject", "comment": "\ud800"}):
        resp = _act(c, h["risk"], task, **body)
        assert resp.status_code == 422 and resp.is_json, (body, resp.data)
    assert c.post(f"/api/v1/tasks/{task}/vote", json={"vote": "agree"}, headers=h["risk"]).status_code == 422
    assert _act(c, h["risk"], 999999, action="approve").status_code == 404
    assert _act(c, h["risk"], "abc", action="approve").status_code == 404
    assert _act(c, h["risk"], 2**40, action="approve").status_code == 404
    assert _vote(c, h["risk"], 999999).status_code == 404
    assert c.post(f"/api/v1/workflow-instances/{iid}/withdraw", json={"comment": 1},
                  headers=h["pm2"]).status_code == 422
    assert c.post(f"/api/v1/workflow-instances/{iid}/close-meeting", json={}, headers=h["boss"]).status_code == 409
    assert c.post("/api/v1/workflow-instances/0/close-meeting", json={}, headers=h["boss"]).status_code == 404
    resp = _act(c, {**h["boss"], "Accept-Language": "en"}, task, action="approve")
    assert resp.status_code == 403 and resp.get_json()["message"] == "This task is not yours"
    assert _view(c, h["pm2"], p)["instances"][0]["timeline"][-1]["action"] == "start"    # nothing was written


def test_openapi_describes_the_approval_endpoints(world):
    _app, c, _uid, h = world
    spec = c.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/tasks/", "/api/v1/tasks/done", "/api/v1/tasks/{task_id}/actions",
                 "/api/v1/tasks/{task_id}/vote", "/api/v1/workflow-instances/{instance_id}/withdraw",
                 "/api/v1/workflow-instances/{instance_id}/close-meeting", f"/api/v1/{ENTITY}/{{record_id}}/workflow"):
        assert path in spec["paths"], path
    assert "/api/v1/bank/{record_id}/workflow" not in spec["paths"]
    start = spec["paths"][f"/api/v1/{ENTITY}/{{record_id}}/workflow"]["post"]
    assert set(start["responses"]) == {"201", "400", "401", "403", "404", "409", "413", "422"}
    body = start["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]["workflow"]["enum"]) == {"project_green", "project_standard", "project_release",
                                                           "project_compensation", "project_write_off"}
    acts = spec["paths"]["/api/v1/tasks/{task_id}/actions"]["post"]["requestBody"]["content"]["application/json"]
    assert sorted(a for branch in acts["schema"]["oneOf"] for a in branch["properties"]["action"]["enum"]) \
        == sorted(ACTIONS)
