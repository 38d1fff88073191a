"""The ledger (台账) on the project page, the pending page and the REST API,
through the Flask test client: a maker-checker chain by three people and the
balances after it; refusals with their status and message that change nothing;
who sees which entry waiting; the product panel and the counter-guarantee
revaluation history of the project page."""
from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest

from danbao.demo import make_uscc
from danbao.engines.history import revaluations
from danbao.engines.records import Actor, RecordService
from webfixtures import add_user, jwt, login, make_app
from wfapifixtures import add_role, dispose

ENTITY = "guarantee_project"
#: the core pack's ledger settings: the project's A角 makes, a risk officer checks, finance confirms
USERS = {"pm": "project_manager", "pm2": "project_manager", "risk": "risk_officer", "risk2": "risk_officer",
         "fin": "finance", "audit": "auditor", "both": "project_manager"}
_SEQ = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    app = make_app(module_database_url, tmp_path_factory.mktemp("inst"))
    app.ids = {name: add_user(app, name, role) for name, role in USERS.items()}
    add_role(app, "both", "risk_officer")            # an A角 who also checks: never their own entries
    client = app.test_client()
    app.tokens = {name: jwt(client, name) for name in USERS}
    yield app
    dispose(app)


def _project(app, *, a_manager="pm", status="guaranteeing", amount="5000000", **values) -> int:
    n = next(_SEQ)
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"), seeding=True)   # a book as it stands
        corp = svc.create("corporate_customer", {"name": f"台账企业{n}",
                                                 "uscc": make_uscc(random.Random(5000 + n), "320100")})
        return svc.create(ENTITY, {"project_no": f"LG-{n:04d}", "name": f"台账项目{n}", "customer_kind": "corporate",
                                   "corporate_customer": corp.id, "amount": amount, "term_months": 12,
                                   "status": status, "a_manager": app.ids[a_manager], **values}).id


def _post(app, who, url, body=None):
    return app.test_client().post(url, json=body if body is not None else {}, headers=app.tokens[who])


def _ledger(app, who, pid):
    resp = app.test_client().get(f"/api/v1/{ENTITY}/{pid}/ledger", headers=app.tokens[who])
    assert resp.status_code == 200, resp.data
    return resp.get_json()


def _balances(app, pid, who="audit") -> dict[str, str]:
    return {b["code"]: b["amount"] for b in _ledger(app, who, pid)["balances"]}


def _make(app, who, pid, kind, amount, **extra):
    return _post(app, who, f"/api/v1/{ENTITY}/{pid}/ledger", {"kind": kind, "amount": amount, **extra})


def _through(app, pid, kind, amount) -> int:
    """An entry made by the A角, checked by a risk officer, confirmed by finance (all through the API)."""
    made = _make(app, "pm", pid, kind, amount)
    assert made.status_code == 201, made.data
    eid = made.get_json()["id"]
    assert _post(app, "risk", f"/api/v1/ledger/{eid}/check").status_code == 200
    assert _post(app, "fin", f"/api/v1/ledger/{eid}/confirm").status_code == 200
    return eid


