"""The regulatory dashboard (监管指标) through the Flask test client: its figures
against an independent computation over the projects made here, who may read
it and refresh the customers' exposures, and the JSON API with its OpenAPI path."""
from __future__ import annotations

import random
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest

from danbao.demo import make_uscc
from danbao.engines.ledger import LedgerService
from danbao.engines.records import Actor, RecordService
from danbao.web.regulatory_views import today
from webfixtures import add_user, jwt, login, make_app
from wfapifixtures import dispose

NET_ASSETS = Decimal("500000000.00")
STEP = Decimal("0.000001")
USERS = {"pm": "project_manager", "risk": "risk_officer", "boss": "manager", "fin": "finance",
         "audit": "auditor", "c1": "committee_member"}


@pytest.fixture
def world(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance")
    app.ids = {name: add_user(app, name, role) for name, role in USERS.items()}
    yield app
    dispose(app)


def _ratio(part, whole=NET_ASSETS) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(STEP, ROUND_HALF_UP)


def _status(share: Decimal, limit: Decimal) -> str:
    if share > limit:
        return "breach"
    return "near" if share >= limit * Decimal("0.9") else "ok"


class Book:
    """Customers and projects made for one test, remembered for the independent sums."""

    def __init__(self, app):
        self.app = app
        self.rt = app.extensions["danbao"]
        self.projects: list[dict] = []
        self.n = 0

    def svc(self, who="pm"):
        return RecordService(self.rt.models, self.rt.session, Actor(self.app.ids[who], who), seeding=True)

    def corp(self, name, related_to=None) -> int:
        self.n += 1
        data = {"name": name, "uscc": make_uscc(random.Random(7000 + self.n), "320100")}
        if related_to is not None:
            data["related_parties"] = [{"name": "关联", "relation": "same_controller", "related_customer": related_to}]
        with self.app.app_context():
            return self.svc().create("corporate_customer", data).id

    def project(self, customer: int, amount: str, status: str, product="bank_loan", risk_class="normal") -> int:
        self.n += 1
        with self.app.app_context():
            pid = self.svc().create("guarantee_project", {
                "project_no": f"RG-{self.n:04d}", "name": f"监管项目{self.n}", "customer_kind": "corporate",
                "corporate_customer": customer, "amount": amount, "term_months": 12, "status": status,
                "product": product, "risk_class": risk_class, "a_manager": self.app.ids["pm"],
                "start_date": "2026-01-01"}).id
        self.projects.append({"id": pid, "customer": customer, "amount": Decimal(amount), "status": status,
                              "product": product, "risk_class": risk_class})
        return pid

    def set_status(self, pid: int, status: str) -> None:
        with self.app.app_context():
            self.svc().assign("guarantee_project", pid, {"status": status})
            self.rt.session.commit()
        next(p for p in self.projects if p["id"] == pid)["status"] = status


def _book_and_confirm(app, pid, kind, amount):
    """One entry through the three hands: the A角 makes, a risk officer checks, finance confirms."""
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = LedgerService(rt.session, rt.models, rt.meta)
        entry = svc.make(pid, kind, Decimal(amount), Actor(app.ids["pm"], "pm"), booked_on=today())
        svc.check(entry, Actor(app.ids["risk"], "risk"))
        svc.confirm(entry, Actor(app.ids["fin"], "fin"))


def _make_book(app) -> Book:
    book = Book(app)
    a = book.corp("甲集团有限公司")
    b = book.corp("甲集团子公司", related_to=a)            # A and B: one related group
    c = book.corp("丙实业有限公司")
    d = book.corp("丁贸易有限公司")
    book.group = (a, b)
    book.project(a, "20000000", "guaranteeing")
    book.project(a, "15000000", "overdue", risk_class="attention")             # A: 35M, 7% (ok)
    book.project(a, "10000000", "applying")                                    # not in force
    book.project(b, "26000000", "guaranteeing")
    book.project(b, "20000000", "guaranteeing", product="construction_performance")   # B: 46M, 9.2% (near)
    book.project(b, "30000000", "released")                                    # not in force
    book.project(c, "30000000", "guaranteeing")
    book.project(c, "25000000", "guaranteeing", risk_class="substandard")    # C: 55M, 11% (breach)
    comp = book.project(d, "10000000", "guaranteeing")                        # D: compensated in the end
    _book_and_confirm(app, comp, "underwriting", "10000000.00")
    _book_and_confirm(app, comp, "release", "2000000.00")
    book.set_status(comp, "overdue")
    _book_and_confirm(app, comp, "compensation_paid", "3000000.00")
    book.set_status(comp, "compensated")
    _book_and_confirm(app, comp, "release", "3000000.00")           # the liability ends by compensation
    _book_and_confirm(app, comp, "recovery_received", "1000000.00")
    book.names = {a: "甲集团有限公司", b: "甲集团子公司", c: "丙实业有限公司", d: "丁贸易有限公司"}
    return book


def _expected(book: Book) -> dict:
    in_force = [p for p in book.projects if p["status"] in ("guaranteeing", "overdue")]
    outstanding = sum((p["amount"] for p in in_force), Decimal(0))
    per_customer: dict[int, Decimal] = {}
    for p in in_force:
        per_customer[p["customer"]] = per_customer.get(p["customer"], Decimal(0)) + p["amount"]
    top = sorted(per_customer.items(), key=lambda kv: kv[1], reverse=True)
    group_amount = sum((per_customer.get(m, Decimal(0)) for m in book.group), Decimal(0))

    def breakdown(key, rows):
        out: dict = {}
        for p in rows:
            n, total = out.get(p[key], (0, Decimal(0)))
            out[p[key]] = (n + 1, total + p["amount"])
        return {k: (n, f"{total:.2f}") for k, (n, total) in out.items()}

    statuses = {c: _status(_ratio(v), Decimal("0.10")) for c, v in per_customer.items()}
    return {
        "outstanding": f"{outstanding:.2f}", "in_force_count": len(in_force),
        "leverage": _ratio(outstanding),
        "top": [(cid, f"{amount:.2f}", _ratio(amount), statuses[cid]) for cid, amount in top],
        "near": sum(1 for s in statuses.values() if s == "near"),
        "breach": sum(1 for s in statuses.values() if s == "breach"),
        "group": (f"{group_amount:.2f}", _ratio(group_amount), _status(_ratio(group_amount), Decimal("0.15"))),
        "by_status": breakdown("status", book.projects),
        "by_product": breakdown("product", in_force), "by_risk_class": breakdown("risk_class", in_force),
        # compensation 3M in the year; liability ended: release 2M + release by compensation 3M
        "compensation_rate": _ratio(Decimal(3000000), Decimal(5000000)),
        "loss_rate": _ratio(Decimal(2000000), Decimal(3000000)),
    }


def test_dashboard_figures_equal_an_independent_computation(world):
    app = world
    book = _make_book(app)
    want = _expected(book)
    client = app.test_client()

    resp = client.get("/api/v1/regulatory/dashboard", headers=jwt(client, "boss"))
    assert resp.status_code == 200, resp.data
    got = resp.get_json()
    assert got["as_of"] == today().isoformat()
    assert got["limits"] == {"net_assets": "500000000.00", "leverage_limit": "10", "single_customer_limit": "0.10",
                             "related_group_limit": "0.15", "near_breach_share": "0.9"}
    assert got["outstanding"] == want["outstanding"] and got["in_force_count"] == want["in_force_count"]
    assert Decimal(got["leverage"]) == want["leverage"] and got["leverage_status"] == "ok"
    assert [(c["record_id"], c["amount"], Decimal(c["share"]), c["status"]) for c in got["top_customers"]] == want["top"]
    assert [c["name"] for c in got["top_customers"]] == [book.names[cid] for cid, *_ in want["top"]]
    assert [c["status_label"] for c in got["top_customers"]][:2] == ["超限", "接近上限"]
    assert (got["customers_near"], got["customers_breach"]) == (want["near"], want["breach"]) == (1, 1)
    [group] = got["top_groups"]
    assert sorted(group["members"]) == sorted(book.group)
    assert (group["amount"], Decimal(group["share"]), group["status"]) == want["group"]
    assert (got["groups_near"], got["groups_breach"]) == (0, 1)
    assert got["year"] == today().year
    assert (got["compensation_in_year"], got["ended_in_year"]) == ("3000000.00", "5000000.00")
    assert Decimal(got["compensation_rate"]) == want["compensation_rate"]
    assert (got["compensation_total"], got["recovered_total"]) == ("3000000.00", "1000000.00")
    assert Decimal(got["loss_rate"]) == want["loss_rate"]
    for key in ("by_status", "by_product", "by_risk_class"):
        assert {r["code"]: (r["count"], r["amount"]) for r in got[key]} == want[key], key
    labels = {r["code"]: r["label"] for r in got["by_product"]}
    assert labels == {"bank_loan": "银行贷款担保", "construction_performance": "工程履约保函"}
    assert {r["code"]: r["label"] for r in got["by_status"]}["overdue"] == "逾期"
    # in the order the metadata declares them (申请中 … 已核销; 正常 … 损失), not by code
    project = app.extensions["danbao"].meta.entity("guarantee_project")
    for key, field in (("by_status", "status"), ("by_risk_class", "risk_class")):
        order = [o.value for o in project.field(field).options]
        codes = [r["code"] for r in got[key]]
        assert codes == sorted(codes, key=order.index) and len(codes) > 1, key
    en = client.get("/api/v1/regulatory/dashboard",
                    headers=dict(jwt(client, "audit"), **{"Accept-Language": "en"})).get_json()
    assert {r["code"]: r["label"] for r in en["by_product"]}["bank_loan"] == "Bank loan guarantee"
    assert en["top_customers"][0]["status_label"] == "Breach"

    # the page shows the same figures
    page = login(app.test_client(), "fin").get("/regulatory/").text
    assert 'id="outstanding" data-value="%s"' % want["outstanding"] in page
    assert 'id="customers-breach">1<' in page and 'id="groups-breach">1<' in page
    assert 'id="compensation-rate" data-value="%s"' % got["compensation_rate"] in page
    assert "60.00%" in page and "66.67%" in page                       # 代偿率, 代偿损失率
    assert page.count('data-status="breach"') == 2                      # customer C and the group
    top = re.findall(r'data-customer="corporate_customer:(\d+)"', page)
    assert [int(x) for x in top] == [cid for cid, *_ in want["top"]]
    assert "超限" in page and "接近上限" in page and "正常" in page
    assert 'id="refresh-exposures"' not in page                         # finance reads, does not refresh


def test_who_may_read_and_refresh(world):
    app = world
    book = Book(app)
    c = book.corp("丙实业有限公司")
    book.project(c, "48000000", "guaranteeing")                        # 9.6%: near
    for name in ("boss", "risk", "fin", "audit"):
        assert login(app.test_client(), name).get("/regulatory/").status_code == 200, name
    for name in ("pm", "c1"):
        client = login(app.test_client(), name)
        assert client.get("/regulatory/").status_code == 403, name
        assert client.post("/regulatory/refresh").status_code == 403, name
        assert client.get("/api/v1/regulatory/dashboard", headers=jwt(app.test_client(), name)).status_code == 403
    assert app.test_client().get("/api/v1/regulatory/dashboard").status_code == 401
    assert app.test_client().get("/regulatory/").status_code == 302          # to the login page
    # the menu entry is there for readers only
    assert 'href="/regulatory/"' in login(app.test_client(), "audit").get("/workbench/").text
    assert 'href="/regulatory/"' not in login(app.test_client(), "pm").get("/workbench/").text

    auditor = login(app.test_client(), "audit")
    assert auditor.post("/regulatory/refresh").status_code == 403          # reads, does not refresh
    risk = login(app.test_client(), "risk")
    assert 'id="refresh-exposures"' in risk.get("/regulatory/").text
    done = risk.post("/regulatory/refresh", follow_redirects=True)
    assert done.status_code == 200 and "已刷新客户敞口" in done.text
    rt = app.extensions["danbao"]
    with app.app_context():
        row = RecordService(rt.models, rt.session, Actor(None, "t")).get("corporate_customer", c)
        assert (row.exposure_amount, row.exposure_status) == (Decimal("48000000.00"), "near")
        assert row.exposure_share == Decimal("0.096000")


def test_openapi_describes_the_dashboard(world):
    spec = world.test_client().get("/api/v1/openapi.json").get_json()
    op = spec["paths"]["/api/v1/regulatory/dashboard"]["get"]
    assert set(op["responses"]) == {"200", "401", "403", "404"}
    schema = spec["components"]["schemas"]["RegulatoryDashboard"]
    assert {"leverage", "top_customers", "top_groups", "compensation_rate", "loss_rate"} <= set(schema["required"])
