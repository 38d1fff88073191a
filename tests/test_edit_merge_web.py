"""The edit form over a change made meanwhile, through the Flask test client:
the A角 saves the project form after finance confirmed a fee receipt (saved,
the receipt's settlement kept), and after a colleague changed a field the form
also sends (409, nothing saved, what was typed kept on screen)."""
from __future__ import annotations

import random
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from werkzeug.datastructures import MultiDict

from danbao.demo import make_uscc
from danbao.engines.records import Actor, RecordService
from webfixtures import login, staffed_app

ENTITY = "guarantee_project"
USERS = {"pm": "project_manager", "pm2": "project_manager", "risk": "risk_officer", "fin": "finance"}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    yield from staffed_app(module_database_url, tmp_path_factory.mktemp("inst"), USERS)


class FormValues(HTMLParser):
    """What a browser would post from ``#record-form`` as it is rendered
    (the add-row template's ``__i__`` inputs excluded)."""

    def __init__(self):
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._select = self._textarea = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "record-form":
            self._in_form = True
        if not self._in_form or "__i__" in (a.get("name") or ""):
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("file", "submit", "button"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values.append((name, a.get("value") or ""))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values.append((self._select, a.get("value") or ""))
        elif tag == "textarea" and name:
            self._textarea = [name, ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.values.append(tuple(self._textarea))
            self._textarea = None
        elif tag == "form":
            self._in_form = False


def form_values(html: str) -> list[tuple[str, str]]:
    parser = FormValues()
    parser.feed(html)
    return parser.values


def replace(values, name, value) -> MultiDict:
    return MultiDict([(k, value if k == name else v) for k, v in values])


def project_with_fee_plan(app) -> int:
    rt = app.extensions["danbao"]
    n = random.Random().randint(1, 10**6)
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"), seeding=True)   # imported in force
        corp = svc.create("corporate_customer", {"name": f"合并企业{n}", "uscc": make_uscc(random.Random(n), "320100")})
        return svc.create(ENTITY, {
            "project_no": f"MG-{n}", "name": f"合并项目{n}", "customer_kind": "corporate",
            "corporate_customer": corp.id, "amount": "3000000", "term_months": 12, "status": "guaranteeing",
            "a_manager": app.ids["pm"], "b_manager": app.ids["pm2"],    # the colleague who edits it too
            "counter_guarantees": [{"kind": "mortgage", "asset_kind": "real_estate", "appraised_value": "6000000"}],
            "fee_instalments": [{"kind": "guarantee_fee", "due_on": "2026-12-01", "amount": "15000.00"},
                                {"kind": "guarantee_fee", "due_on": "2027-03-01", "amount": "15000.00"}]}).id


def confirmed_receipt(app, pid, amount: str) -> None:
    """The guarantee fee received: made by the A角, checked, confirmed by finance (REST)."""
    client = app.test_client()
    made = client.post(f"/api/v1/{ENTITY}/{pid}/ledger", json={"kind": "guarantee_fee_received", "amount": amount},
                       headers=app.tokens["pm"])
    assert made.status_code == 201, made.data
    eid = made.get_json()["id"]
    for who, step in (("risk", "check"), ("fin", "confirm")):
        assert client.post(f"/api/v1/ledger/{eid}/{step}", json={}, headers=app.tokens[who]).status_code == 200


def record(app, pid) -> dict:
    resp = app.test_client().get(f"/api/v1/{ENTITY}/{pid}", headers=app.tokens["pm"])
    assert resp.status_code == 200
    return resp.get_json()["result"]


def test_the_form_saves_after_finance_settled_a_fee_meanwhile(app):
    pid = project_with_fee_plan(app)
    pm = login(app.test_client(), "pm")
    page = pm.get(f"/e/{ENTITY}/{pid}/edit")
    assert page.status_code == 200
    values = form_values(page.get_data(as_text=True))
    assert ("version", str(record(app, pid)["version"])) in values
    confirmed_receipt(app, pid, "15000.00")              # while the form is open
    paid = [r for r in record(app, pid)["fee_instalments"] if r["paid_amount"]]
    assert len(paid) == 1
    # in force, the A角 may keep the bank branch up to date (rules/controls.yaml)
    saved = pm.post(f"/e/{ENTITY}/{pid}/edit", data=replace(values, "bank_branch", "城东支行"))
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    after = record(app, pid)
    assert after["bank_branch"] == "城东支行"
    assert [(r["due_on"], Decimal(r["paid_amount"])) for r in after["fee_instalments"] if r["paid_amount"]] == [
        (paid[0]["due_on"], Decimal("15000.00"))]
    assert len(after["counter_guarantees"]) == 1


def test_the_form_is_refused_over_a_colleagues_change_and_keeps_the_typing(app):
    pid = project_with_fee_plan(app)
    pm = login(app.test_client(), "pm")
    values = form_values(pm.get(f"/e/{ENTITY}/{pid}/edit").get_data(as_text=True))
    current = record(app, pid)
    changed = app.test_client().put(f"/api/v1/{ENTITY}/{pid}", json={"release_note": "已收到银行还款凭证",
                                                                     "version": current["version"]},
                                    headers=app.tokens["pm2"])
    assert changed.status_code == 200, changed.data
    refused = pm.post(f"/e/{ENTITY}/{pid}/edit", data=replace(values, "bank_branch", "我输入的支行"))
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    assert "我输入的支行" in html and "pm2" in html
    after = record(app, pid)
    assert (after["bank_branch"], after["release_note"]) == (current["bank_branch"], "已收到银行还款凭证")