# -- the API -------------------------------------------------------------------------------------
def test_a_maker_checker_chain_by_three_people_and_the_balances_after(app):
    pid = _project(app)
    made = _make(app, "pm", pid, "deposit_received", "500000.00", booked_on="2026-03-01", note="首笔保证金")
    assert made.status_code == 201, made.data
    entry = made.get_json()["result"]
    eid = entry["id"]
    assert (entry["state"], entry["kind_label"], entry["amount"], entry["direction"]) == ("made", "收取保证金", "500000.00", 1)
    assert (entry["made_by_id"], entry["booked_on"], entry["note"]) == (app.ids["pm"], "2026-03-01", "首笔保证金")
    assert entry["checked_by"] is None and entry["customer_entity"] == "corporate_customer"
    assert _balances(app, pid)["deposit_held"] == "0.00"              # not counted until confirmed

    # finance cannot check (it confirms); the risk officer can
    refused = _post(app, "fin", f"/api/v1/ledger/{eid}/check")
    assert refused.status_code == 403 and "不能复核" in refused.get_json()["message"]
    early = _post(app, "fin", f"/api/v1/ledger/{eid}/confirm")
    assert early.status_code == 409                                    # a made entry is checked first
    checked = _post(app, "risk", f"/api/v1/ledger/{eid}/check")
    assert checked.status_code == 200, checked.data
    assert checked.get_json()["result"]["state"] == "checked"
    assert checked.get_json()["result"]["checked_by_id"] == app.ids["risk"]
    # a stale lock_version is a conflict
    stale = _post(app, "fin", f"/api/v1/ledger/{eid}/confirm", {"lock_version": 0})
    assert stale.status_code == 409
    confirmed = _post(app, "fin", f"/api/v1/ledger/{eid}/confirm", {"lock_version": 1})
    assert confirmed.status_code == 200, confirmed.data
    result = confirmed.get_json()["result"]
    assert result["state"] == "confirmed" and result["confirmed_by_id"] == app.ids["fin"]
    assert len({result["made_by_id"], result["checked_by_id"], result["confirmed_by_id"]}) == 3

    _through(app, pid, "underwriting", "5000000.00")
    refund = _through(app, pid, "deposit_refunded", "200000.00")
    balances = _balances(app, pid)
    assert balances["deposit_held"] == "300000.00"
    assert balances["guarantee_outstanding"] == "5000000.00"
    assert set(balances) == {"review_fee", "guarantee_fee", "deposit_held", "loan_outstanding",
                             "guarantee_outstanding", "compensation_paid", "recovered", "written_off"}
    assert all(v == "0.00" for k, v in balances.items() if k not in ("deposit_held", "guarantee_outstanding"))
    labels = {b["code"]: b["label"] for b in _ledger(app, "audit", pid)["balances"]}
    assert labels["deposit_held"] == "保证金余额"

    # reversing the deposit would take more than is held; reversing the refund undoes it
    too_much = _post(app, "pm", f"/api/v1/ledger/{eid}/reverse", {"reason": "误录"})
    assert too_much.status_code == 422 and "保证金余额变为负数" in too_much.get_json()["message"]
    rev = _post(app, "pm", f"/api/v1/ledger/{refund}/reverse", {"reason": "退款未成功"})
    assert rev.status_code == 201, rev.data
    reversal = rev.get_json()["result"]
    assert (reversal["direction"], reversal["reverses_id"], reversal["reversal"]) == (-1, refund, True)
    assert (reversal["kind"], reversal["amount"], reversal["note"]) == ("deposit_refunded", "200000.00", "退款未成功")
    again = _post(app, "pm", f"/api/v1/ledger/{refund}/reverse", {"reason": "再冲一次"})
    assert again.status_code == 409                                     # one reversal per entry
    assert _post(app, "risk", f"/api/v1/ledger/{reversal['id']}/check").status_code == 200
    assert _post(app, "fin", f"/api/v1/ledger/{reversal['id']}/confirm").status_code == 200
    view = _ledger(app, "audit", pid)
    assert {b["code"]: b["amount"] for b in view["balances"]}["deposit_held"] == "500000.00"
    assert view["entries"][0]["id"] == reversal["id"]                  # newest first
    assert next(e for e in view["entries"] if e["id"] == refund)["reversed_by_id"] == reversal["id"]
    assert view["can_make"] is False and _ledger(app, "pm", pid)["can_make"] is True


