"""Two projects through the whole business, by REST, as the people who do it.

One goes from application through reviews, fee collection, signing and loan
confirmation, post-guarantee checks and release with the deposit refunded;
the other from application to default: overdue, compensation approved by the
committee, recovery and asset preservation, write-off. At every step the
ledger balances (sums of confirmed entries only), the project's status and
the warnings are checked. Runs on SQLite and, with DANBAO_TEST_DATABASE_URL,
on PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from danbao.demo import make_uscc
from danbao.engines.business import class_by_days, daily_run
from danbao.engines.warnings import scan
from danbao.expr.functions import fn_add_months
from wfapifixtures import dispose
from webfixtures import add_user, jwt, make_app

ENTITY = "guarantee_project"
CAST = [("pm", "project_manager"), ("pm2", "project_manager"), ("risk", "risk_officer"), ("boss", "manager"),
        ("gm", "manager"), ("fin", "finance"), ("c1", "committee_member"), ("c2", "committee_member"), ("c3", "committee_member"),
        ("c4", "committee_member")]
ZERO = Decimal("0.00")


class Company:
    """The test client as the company's staff."""

    def __init__(self, app, uid, headers):
        self.app, self.client, self.uid, self.headers = app, app.test_client(), uid, headers

    def call(self, method, path, who, body=None, expect=(200, 201)):
        resp = self.client.open(path, method=method, json=body, headers=self.headers[who])
        if expect is not None:
            assert resp.status_code in ((expect,) if isinstance(expect, int) else expect), (path, resp.get_json())
        return resp

    def record(self, pid, who="pm"):
        return self.call("GET", f"/api/v1/{ENTITY}/{pid}", who).get_json()["result"]

    def update(self, pid, who="pm", **values):
        version = self.record(pid, who)["version"]
        return self.call("PUT", f"/api/v1/{ENTITY}/{pid}", who, {"version": version, **values}).get_json()["result"]

    # -- the ledger: A角 makes, a risk officer checks, finance confirms --------------------
    def book(self, pid, kind, amount, *, maker="pm", checker="risk", confirmer="fin", booked_on=None):
        body = {"kind": kind, "amount": str(amount)}
        if booked_on:
            body["booked_on"] = booked_on.isoformat()
        eid = self.call("POST", f"/api/v1/{ENTITY}/{pid}/ledger", maker, body, expect=201).get_json()["id"]
        self.call("POST", f"/api/v1/ledger/{eid}/check", checker, {})
        self.call("POST", f"/api/v1/ledger/{eid}/confirm", confirmer, {})
        return eid

    def balances(self, pid) -> dict[str, Decimal]:
        data = self.call("GET", f"/api/v1/{ENTITY}/{pid}/ledger", "risk").get_json()
        return {b["code"]: Decimal(b["amount"]) for b in data["balances"]}

    # -- approvals ------------------------------------------------------------------------------
    def tasks(self, who, pid):
        return [t for t in self.call("GET", "/api/v1/tasks/", who).get_json()["result"] if t["record_id"] == pid]

    def submit(self, pid, workflow, who="pm2"):
        return self.call("POST", f"/api/v1/{ENTITY}/{pid}/workflow", who, {"workflow": workflow}, expect=201
                         ).get_json()["instance_id"]

    def approve(self, who, pid, comment="同意"):
        (task,) = self.tasks(who, pid)
        self.call("POST", f"/api/v1/tasks/{task['id']}/actions", who, {"action": "approve", "comment": comment})

    def vote(self, who, pid):
        (task,) = self.tasks(who, pid)
        self.call("POST", f"/api/v1/tasks/{task['id']}/vote", who, {"vote": "agree", "comment": "同意代偿"})

    def instance(self, pid) -> dict:
        """The project's latest workflow instance as the API shows it."""
        instances = self.call("GET", f"/api/v1/{ENTITY}/{pid}/workflow", "risk").get_json()["instances"]
        return max(instances, key=lambda i: i["id"])

    # -- system jobs, as the scheduler runs them ----------------------------------------------------
    def scan(self, as_of: dt.date) -> set[tuple[str, int]]:
        with self.app.app_context():
            rt = self.app.extensions["danbao"]
            scan(rt.session, rt.models, rt.meta, as_of=as_of)
        seen = set()
        for who in ("pm", "risk"):          # each sees the warnings meant for them
            rows = self.call("GET", "/api/v1/warnings/?status=open&page_size=100", who).get_json()["result"]
            seen |= {(w["rule"], w["record_id"]) for w in rows}
        return seen

    def file_documents(self, pid, stage: str, who="pm") -> list[str]:
        """Upload a PDF for every required document of ``stage`` still missing and tag it
        through the REST API, as staff do before a step that asks for them."""
        import io
        from danbao.engines.documents import missing_documents
        rt = self.app.extensions["danbao"]
        with self.app.app_context():
            project = rt.session.get(rt.models.cls(ENTITY), pid)
            codes = [d.requirement.code for d in missing_documents(rt.session, rt.models, rt.meta, project, stage)]
            field = rt.meta.entity(ENTITY).field("documents")
            ids = [rt.store.add(rt.session, field=field, entity=ENTITY, record_id=pid, filename=f"{code}.pdf",
                                stream=io.BytesIO(b"%PDF-1.4\n% e2e\n"), user_id=self.uid[who]) for code in codes]
            rt.session.commit()
        for code, att in zip(codes, ids):
            self.call("POST", f"/api/v1/attachments/{att}/tag", who, {"doc_kind": code})
        return codes

    def daily(self, today: dt.date):
        with self.app.app_context():
            rt = self.app.extensions["danbao"]
            return daily_run(rt.session, rt.models, rt.meta, today)

    def meta(self):
        return self.app.extensions["danbao"].meta


