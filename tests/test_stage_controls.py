"""Stage controls hold on every path (issue 10, findings 1–3): approved terms are
not editable, the fee plan is the system's, a project past application or with
money on it is never deleted — through the record service and through REST,
each refusal coded, with its status, and nothing changed. The core pack's
rules/controls.yaml is what is checked; a matrix over its stages is generated
from the metadata itself, so a new stage or grant adds its own cases."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from danbao.demo import make_uscc
from danbao.engines.records import Actor, RecordService
from danbao.engines.refusals import CODES, Refusal
from webfixtures import staffed_app

ENTITY = "guarantee_project"
USERS = {"pm": "project_manager", "pm2": "project_manager", "risk": "risk_officer", "fin": "finance",
         "boss": "manager", "audit": "auditor"}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    yield from staffed_app(module_database_url, tmp_path_factory.mktemp("inst"), USERS)


_N = iter(range(1, 10**6))


def seed(app, status: str, **values) -> int:
    """A project as it stands in ``status`` (seeded: imported history, not a person's edit)."""
    rt = app.extensions["danbao"]
    n = next(_N)
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"), seeding=True)
        corp = svc.create("corporate_customer", {"name": f"控制企业{n}", "uscc": make_uscc(random.Random(300 + n), "320100")})
        data = {"project_no": f"CT-{n:04d}", "name": f"控制项目{n}", "customer_kind": "corporate",
                "corporate_customer": corp.id, "amount": "5000000.00", "term_months": 12, "fee_rate": "0.02",
                "status": status, "a_manager": app.ids["pm"], "start_date": "2026-12-15", **values}
        return svc.create(ENTITY, data).id


def get(app, pid, who="pm"):
    resp = app.test_client().get(f"/api/v1/{ENTITY}/{pid}", headers=app.tokens[who])
    assert resp.status_code == 200
    return resp.get_json()["result"]


def put(app, pid, who, **values):
    version = get(app, pid, "boss")["version"]
    return app.test_client().put(f"/api/v1/{ENTITY}/{pid}", json={"version": version, **values},
                                 headers=app.tokens[who])


# -- finding 1: approved terms -----------------------------------------------------
@pytest.mark.parametrize("status", ["reviewing", "approved", "guaranteeing", "overdue"])
def test_terms_cannot_be_changed_after_submission(app, status):
    pid = seed(app, status)
    before = get(app, pid)
    resp = put(app, pid, "pm", amount="8000000.00", fee_rate="0.001")
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["code"] == "CT001" and body["field"] == "amount"
    assert body["details"]["fields"] == ["amount", "fee_rate"]
    assert "担保金额" in body["message"] and "担保费率" in body["message"]
    after = get(app, pid)
    assert (after["amount"], after["fee_rate"], after["version"]) == ("5000000.00", "0.020000", before["version"])


def test_terms_change_while_applying_by_the_project_manager_only(app):
    pid = seed(app, "applying")
    assert put(app, pid, "pm", amount="6000000.00").status_code == 200
    assert get(app, pid)["amount"] == "6000000.00"
    resp = put(app, pid, "fin", amount="7000000.00")          # finance may write, but not an application
    assert resp.status_code == 403 and resp.get_json()["code"] == "CT002"
    assert get(app, pid)["amount"] == "6000000.00"


def test_the_stage_grants_what_it_declares_and_to_whom(app):
    pid = seed(app, "guaranteeing", counter_guarantees=[
        {"kind": "mortgage", "asset_kind": "real_estate", "owner": "张三", "appraised_value": "6000000.00"}])
    row = get(app, pid)["counter_guarantees"][0]
    # in force: the A角 keeps the bank branch up to date, a risk officer revalues the collateral
    assert put(app, pid, "pm", bank_branch="城东支行").status_code == 200
    revalued = dict(row, appraised_value="5500000.00")
    assert put(app, pid, "risk", counter_guarantees=[revalued]).status_code == 200
    assert get(app, pid)["counter_guarantees"][0]["appraised_value"] == "5500000.00"
    # but a row added (a substitution) is a change request, not an edit
    resp = put(app, pid, "risk", counter_guarantees=[revalued, {"kind": "surety", "guarantor_name": "李四"}])
    assert resp.status_code == 409 and resp.get_json()["code"] == "CT001"
    assert resp.get_json()["field"] == "counter_guarantees"
    assert len(get(app, pid)["counter_guarantees"]) == 1
    # the risk class is the risk officer's, not the A角's
    resp = put(app, pid, "pm", risk_class="attention", risk_class_reason="经营下滑")
    assert resp.status_code == 403 and resp.get_json()["code"] == "CT002"
    assert get(app, pid)["risk_class"] == "normal"


def test_a_closed_status_changes_nothing(app):
    pid = seed(app, "released")
    resp = put(app, pid, "pm", release_note="补记")
    assert resp.status_code == 409 and resp.get_json()["code"] == "CT001"
    assert get(app, pid)["release_note"] is None


def test_a_value_sent_back_unchanged_is_no_change(app):
    pid = seed(app, "approved")
    record = get(app, pid)
    body = {k: v for k, v in record.items() if k not in ("id", "created_at", "updated_at")}
    resp = app.test_client().put(f"/api/v1/{ENTITY}/{pid}", json=body, headers=app.tokens["pm"])
    assert resp.status_code == 200, resp.get_json()


# -- finding 2: the fee plan ------------------------------------------------------------
def test_the_fee_plan_cannot_be_rewritten_or_emptied_by_a_person(app):
    plan = [{"kind": "guarantee_fee", "due_on": "2026-12-15", "amount": "58500.00", "paid_amount": "58500.00",
             "paid_on": "2026-12-15"},
            {"kind": "guarantee_fee", "due_on": "2027-03-15", "amount": "58500.00"}]
    pid = seed(app, "guaranteeing", fee_instalments=plan)
    rows = get(app, pid)["fee_instalments"]
    for sent in ([dict(rows[0], amount="1.00"), rows[1]], []):
        resp = put(app, pid, "pm", fee_instalments=sent)
        assert resp.status_code == 409
        assert resp.get_json()["code"] == "CT004" and resp.get_json()["field"] == "fee_instalments"
        assert [(r["amount"], r["paid_amount"]) for r in get(app, pid)["fee_instalments"]] == [
            ("58500.00", "58500.00"), ("58500.00", None)]


def test_the_status_is_the_workflows_not_a_persons(app):
    pid = seed(app, "applying")
    resp = put(app, pid, "pm", status="guaranteeing")
    assert resp.status_code == 409 and resp.get_json()["code"] == "CT004"
    assert get(app, pid)["status"] == "applying"
    created = app.test_client().post(f"/api/v1/{ENTITY}/", headers=app.tokens["pm"], json={
        "name": "直接在保", "customer_kind": "corporate", "corporate_customer": get(app, pid)["corporate_customer"],
        "amount": "1000000", "term_months": 12, "status": "guaranteeing"})
    assert created.status_code == 409 and created.get_json()["code"] == "CT004"


# -- finding 3: deleting -------------------------------------------------------------------
def test_a_project_past_application_is_never_deleted(app):
    pid = seed(app, "guaranteeing")
    version = get(app, pid)["version"]
    resp = app.test_client().delete(f"/api/v1/{ENTITY}/{pid}?version={version}", headers=app.tokens["risk"])
    assert resp.status_code == 409 and resp.get_json()["code"] == "CT010"
    assert get(app, pid)["status"] == "guaranteeing"


def test_a_project_with_ledger_entries_is_never_deleted(app):
    pid = seed(app, "applying")
    rt = app.extensions["danbao"]
    from danbao.model.system import LEDGER_TABLE
    with app.app_context():
        rt.session.execute(rt.models.system[LEDGER_TABLE].insert().values(
            project_entity=ENTITY, project_id=pid, kind="review_fee_received", amount=Decimal("5000.00"),
            direction=1, state="confirmed", booked_on=__import__("datetime").date(2026, 12, 1), note="",
            made_by_id=app.ids["pm"], made_at=__import__("datetime").datetime(2026, 12, 1, 9), meta_version="t",
            lock_version=0))
        rt.session.commit()
    version = get(app, pid)["version"]
    resp = app.test_client().delete(f"/api/v1/{ENTITY}/{pid}?version={version}", headers=app.tokens["risk"])
    assert resp.status_code == 409 and resp.get_json()["code"] == "CT012"
    assert resp.get_json()["details"] == {"entries": 1}
    assert get(app, pid)["id"] == pid


def test_an_application_never_submitted_may_be_deleted(app):
    pid = seed(app, "applying")
    version = get(app, pid)["version"]
    assert app.test_client().delete(f"/api/v1/{ENTITY}/{pid}?version={version}",
                                    headers=app.tokens["risk"]).status_code == 200
    assert app.test_client().get(f"/api/v1/{ENTITY}/{pid}", headers=app.tokens["pm"]).status_code == 404


# -- the form ------------------------------------------------------------------------------
def test_the_form_shows_locked_fields_as_text_and_saves_what_the_stage_allows(app):
    from webfixtures import login
    pid = seed(app, "guaranteeing")
    pm = login(app.test_client(), "pm")
    html = pm.get(f"/e/{ENTITY}/{pid}/edit").get_data(as_text=True)
    assert 'id="fld-amount" data-locked="true"' in html and 'name="amount"' not in html
    assert 'data-field="counter_guarantees" data-locked="true"' in html
    assert 'name="bank_branch"' in html


# -- the matrix: every stage × role × governed field, from the metadata -------------------
def _matrix(meta):
    control = meta.controls[ENTITY]
    em = meta.entity(ENTITY)
    fields = [f.name for f in em.column_fields if not f.readonly and not f.computed
              and f.name not in ("corporate_customer", "individual_customer", "a_manager", "b_manager", "product")]
    for rule in control.stages:
        status = rule.statuses[0]
        for role in ("project_manager", "risk_officer", "finance"):
            for name in fields:
                if rule.grants is None:
                    allowed = not rule.roles or role in rule.roles
                else:
                    allowed = any(name in g.fields and not g.steps and (not g.roles or role in g.roles)
                                  for g in rule.grants)
                yield status, role, name, allowed


def test_the_control_matrix_through_the_record_service(app):
    """For each stage's first status, each writing role and each plain field: a change is
    allowed exactly when the metadata grants it (step-bound grants count as locked with no
    workflow running), and a refusal changes nothing."""
    rt = app.extensions["danbao"]
    meta = rt.meta
    samples = {"name": "新名称", "bank_branch": "新支行", "loan_purpose": "新用途", "risk_class": "attention",
               "risk_class_reason": "理由"}
    who = {"project_manager": "pm", "risk_officer": "risk", "finance": "fin"}
    projects = {}
    checked = 0
    for status, role, name, allowed in _matrix(meta):
        if name not in samples:
            continue
        pid = projects.get(status) or projects.setdefault(status, seed(app, status))
        with app.app_context():
            svc = RecordService(rt.models, rt.session, Actor(app.ids[who[role]], who[role]))
            obj = svc.get(ENTITY, pid)
            before = getattr(obj, name)
            values = {name: samples[name]}
            if name == "risk_class":
                values["risk_class_reason"] = "理由"
            try:
                svc.update(ENTITY, pid, values, expected_version=obj.version)
                outcome = True
            except Refusal as exc:
                rt.session.rollback()
                assert exc.code in ("CT001", "CT002"), (status, role, name, exc.code)
                outcome = False
                assert getattr(svc.get(ENTITY, pid), name) == before
            if outcome:                                  # put it back for the next role
                svc2 = RecordService(rt.models, rt.session, Actor(None, "t"))
                svc2.assign(ENTITY, pid, {name: before} if name != "risk_class" else
                            {name: before, "risk_class_reason": None})
                rt.session.commit()
        assert outcome == allowed, (status, role, name)
        checked += 1
    assert checked >= 60


def test_every_refusal_code_is_documented():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    documented = {line.split("|")[1].strip() for line in readme.splitlines()
                  if line.startswith("| ") and line.split("|")[1].strip() in CODES}
    assert documented == set(CODES)


# -- the record service's own codes, through REST ----------------------------------------
def test_the_record_services_refusals_carry_their_codes(app):
    pid = seed(app, "applying")
    client = app.test_client()
    bad = put(app, pid, "pm", amount="-1")
    assert bad.status_code == 422 and bad.get_json()["code"] == "RC001" and "amount" in bad.get_json()["errors"]
    stale = client.put(f"/api/v1/{ENTITY}/{pid}", json={"version": 0, "name": "旧版本"}, headers=app.tokens["pm"])
    assert stale.status_code == 409 and stale.get_json()["code"] == "RC002"
    missing = client.get(f"/api/v1/{ENTITY}/999999", headers=app.tokens["pm"])
    assert missing.status_code == 404 and missing.get_json()["code"] == "RC003"
    assert get(app, pid)["name"] != "旧版本"


def test_a_referenced_record_and_one_in_approval_are_not_deleted(app):
    rt = app.extensions["danbao"]
    with app.app_context():
        bank = RecordService(rt.models, rt.session, Actor(None, "t")).create("bank", {"name": "引用银行"}).id
    pid = seed(app, "applying", bank=bank)
    with app.app_context():          # the bank's delete right is nobody's: delete it as the system would
        svc = RecordService(rt.models, rt.session, Actor(None, "t"))
        with pytest.raises(Refusal) as referenced:
            svc.delete("bank", bank, expected_version=svc.get("bank", bank).version)
        assert referenced.value.code == "RC005" and referenced.value.status == 409
    from danbao.engines.workflow import WorkflowEngine
    with app.app_context():
        WorkflowEngine(rt.session, rt.models, rt.meta).start(ENTITY, pid, "project_standard",
                                                             Actor(app.ids["pm2"], "pm2"))
    version = get(app, pid)["version"]
    resp = app.test_client().delete(f"/api/v1/{ENTITY}/{pid}?version={version}", headers=app.tokens["risk"])
    assert resp.status_code == 409 and resp.get_json()["code"] == "CT011"
    assert get(app, pid)["status"] == "reviewing"