def test_refusals_have_their_status_and_message_and_change_nothing(app):
    pid = _project(app, a_manager="both")
    eid = _make(app, "both", pid, "deposit_received", "100000.00").get_json()["id"]
    before = _ledger(app, "audit", pid)

    # the maker cannot check their own entry, though they hold the checker's role
    own = _post(app, "both", f"/api/v1/ledger/{eid}/check")
    assert own.status_code == 403
    assert own.get_json()["message"] == "制单、复核、确认须由三个不同的人完成"
    en = app.test_client().post(f"/api/v1/ledger/{eid}/check", json={},
                                headers=dict(app.tokens["both"], **{"Accept-Language": "en"}))
    assert en.get_json()["message"] == "Making, checking and confirming an entry takes three different people"
    # someone who is not the A角 may not make an entry on the project: under the data
    # permissions (record rules) another manager's project does not even exist for him
    assert _make(app, "pm2", pid, "deposit_received", "1.00").status_code == 404
    assert _ledger(app, "audit", pid) == before

    assert _post(app, "risk", f"/api/v1/ledger/{eid}/check").status_code == 200
    assert _post(app, "fin", f"/api/v1/ledger/{eid}/confirm").status_code == 200
    before = _ledger(app, "audit", pid)
    assert {b["code"]: b["amount"] for b in before["balances"]}["deposit_held"] == "100000.00"

    # a refund above the deposit held
    above = _make(app, "both", pid, "deposit_refunded", "100000.01")
    assert above.status_code == 422
    body = above.get_json()
    assert "超过保证金余额" in body["message"] and "100000.00" in body["message"] and body["errors"]["_"] == body["message"]
    # a kind the project's status does not allow, a bad amount, an unknown field, a missing reason
    assert _make(app, "both", pid, "compensation_paid", "1.00").status_code == 422
    bad = _make(app, "both", pid, "deposit_received", "12.345")
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"amount"}
    assert _make(app, "both", pid, "no_such_kind", "1.00").get_json()["errors"].keys() == {"kind"}
    assert _make(app, "both", pid, "deposit_received", "1.00", extra=1).status_code == 422
    assert _make(app, "both", pid, "deposit_received", "0.00").status_code == 422
    assert _post(app, "risk", f"/api/v1/ledger/{eid}/reject", {}).status_code == 422
    assert _post(app, "risk", f"/api/v1/ledger/{eid}/reject", {"reason": "晚了"}).status_code == 409   # confirmed
    assert _ledger(app, "audit", pid) == before                        # nothing changed

    assert _post(app, "risk", "/api/v1/ledger/99999999/check").status_code == 404
    assert app.test_client().get(f"/api/v1/{ENTITY}/99999999/ledger", headers=app.tokens["audit"]).status_code == 404
    assert app.test_client().get(f"/api/v1/bank/{pid}/ledger", headers=app.tokens["audit"]).status_code == 404
    assert app.test_client().get(f"/api/v1/{ENTITY}/{pid}/ledger").status_code == 401


def test_reject_with_a_reason_keeps_the_entry_out_of_the_balances(app):
    pid = _project(app)
    eid = _make(app, "pm", pid, "review_fee_received", "3000.00").get_json()["id"]
    rejected = _post(app, "risk", f"/api/v1/ledger/{eid}/reject", {"reason": "金额有误"})
    assert rejected.status_code == 200
    result = rejected.get_json()["result"]
    assert (result["state"], result["reject_reason"], result["rejected_by_id"]) == ("rejected", "金额有误", app.ids["risk"])
    assert _balances(app, pid)["review_fee"] == "0.00"


