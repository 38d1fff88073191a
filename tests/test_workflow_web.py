"""Approval screens through the Flask test client: my tasks, done by me, the
record's approval panel and its action buttons, refusals shown as messages."""
from __future__ import annotations

import random
import re

import pytest

from danbao.demo import make_uscc
from danbao.engines.records import Actor, RecordService
from wfhelpers import full_cover
from wfapifixtures import file_documents
from webfixtures import add_user, csrf_from, login, make_app

USERS = {"pm": "project_manager", "risk": "risk_officer", "boss": "manager", "fin": "finance",
         "c1": "committee_member", "audit": "auditor"}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    app = make_app(module_database_url, tmp_path_factory.mktemp("inst"))
    app.ids = {name: add_user(app, name, role) for name, role in USERS.items()}
    return app


def _project(app, no: int, amount="2000000"):
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"))
        corp = svc.create("corporate_customer", {"name": f"企业{no}", "uscc": make_uscc(random.Random(no), "320100")})
        pid = svc.create("guarantee_project", {
            "project_no": f"W-{no}", "name": f"项目{no}", "customer_kind": "corporate", "corporate_customer": corp.id,
            "amount": amount, "term_months": 12, "a_manager": app.ids["pm"], "start_date": "2026-12-01",
            "counter_guarantees": full_cover(amount)}).id
        file_documents(rt, pid)
        return pid


def _task_id(html: str) -> int:
    return int(re.search(r"/workflows/task/(\d+)", html).group(1))


def test_submit_review_return_and_tasks(app):
    pid = _project(app, 1)
    pm = login(app.test_client(), "pm")
    page = pm.get(f"/e/guarantee_project/{pid}").text
    assert 'data-start="project_standard"' in page and 'data-start="project_green"' not in page
    assert pm.post(f"/workflows/start/guarantee_project/{pid}", data={"workflow": "project_standard"}).status_code == 302
    assert 'id="wf-actions"' not in pm.get(f"/e/guarantee_project/{pid}").text     # not on one's own application

    risk = login(app.test_client(), "risk")
    tasks = risk.get("/workflows/tasks/").text
    assert f"/e/guarantee_project/{pid}#workflow" in tasks and 'id="danbao-task-badge"' in tasks
    record = risk.get(f"/e/guarantee_project/{pid}").text
    task = _task_id(record)
    # a reject without a comment is refused with a message and changes nothing
    refused = risk.post(f"/workflows/task/{task}", data={"action": "reject", "comment": ""}, follow_redirects=True)
    assert "请填写意见" in refused.text and 'id="wf-step-' in refused.text and ">初审<" in refused.text
    risk.post(f"/workflows/task/{task}", data={"action": "approve", "comment": "同意"})
    assert 'id="wf-actions"' not in risk.get(f"/e/guarantee_project/{pid}").text   # 复审 is not the 初审 officer's
    boss = login(app.test_client(), "boss")
    record = boss.get(f"/e/guarantee_project/{pid}").text
    assert ">复审<" in record
    # return offers the applicant and the step already passed, never the current step or one ahead
    assert re.findall(r'<option value="([a-z_]+)">', record.split('id="wf-target"')[1].split("</select>")[0]) \
        == ["_applicant", "first_review"]
    back = boss.post(f"/workflows/task/{_task_id(record)}", data={
        "action": "return", "target_step": "first_review", "comment": "补充财务报表"}, follow_redirects=True)
    assert ">初审<" in back.text and "补充财务报表" in back.text
    # back at 初审 the later step is no target: only the applicant
    record = risk.get(f"/e/guarantee_project/{pid}").text
    assert re.findall(r'<option value="([a-z_]+)">', record.split('id="wf-target"')[1].split("</select>")[0]) \
        == ["_applicant"]
    done = boss.get("/workflows/tasks/?tab=done").text
    assert "补充财务报表" in done and "退回" in done


def test_withdraw_before_anyone_acts(app):
    pid = _project(app, 2)
    pm = login(app.test_client(), "pm")
    pm.post(f"/workflows/start/guarantee_project/{pid}", data={"workflow": "project_standard"})
    page = pm.get(f"/e/guarantee_project/{pid}").text
    instance = re.search(r"/workflows/instance/(\d+)/withdraw", page).group(1)
    after = pm.post(f"/workflows/instance/{instance}/withdraw", data={"comment": "资料有误"}, follow_redirects=True)
    assert 'data-state="withdrawn"' in after.text
    assert 'data-start="project_standard"' in after.text           # status is back to applying: submit again


def test_read_only_roles_cannot_start_and_the_diagram_page_draws_every_workflow(app):
    pid = _project(app, 3)
    auditor = login(app.test_client(), "audit")
    assert 'data-start=' not in auditor.get(f"/e/guarantee_project/{pid}").text
    assert auditor.post(f"/workflows/start/guarantee_project/{pid}",
                        data={"workflow": "project_standard"}).status_code == 403
    diagrams = auditor.get("/workflows/").text
    assert diagrams.count("<svg") == len(app.extensions["danbao"].meta.workflows)
    assert 'data-step="committee"' in diagrams


def test_actions_need_the_csrf_token(app):
    pid = _project(app, 4)
    pm = login(app.test_client(), "pm")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        refused = pm.post(f"/workflows/start/guarantee_project/{pid}", data={"workflow": "project_standard"})
        assert refused.status_code == 400
        token = csrf_from(pm.get(f"/e/guarantee_project/{pid}").text)
        ok = pm.post(f"/workflows/start/guarantee_project/{pid}", data={"workflow": "project_standard",
                                                                       "csrf_token": token})
        assert ok.status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_a_record_in_approval_cannot_be_deleted(app):
    from danbao.engines.records import Conflict
    pid = _project(app, 5)
    pm = login(app.test_client(), "pm")
    pm.post(f"/workflows/start/guarantee_project/{pid}", data={"workflow": "project_standard"})
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["risk"], "risk"))
        with pytest.raises(Conflict) as refused:
            svc.delete("guarantee_project", pid)
        assert "审批中" in refused.value.message.zh
        assert svc.get("guarantee_project", pid).id == pid