@pytest.fixture
def company(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance")
    uid = {name: add_user(app, name, role) for name, role in CAST}
    client = app.test_client()
    headers = {name: jwt(client, name) for name, _ in CAST}
    yield Company(app, uid, headers)
    dispose(app)


def new_project(co: Company, n: int, amount: str, cover: list[dict], **values) -> int:
    corp = co.call("POST", "/api/v1/corporate_customer/", "pm",
                   {"name": f"南京恒达精密机械有限公司{n}", "uscc": make_uscc(random.Random(n), "320100")},
                   expect=201).get_json()["id"]
    body = {"name": f"恒达精密流动资金贷款担保{n}", "customer_kind": "corporate", "corporate_customer": corp,
            "product": "bank_loan", "amount": amount, "loan_amount": amount, "term_months": 12, "fee_rate": "0.02",
            "deposit_rate": "0.10",
            "a_manager": co.uid["pm"], "b_manager": co.uid["pm2"], "counter_guarantees": cover, **values}
    return co.call("POST", f"/api/v1/{ENTITY}/", "pm", body, expect=201).get_json()["id"]


def through_approval(co: Company, pid: int, start: dt.date) -> None:
    """Standard route below the committee line: reviews, sign-off, fees, signing, loan confirmation.
    Each step gets what it asks for: the application documents before 初审 is left, the
    contracts at 签约办理, the day the bank lent at 放款确认."""
    co.submit(pid, "project_standard")
    refused = co.call("POST", f"/api/v1/tasks/{co.tasks('risk', pid)[0]['id']}/actions", "risk",
                      {"action": "approve", "comment": "同意"}, expect=422).get_json()
    assert refused["code"] == "CT020" and "尽职调查报告" in refused["message"]
    assert co.instance(pid)["step"] == "first_review"
    co.file_documents(pid, "application")
    co.approve("risk", pid)                            # 初审
    co.approve("boss", pid)                            # 复审: a manager, not the 初审 risk officer
    co.approve("gm", pid)                              # 总经理审批: the other manager (separation of duties)
    assert co.instance(pid)["step"] == "fee_collection"
    co.approve("fin", pid)                             # 费用收取
    refused = co.call("POST", f"/api/v1/tasks/{co.tasks('pm', pid)[0]['id']}/actions", "pm",
                      {"action": "approve", "comment": "已签约"}, expect=422).get_json()
    assert refused["code"] == "CT020" and "借款合同编号" in refused["message"] and "委托保证合同" in refused["message"]
    co.update(pid, loan_contract_no=f"JK-{pid}", bank_contract_no=f"BZ-{pid}", entrustment_contract_no=f"WT-{pid}")
    co.file_documents(pid, "contract")
    co.approve("pm", pid)                              # 签约 (the A角; pm2 submitted)
    co.update(pid, "fin", start_date=start.isoformat())   # finance records the day the bank lent
    co.approve("fin", pid)                             # 放款确认


def expected(*pairs, base=None) -> dict[str, Decimal]:
    out = dict(base or {})
    for name, amount in pairs:
        out[name] = out.get(name, ZERO) + Decimal(amount)
    return out


def assert_balances(co, pid, want: dict[str, Decimal]):
    got = co.balances(pid)
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}