def test_the_pending_page_and_api_list_an_entry_for_its_checker_not_its_maker(app):
    pid = _project(app)
    eid = _make(app, "pm", pid, "guarantee_fee_received", "25000.00").get_json()["id"]

    def pending_ids(who):
        resp = app.test_client().get("/api/v1/ledger/pending", headers=app.tokens[who])
        assert resp.status_code == 200, resp.data
        return [e["id"] for e in resp.get_json()["result"]]

    assert eid in pending_ids("risk") and eid in pending_ids("risk2")
    assert eid not in pending_ids("pm") and eid not in pending_ids("fin")
    risk_page = login(app.test_client(), "risk").get("/ledger/pending").text
    assert f'data-entry="{eid}" data-step="check"' in risk_page and "收取担保费" in risk_page
    assert 'id="danbao-ledger-badge"' in risk_page
    pm_page = login(app.test_client(), "pm").get("/ledger/pending").text
    assert f'data-entry="{eid}"' not in pm_page and 'id="danbao-ledger-badge"' not in pm_page
    assert 'id="danbao-ledger-menu"' not in pm_page                    # a project manager neither checks nor confirms

    # checked from the pending page, it moves on to finance
    risk = login(app.test_client(), "risk")
    back = risk.post(f"/ledger/entry/{eid}/check", data={"next": "pending"}, follow_redirects=True)
    assert back.status_code == 200 and "已复核" in back.text and f'data-entry="{eid}"' not in back.text
    assert eid in pending_ids("fin") and eid not in pending_ids("risk")
    fin_page = login(app.test_client(), "fin").get("/ledger/pending").text
    assert f'data-entry="{eid}" data-step="confirm"' in fin_page
    assert app.test_client().get("/api/v1/ledger/pending").status_code == 401


# -- the project page ------------------------------------------------------------------------------------
def test_the_ledger_panel_forms_and_refusals_as_messages(app):
    pid = _project(app)
    pm = login(app.test_client(), "pm")
    page = pm.get(f"/e/{ENTITY}/{pid}").text
    assert 'id="ledger-make"' in page and 'data-balance="deposit_held"' in page
    assert 'id="ledger-make"' not in login(app.test_client(), "risk").get(f"/e/{ENTITY}/{pid}").text

    done = pm.post(f"/ledger/{ENTITY}/{pid}/make", data={"kind": "deposit_received", "amount": "80,000",
                                                          "booked_on": "2026-04-01", "note": "表单录入"},
                   follow_redirects=True)
    assert "分录已登记" in done.text and "表单录入" in done.text
    eid = int(re.search(r'data-entry="(\d+)" data-state="made"', done.text).group(1))
    assert 'data-action="check"' not in done.text                     # not for the maker

    risk = login(app.test_client(), "risk")
    page = risk.get(f"/e/{ENTITY}/{pid}").text
    assert 'data-action="check"' in page and 'data-action="reject"' in page
    missing = risk.post(f"/ledger/entry/{eid}/reject", data={"reason": " "}, follow_redirects=True)
    assert "请填写原因" in missing.text and f'data-entry="{eid}" data-state="made"' in missing.text
    risk.post(f"/ledger/entry/{eid}/check")
    fin = login(app.test_client(), "fin")
    assert 'data-action="confirm"' in fin.get(f"/e/{ENTITY}/{pid}").text
    fin.post(f"/ledger/entry/{eid}/confirm")
    page = pm.get(f"/e/{ENTITY}/{pid}").text
    assert f'data-entry="{eid}" data-state="confirmed"' in page and 'data-action="reverse"' in page
    assert re.search(r'data-balance="deposit_held">80,000\.00<', page)

    # the engine's refusal is a message on the page, never a stack trace
    refused = pm.post(f"/ledger/{ENTITY}/{pid}/make", data={"kind": "deposit_refunded", "amount": "90000"},
                      follow_redirects=True)
    assert refused.status_code == 200 and "超过保证金余额" in refused.text and "Traceback" not in refused.text
    assert re.search(r'data-balance="deposit_held">80,000\.00<', refused.text)
    bad = pm.post(f"/ledger/{ENTITY}/{pid}/make", data={"kind": "deposit_received", "amount": "八万"},
                  follow_redirects=True)
    assert "金额应为数字" in bad.text
    other = login(app.test_client(), "pm2").post(f"/ledger/{ENTITY}/{pid}/make",
                                                 data={"kind": "deposit_received", "amount": "1"}, follow_redirects=True)
    assert other.status_code == 404        # another manager's project: not his to see (record rules)
    assert pm.post(f"/ledger/entry/{eid}/nonsense").status_code == 404


