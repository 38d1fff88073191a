"""Changes after approval (变更/展期) through REST, as the people who do them: the A角
asks, the route of the kind approves (an increase goes back to the committee), and
the system writes the new terms onto the project in the same transaction — the
audit shows both, the fee plan's paid rows stay and the unpaid ones follow. A
request that changes nothing, or a project still applying, is refused."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from danbao.demo import make_uscc
from danbao.engines.records import Actor, RecordService
from webfixtures import staffed_app

ENTITY = "guarantee_project"
USERS = {"pm": "project_manager", "pm2": "project_manager", "risk": "risk_officer", "boss": "manager", "gm": "manager",
         "fin": "finance", "c1": "committee_member", "c2": "committee_member", "c3": "committee_member",
         "c4": "committee_member"}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    yield from staffed_app(module_database_url, tmp_path_factory.mktemp("inst"), USERS)


_N = iter(range(1, 10**6))


def in_force(app, paid_first: bool = True) -> int:
    """A project in force since 2026-12-01 on ¥4,000,000 at 2% a year, quarterly, first quarter paid."""
    rt = app.extensions["danbao"]
    n = next(_N)
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"), seeding=True)
        corp = svc.create("corporate_customer", {"name": f"变更企业{n}", "uscc": make_uscc(random.Random(900 + n), "320100")})
        plan = [{"kind": "guarantee_fee", "due_on": dt.date(2026, 12, 1) + dt.timedelta(days=0), "amount": "20000.00",
                 "period_from": "2026-12-01", "period_to": "2027-03-01",
                 **({"paid_amount": "20000.00", "paid_on": "2026-12-01"} if paid_first else {})}] + [
            {"kind": "guarantee_fee", "due_on": d, "amount": "20000.00", "period_from": d, "period_to": e}
            for d, e in (("2027-03-01", "2027-06-01"), ("2027-06-01", "2027-09-01"), ("2027-09-01", "2027-12-01"))]
        return svc.create(ENTITY, {
            "project_no": f"BG-P{n:04d}", "name": f"变更项目{n}", "customer_kind": "corporate", "corporate_customer": corp.id,
            "amount": "4000000.00", "term_months": 12, "fee_rate": "0.02", "deposit_rate": "0", "status": "guaranteeing",
            "start_date": "2026-12-01", "a_manager": app.ids["pm"], "fee_instalments": plan}).id


def call(app, method, path, who, body=None, expect=(200, 201)):
    resp = app.test_client().open(path, method=method, json=body, headers=app.tokens[who])
    if expect is not None:
        assert resp.status_code in ((expect,) if isinstance(expect, int) else expect), (path, resp.get_json())
    return resp.get_json()


def project(app, pid):
    return call(app, "GET", f"/api/v1/{ENTITY}/{pid}", "boss")["result"]


def act(app, who, request_id, action="approve", comment="同意"):
    tasks = [t for t in call(app, "GET", "/api/v1/tasks/", who)["result"] if t["record_id"] == request_id
             and t["entity"] == "change_request"]
    assert tasks, (who, request_id)
    return call(app, "POST", f"/api/v1/tasks/{tasks[0]['id']}/actions", who, {"action": action, "comment": comment})


def test_an_amount_increase_goes_through_the_committee_and_the_unpaid_plan_follows(app):
    pid = in_force(app)
    # the approved amount is not edited: a change request is made
    assert call(app, "PUT", f"/api/v1/{ENTITY}/{pid}", "pm", {"version": project(app, pid)["version"],
                                                              "amount": "6000000.00"}, expect=409)["code"] == "CT001"
    rid = call(app, "POST", "/api/v1/change_request/", "pm", {
        "project": pid, "kind": "amount_increase", "new_amount": "6000000", "reason": "订单增加，银行同意增贷"})["id"]
    call(app, "POST", f"/api/v1/change_request/{rid}/workflow", "pm", {"workflow": "change_increase"})
    assert project(app, pid)["amount"] == "4000000.00"            # nothing changes while it is reviewed
    act(app, "risk", rid)
    for member in ("c1", "c2", "c3", "c4", "boss", "gm"):         # the members and the chairmen
        tasks = [t for t in call(app, "GET", "/api/v1/tasks/", member)["result"] if t["record_id"] == rid
                 and t["entity"] == "change_request"]
        if tasks:
            call(app, "POST", f"/api/v1/tasks/{tasks[0]['id']}/vote", member, {"vote": "agree", "comment": "同意增额"})
    request = call(app, "GET", f"/api/v1/change_request/{rid}", "boss")["result"]
    if request["status"] != "applied":                            # the chairman closes the meeting
        inst = max(call(app, "GET", f"/api/v1/change_request/{rid}/workflow", "boss")["instances"], key=lambda i: i["id"])
        call(app, "POST", f"/api/v1/workflow-instances/{inst['id']}/close-meeting", "boss",
             {"comment": "表决通过"})
        request = call(app, "GET", f"/api/v1/change_request/{rid}", "boss")["result"]
    assert request["status"] == "applied"
    assert (request["old_terms"], request["new_terms"]) == ("担保金额(元) 4000000.00", "担保金额(元) 6000000.00")
    p = project(app, pid)
    assert (p["amount"], p["approved_amount"]) == ("6000000.00", "6000000.00")     # the 批复 moves with it
    # 2% of 6,000,000 for 12 months = 120,000: 20,000 paid stays, 100,000 over the three unpaid quarters
    assert [(r["due_on"], r["amount"], r["paid_amount"]) for r in p["fee_instalments"] if r["kind"] == "guarantee_fee"] == [
        ("2026-12-01", "20000.00", "20000.00"), ("2027-03-01", "30000.00", None),
        ("2027-06-01", "30000.00", None), ("2027-09-01", "40000.00", None)]


def test_an_extension_moves_the_due_date_after_risk_and_the_general_manager(app):
    pid = in_force(app)
    rid = call(app, "POST", "/api/v1/change_request/", "pm", {
        "project": pid, "kind": "term_extension", "new_term_months": 18, "reason": "工程延期，申请展期六个月"})["id"]
    call(app, "POST", f"/api/v1/change_request/{rid}/workflow", "pm", {"workflow": "change_terms"})
    act(app, "risk", rid)
    assert project(app, pid)["term_months"] == 12
    act(app, "boss", rid)
    p = project(app, pid)
    assert (p["term_months"], p["due_date"]) == (18, "2028-06-01")


def test_a_request_that_changes_nothing_or_for_an_application_is_refused(app):
    pid = in_force(app)
    same = call(app, "POST", "/api/v1/change_request/", "pm", {
        "project": pid, "kind": "amount_increase", "new_amount": "3000000", "reason": "x"}, expect=422)
    assert same["code"] == "RC001" and "new_amount" in same["errors"]
    rt = app.extensions["danbao"]
    with app.app_context():
        applying = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm")).create(ENTITY, {
            "name": "申请中", "customer_kind": "corporate", "corporate_customer": project(app, pid)["corporate_customer"],
            "amount": "1000000", "term_months": 12}).id
    early = call(app, "POST", "/api/v1/change_request/", "pm", {
        "project": applying, "kind": "rate_change", "new_fee_rate": "0.01", "reason": "x"}, expect=422)
    assert "project" in early["errors"]


def test_the_approval_decision_records_the_terms_and_its_conditions_bind_signing(app):
    """The 批复: passing the final approval writes the approved terms; conditions the approver
    wrote must be confirmed met before 签约办理 is left; a change request moves the 批复."""
    from wfapifixtures import file_documents
    rt = app.extensions["danbao"]
    n = next(_N)
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"))
        corp = svc.create("corporate_customer", {"name": f"批复企业{n}", "uscc": make_uscc(random.Random(950 + n), "320100")})
        pid = svc.create(ENTITY, {"name": f"批复项目{n}", "customer_kind": "corporate", "corporate_customer": corp.id,
                                  "amount": "2000000", "loan_amount": "2000000", "term_months": 12, "fee_rate": "0.02",
                                  "start_date": "2026-12-01", "a_manager": app.ids["pm"], "b_manager": app.ids["pm2"],
                                  "loan_contract_no": "JK-9", "bank_contract_no": "BZ-9", "entrustment_contract_no": "WT-9",
                                  "counter_guarantees": [{"kind": "mortgage", "asset_kind": "real_estate", "owner": "甲",
                                                          "appraised_value": "4000000"}]}).id
        file_documents(rt, pid)
    call(app, "POST", f"/api/v1/{ENTITY}/{pid}/workflow", "pm2", {"workflow": "project_standard"})

    def task(who):
        return [t for t in call(app, "GET", "/api/v1/tasks/", who)["result"] if t["record_id"] == pid][0]["id"]

    for who in ("risk", "gm"):                                     # 初审, 复审
        call(app, "POST", f"/api/v1/tasks/{task(who)}/actions", who, {"action": "approve", "comment": "同意"})
    # the general manager writes the conditions while deciding, then signs off
    assert call(app, "PUT", f"/api/v1/{ENTITY}/{pid}", "boss", {"version": project(app, pid)["version"],
                                                               "approval_conditions": "放款前办妥抵押登记"})
    assert call(app, "PUT", f"/api/v1/{ENTITY}/{pid}", "pm", {"version": project(app, pid)["version"],
                                                             "approval_conditions": "无"}, expect=403)["code"] == "CT002"
    call(app, "POST", f"/api/v1/tasks/{task('boss')}/actions", "boss", {"action": "approve", "comment": "同意"})
    p = project(app, pid)
    assert (p["approved_amount"], p["approved_rate"], p["approved_term_months"]) == ("2000000.00", "0.020000", 12)
    assert p["approval_conditions"] == "放款前办妥抵押登记" and p["approved_on"] is not None
    call(app, "POST", f"/api/v1/tasks/{task('fin')}/actions", "fin", {"action": "approve", "comment": "已收费"})
    refused = call(app, "POST", f"/api/v1/tasks/{task('pm')}/actions", "pm", {"action": "approve", "comment": "已签约"},
                   expect=422)
    assert refused["code"] == "CT020" and "落实条件已落实的确认" in refused["message"]
    call(app, "PUT", f"/api/v1/{ENTITY}/{pid}", "pm", {"version": project(app, pid)["version"], "conditions_met": True})
    assert call(app, "POST", f"/api/v1/tasks/{task('pm')}/actions", "pm", {"action": "approve", "comment": "已签约"})