def test_a_project_from_application_to_release(company):
    co = company
    start = dt.date.today()
    cover = [{"kind": "mortgage", "asset_kind": "real_estate", "owner": "王建国", "certificate_no": "苏(2024)宁不动产权第0012345号",
              "appraised_value": "3000000"}]
    pid = new_project(co, 1, "2000000", cover, start_date=start.isoformat())
    p = co.record(pid)
    discount = co.meta().counter_guarantee_kinds["mortgage"].discount("real_estate")
    assert Decimal(p["coverage_ratio"]) == (Decimal("3000000") * discount / Decimal("2000000")).quantize(Decimal("0.000001"))
    assert p["coverage_short"] is False and p["limit_flag"] is None and p["status"] == "applying"

    # the review fee is collected on application
    co.book(pid, "review_fee_received", "6000.00")
    assert_balances(co, pid, {"review_fee": Decimal("6000.00")})
    # the maker cannot check their own entry; the checker cannot confirm what they checked
    eid = co.call("POST", f"/api/v1/{ENTITY}/{pid}/ledger", "pm", {"kind": "review_fee_received", "amount": "100.00"},
                  expect=201).get_json()["id"]
    co.call("POST", f"/api/v1/ledger/{eid}/check", "pm", {}, expect=403)
    co.call("POST", f"/api/v1/ledger/{eid}/reject", "risk", {"reason": "重复录入"})
    assert_balances(co, pid, {"review_fee": Decimal("6000.00")})

    through_approval(co, pid, start)
    p = co.record(pid)
    assert p["status"] == "guaranteeing"
    plan = p["fee_instalments"]
    fees = sum(Decimal(r["amount"]) for r in plan if r["kind"] == "guarantee_fee")
    assert fees == (Decimal("2000000") * Decimal("0.02")).quantize(Decimal("0.01"))      # 12 months at 2%
    deposit = sum(Decimal(r["amount"]) for r in plan if r["kind"] == "deposit")
    assert deposit == Decimal("200000.00")
    first_fee = min((r for r in plan if r["kind"] == "guarantee_fee"), key=lambda r: r["due_on"])

    # 放款确认 booked the guarantee and the loan: in force and on the books at once
    assert_balances(co, pid, {"review_fee": Decimal("6000.00"), "guarantee_outstanding": Decimal("2000000.00"),
                              "loan_outstanding": Decimal("2000000.00")})
    co.book(pid, "deposit_received", deposit)
    co.book(pid, "guarantee_fee_received", first_fee["amount"])
    held = {"review_fee": Decimal("6000.00"), "deposit_held": deposit, "guarantee_fee": Decimal(first_fee["amount"]),
            "guarantee_outstanding": Decimal("2000000.00"), "loan_outstanding": Decimal("2000000.00")}
    assert_balances(co, pid, held)
    plan = {r["id"]: r for r in co.record(pid)["fee_instalments"]}
    assert Decimal(plan[first_fee["id"]]["paid_amount"]) == Decimal(first_fee["amount"])   # receipts settle the plan
    assert all(Decimal(r["paid_amount"]) == Decimal(r["amount"]) for r in plan.values() if r["kind"] == "deposit")
    corp = co.record(pid)["corporate_customer"]
    c = co.call("GET", f"/api/v1/corporate_customer/{corp}", "risk").get_json()["result"]
    assert Decimal(c["exposure_amount"]) == Decimal("2000000.00")          # refreshed when it came into force

    # post-guarantee check: overdue after the product's cycle, cleared by doing it
    due_check = fn_add_months(start, co.meta().products["bank_loan"].check_every_months)
    assert co.record(pid)["next_check_due"] == due_check.isoformat()
    assert ("post_check_overdue", pid) in co.scan(due_check + dt.timedelta(days=1))
    co.update(pid, post_checks=[{"round_no": 1, "done_on": due_check.isoformat(), "method": "site_visit",
                                 "findings": "经营正常，抵押物状况良好", "conclusion": "normal"}])
    open_now = co.scan(due_check + dt.timedelta(days=1))
    assert ("post_check_overdue", pid) not in open_now
    due = dt.date.fromisoformat(co.record(pid)["due_date"])
    assert ("project_due_soon", pid) in co.scan(due - dt.timedelta(days=10))

    # release at maturity: the loan is repaid, the release is approved, the deposit goes back
    co.update(pid, release_kind="normal", released_on=due.isoformat())
    co.submit(pid, "project_release")
    co.approve("risk", pid)
    refused = co.call("POST", f"/api/v1/tasks/{co.tasks('boss', pid)[0]['id']}/actions", "boss",
                      {"action": "approve", "comment": "同意解保"}, expect=422).get_json()
    assert refused["code"] == "CT020" and "贷款余额为零（现为 2,000,000.00 元）" in refused["message"]
    assert "还款" in refused["message"] and co.record(pid)["status"] == "guaranteeing"
    co.book(pid, "loan_repaid", "2000000.00")
    co.file_documents(pid, "release")
    co.approve("boss", pid)
    assert co.record(pid)["status"] == "released"        # and the release is booked with it
    refund = co.call("POST", f"/api/v1/{ENTITY}/{pid}/ledger", "pm",
                     {"kind": "deposit_refunded", "amount": str(deposit + 1)}, expect=None)
    assert refund.status_code == 422 and "保证金" in refund.get_json()["message"]
    co.book(pid, "deposit_refunded", deposit)
    late = co.call("POST", f"/api/v1/{ENTITY}/{pid}/ledger", "pm", {"kind": "underwriting", "amount": "1.00"},
                   expect=None)
    assert late.status_code == 422                      # nothing more is underwritten on a released project
    assert_balances(co, pid, {"review_fee": Decimal("6000.00"), "guarantee_fee": Decimal(first_fee["amount"])})
    c = co.call("GET", f"/api/v1/corporate_customer/{corp}", "risk").get_json()["result"]
    assert Decimal(c["exposure_amount"]) == ZERO
    assert ("project_due_soon", pid) not in co.scan(due - dt.timedelta(days=10))


