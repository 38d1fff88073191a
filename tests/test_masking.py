"""Personal data masked (issue 10 finding 12): resident IDs, phones and bank accounts.

The committee member, finance and the auditor see 110***********1233 and
138****5678 on list pages, record pages, the change history and REST; they
find a customer by the exact number but not by part of it; risk and the
project manager see the numbers, and each such view is written to
danbao_sensitive_view. A masked user's form that sends the mask back keeps
the stored value. On SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from danbao.engines.masking import Masker, mask_text
from danbao.engines.records import Actor, RecordService
from danbao.model.system import SENSITIVE_VIEW_TABLE
from webfixtures import PASSWORD, add_user, jwt, make_app

NOW = dt.datetime(2026, 12, 1, 10, 0)
ID_NO = "110101199003071233"           # a real check digit (GB 11643)
SPOUSE_ID = "320102198506124561"
MOBILE = "13812345678"
CAST = {"risk": "risk_officer", "pm": "project_manager", "comm": "committee_member", "fin": "finance",
        "audit": "auditor", "root": "Admin"}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    from wfapifixtures import dispose
    app = make_app(module_database_url, tmp_path_factory.mktemp("instance"), WTF_CSRF_ENABLED=True)
    app.ids = {name: add_user(app, name, role) for name, role in CAST.items()}
    client = app.test_client()
    app.tokens = {name: jwt(client, name) for name in CAST}
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(None, "seed"), clock=lambda: NOW)
        person = svc.create("individual_customer", {
            "name": "脱敏测试人", "id_type": "resident_id", "id_no": ID_NO, "mobile": MOBILE,
            "family_members": [{"relation": "spouse", "name": "配偶甲", "id_no": SPOUSE_ID}]})
        app.person = person.id
        # the project manager's project, so the customer is his (record rules)
        svc.create("guarantee_project", {"project_no": "TM-001", "name": "脱敏项目", "amount": "100000",
                                         "term_months": 6, "customer_kind": "individual",
                                         "individual_customer": person.id, "a_manager": app.ids["pm"]})
    yield app
    dispose(app)


def _views(app) -> list[tuple]:
    rt = app.extensions["danbao"]
    with app.app_context():
        table = rt.models.system[SENSITIVE_VIEW_TABLE]
        return [tuple(r) for r in rt.session.execute(
            sa.select(table.c.username, table.c.entity, table.c.record_id, table.c.channel).order_by(table.c.id))]


def _clear_views(app) -> None:
    rt = app.extensions["danbao"]
    with app.app_context():
        rt.session.execute(rt.models.system[SENSITIVE_VIEW_TABLE].delete())
        rt.session.commit()


def _login(client, who: str):
    page = client.get("/login/").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)
    assert client.post("/login/", data={"username": who, "password": PASSWORD, "csrf_token": token}).status_code in (302, 303)
    return client


def test_mask_shapes():
    assert mask_text("id_number", ID_NO) == "110***********1233"
    assert mask_text("phone", MOBILE) == "138****5678"
    assert mask_text("bank_account", "6222021234567890123") == "6222***********0123"
    assert mask_text("phone", "12345") == "*****"
    assert mask_text("id_number", None) == "" and mask_text("id_number", "") == ""


@pytest.mark.parametrize("who", ["comm", "fin", "audit"])
def test_rest_masks_for_roles_without_unmask(app, who):
    _clear_views(app)
    client = app.test_client()
    one = client.get(f"/api/v1/individual_customer/{app.person}", headers=app.tokens[who]).get_json()["result"]
    assert (one["id_no"], one["mobile"]) == ("110***********1233", "138****5678")
    assert one["family_members"][0]["id_no"] == "320***********4561"
    assert one["name"] == "脱敏测试人"
    listed = client.get("/api/v1/individual_customer/", headers=app.tokens[who]).get_json()["result"]
    assert [(r["id_no"], r["mobile"]) for r in listed] == [("110***********1233", "138****5678")]
    assert _views(app) == []                      # nothing seen in clear, nothing to audit


def test_rest_shows_the_numbers_to_risk_and_audits_the_view(app):
    _clear_views(app)
    client = app.test_client()
    one = client.get(f"/api/v1/individual_customer/{app.person}", headers=app.tokens["risk"]).get_json()["result"]
    assert (one["id_no"], one["mobile"], one["family_members"][0]["id_no"]) == (ID_NO, MOBILE, SPOUSE_ID)
    pm = client.get(f"/api/v1/individual_customer/{app.person}", headers=app.tokens["pm"]).get_json()["result"]
    assert pm["id_no"] == ID_NO
    assert _views(app) == [("risk", "individual_customer", app.person, "api"),
                           ("pm", "individual_customer", app.person, "api")]


def test_masked_roles_search_by_the_exact_value_only(app):
    client = app.test_client()

    def count(who, query):
        return client.get(f"/api/v1/individual_customer/?{query}", headers=app.tokens[who]).get_json()["count"]
    assert count("comm", f"q={ID_NO}") == 1
    assert count("comm", "q=110101") == 0
    assert count("comm", "q=5678") == 0
    assert count("comm", f"q={MOBILE}") == 1
    assert count("comm", "id_no__contains=1101") == 0
    assert count("comm", f"id_no__contains={ID_NO}") == 1
    assert count("comm", "q=脱敏") == 1                 # names are not masked: partial search works
    assert count("risk", "q=110101") == 1
    assert count("risk", "id_no__contains=1101") == 1


def test_screens_mask_list_page_form_and_history(app):
    rt = app.extensions["danbao"]
    with app.app_context():       # a change to the mobile, so the history has old → new numbers
        svc = RecordService(rt.models, rt.session, Actor(app.ids["risk"], "risk"), clock=lambda: NOW)
        obj = svc.get("individual_customer", app.person)
        svc.update("individual_customer", app.person, {"mobile": "13900001111"}, expected_version=obj.version)
    try:
        comm = _login(app.test_client(), "comm")
        listing = comm.get("/e/individual_customer/").get_data(as_text=True)
        assert "110***********1233" in listing and ID_NO not in listing
        page = comm.get(f"/e/individual_customer/{app.person}").get_data(as_text=True)
        assert "110***********1233" in page and "139****1111" in page and "138****5678" in page
        for clear in (ID_NO, SPOUSE_ID, MOBILE, "13900001111"):
            assert clear not in page
        searched = comm.get(f"/e/individual_customer/?q={ID_NO[:6]}").get_data(as_text=True)
        assert "脱敏测试人" not in searched
        _clear_views(app)
        risk = _login(app.test_client(), "risk")
        page = risk.get(f"/e/individual_customer/{app.person}").get_data(as_text=True)
        assert ID_NO in page and "13900001111" in page
        risk.get("/e/individual_customer/")
        assert _views(app) == [("risk", "individual_customer", app.person, "page"),
                               ("risk", "individual_customer", app.person, "list")]
    finally:
        with app.app_context():
            obj = svc.get("individual_customer", app.person)
            svc.update("individual_customer", app.person, {"mobile": MOBILE}, expected_version=obj.version)


def test_a_masked_writer_sending_the_mask_back_keeps_the_number(app):
    """A role that may edit but not see the numbers (finance, in a test of the engine):
    the masked text it was shown means "unchanged"; a new number is taken."""
    rt = app.extensions["danbao"]
    with app.app_context():
        masker = Masker(rt.meta, {"finance"})
        em = rt.meta.entity("individual_customer")
        obj = RecordService(rt.models, rt.session, Actor(None, "t")).get("individual_customer", app.person)
        child = obj.family_members[0]
        sent = {"id_no": "110***********1233", "mobile": "13700002222", "name": "脱敏测试人",
                "family_members": [{"id": child.id, "relation": "spouse", "name": "配偶甲", "id_no": "320***********4561"}]}
        kept = masker.keep_stored(em, obj, sent)
        assert "id_no" not in kept and kept["mobile"] == "13700002222"
        assert "id_no" not in kept["family_members"][0]
        assert Masker(rt.meta, {"risk_officer"}).keep_stored(em, obj, sent) == sent
        assert masker.masked_fields(em) == {"id_no", "mobile"}
        assert Masker(rt.meta, {"Admin"}).masked_fields(em) == frozenset()