def test_the_revaluation_history_shows_old_and_new_values(app):
    row = {"kind": "mortgage", "asset_kind": "real_estate", "owner": "张三", "appraised_value": "1000000.00"}
    pid = _project(app, amount="1000000", counter_guarantees=[row])     # valued when it was approved
    rt = app.extensions["danbao"]
    with app.app_context():
        # in force, a risk officer revalues the collateral (the stage lets risk change a row's value)
        svc = RecordService(rt.models, rt.session, Actor(app.ids["risk"], "risk"))
        project = svc.get(ENTITY, pid)
        row_id = project.counter_guarantees[0].id
        svc.update(ENTITY, pid, {"counter_guarantees": [dict(row, id=row_id, appraised_value="1200000.00")]},
                   expected_version=project.version)
        history = revaluations(rt.session, rt.models, rt.meta, pid)
    assert [(h.record_id, h.old, h.new, h.username) for h in history] == [
        (row_id, Decimal("1000000.00"), Decimal("1200000.00"), "risk"), (row_id, None, Decimal("1000000.00"), "pm")]
    assert history[0].change == Decimal("200000.00") and history[0].kind == "mortgage"

    page = login(app.test_client(), "audit").get(f"/e/{ENTITY}/{pid}").text
    panel = page[page.index('id="revaluations"'):]
    assert 'data-old="1,000,000.00"' in panel and 'data-new="1,200,000.00"' in panel and "+200,000.00" in panel
    assert "抵押" in panel and "首次估值" in panel


def test_the_product_panel(app):
    pid = _project(app, amount="2000000")
    page = login(app.test_client(), "audit").get(f"/e/{ENTITY}/{pid}").text
    assert 'id="product-label">银行贷款担保<' in page and "融资担保" in page
    assert 'id="product-deposit-rate">10%<' in page
    assert "贷款担保费" in page and "评审费" in page
    assert "抵押、质押、保证" in page
    assert 'data-short="true"' in page and 'id="coverage-short"' in page      # no counter-guarantee yet
    assert 'data-document="business_licence"' in page and "营业执照" in page
    assert 'id="limit-flag"' not in page
    # a project that would breach the single-customer limit carries the flag in red
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"), seeding=True)
        customer = svc.get(ENTITY, pid).corporate_customer_id
        svc.create(ENTITY, {"project_no": "LG-BIG1", "name": "大额在保", "customer_kind": "corporate",
                            "corporate_customer": customer, "amount": "45000000", "term_months": 12,
                            "status": "guaranteeing", "a_manager": app.ids["pm"]})
        flagged = svc.create(ENTITY, {"project_no": "LG-BIG2", "name": "大额申请", "customer_kind": "corporate",
                                      "corporate_customer": customer, "amount": "10000000", "term_months": 12,
                                      "status": "applying", "a_manager": app.ids["pm"]}).id
    page = login(app.test_client(), "audit").get(f"/e/{ENTITY}/{flagged}").text
    assert 'id="limit-flag"' in page and "单一客户集中度将达" in page
    en = app.test_client()
    login(en, "audit")
    en.get("/lang/en")
    assert "Bank loan guarantee" in en.get(f"/e/{ENTITY}/{pid}").text


def test_openapi_describes_the_ledger(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert set(paths[f"/api/v1/{ENTITY}/{{record_id}}/ledger"]) == {"get", "post"}
    for action in ("check", "confirm", "reject", "reverse"):
        responses = paths[f"/api/v1/ledger/{{entry_id}}/{action}"]["post"]["responses"]
        assert {"403", "404", "409", "422"} <= set(responses), action
    assert "/api/v1/ledger/pending" in paths
    assert spec["components"]["schemas"]["LedgerEntry"]["properties"]["amount"]["pattern"]