def test_a_project_from_application_through_default_compensation_and_recovery(company):
    co = company
    start = dt.date.today() - dt.timedelta(days=400)
    cover = [{"kind": "mortgage", "asset_kind": "real_estate", "owner": "李红", "appraised_value": "2200000"}]
    pid = new_project(co, 2, "1500000", cover, start_date=start.isoformat())
    through_approval(co, pid, start)
    co.book(pid, "deposit_received", "150000.00")
    due = dt.date.fromisoformat(co.record(pid)["due_date"])

    # the loan is not repaid: the daily run marks the project overdue and classes it by days
    today = due + dt.timedelta(days=40)
    assert co.daily(today)["overdue"] == 1
    p = co.record(pid)
    assert p["status"] == "overdue" and p["overdue_since"] == due.isoformat()
    assert p["risk_class"] == class_by_days(co.meta(), 40)
    assert ("project_overdue", pid) in co.scan(today)

    # compensation: risk review, the committee, the general manager
    co.submit(pid, "project_compensation")
    co.approve("risk", pid)
    for member in ("c1", "c2", "c3", "c4"):
        co.vote(member, pid)
    if co.instance(pid)["step"] == "committee":
        iid = co.instance(pid)["id"]
        co.call("POST", f"/api/v1/workflow-instances/{iid}/close-meeting", "boss", {"comment": "表决通过"})
    co.approve("boss", pid)
    assert co.record(pid)["status"] == "compensated"
    co.book(pid, "compensation_paid", "1520000.00")          # principal and interest paid to the bank
    co.book(pid, "release", "1500000.00")                    # the guarantee liability ends by compensation
    base = {"deposit_held": Decimal("150000.00"), "loan_outstanding": Decimal("1500000.00"),
            "compensation_paid": Decimal("1520000.00")}
    assert_balances(co, pid, base)
    assert ("project_overdue", pid) not in co.scan(today)

    # recovery: actions, preservation of the mortgaged flat, receipts
    co.update(pid, recoveries=[{"acted_on": today.isoformat(), "action": "lawsuit", "description": "向玄武区法院起诉",
                                "cost": "12000.00"}],
              preservations=[{"kind": "seal", "court": "南京市玄武区人民法院", "case_no": "(2026)苏0102执保123号",
                              "asset_description": "抵押房产", "value": "2200000.00", "from_on": today.isoformat(),
                              "until_on": (today + dt.timedelta(days=1095)).isoformat(), "status": "active"}])
    co.book(pid, "recovery_received", "600000.00")
    wrong = co.book(pid, "recovery_received", "50000.00")    # booked twice by mistake: reversed, never edited
    reversal = co.call("POST", f"/api/v1/ledger/{wrong}/reverse", "pm", {"reason": "重复入账"}, expect=201).get_json()["id"]
    co.call("POST", f"/api/v1/ledger/{wrong}/reverse", "pm", {"reason": "再次冲销"}, expect=409)
    co.call("POST", f"/api/v1/ledger/{reversal}/check", "risk", {})
    co.call("POST", f"/api/v1/ledger/{reversal}/confirm", "fin", {})
    base = expected(("recovered", "600000.00"), base=base)
    assert_balances(co, pid, base)
    board = co.call("GET", "/api/v1/regulatory/dashboard", "boss").get_json()
    loss = ((Decimal("1520000") - Decimal("600000")) / Decimal("1520000")).quantize(Decimal("0.000001"))
    assert Decimal(board["loss_rate"]) == loss

    # write-off of what cannot be recovered; later receipts are still booked
    co.update(pid, write_off_amount="920000.00", write_off_reason="债务人无可执行财产，经诉讼终结执行",
              written_off_on=today.isoformat())
    co.submit(pid, "project_write_off")
    co.approve("risk", pid)
    co.approve("boss", pid)
    assert co.record(pid)["status"] == "written_off"
    co.book(pid, "write_off", "920000.00")
    co.book(pid, "recovery_received", "10000.00")
    late = co.call("POST", f"/api/v1/{ENTITY}/{pid}/ledger", "pm", {"kind": "underwriting", "amount": "1.00"},
                   expect=None)
    assert late.status_code == 422
    assert_balances(co, pid, expected(("written_off", "920000.00"), ("recovered", "10000.00"), base=base))
    with co.app.app_context():
        rt = co.app.extensions["danbao"]
        from danbao.engines.ledger import LedgerService
        corp = co.record(pid)["corporate_customer"]
        assert LedgerService(rt.session, rt.models, rt.meta).customer_balances("corporate_customer", corp) == \
            co.balances(pid)
