"""An application through the standard route in headless chromium: submitted by
the project manager, returned to them to complete the file and resubmitted,
first review, second review (by a manager, not the first reviewer), a
committee vote, to fee collection — each step by a different user, each
through the screens people use (my tasks → the record → the action buttons)."""
from __future__ import annotations

import random

import pytest

from test_browser import _require_browser, launch, serving, signed_in
from webfixtures import add_user, make_app

pytestmark = pytest.mark.browser
USERS = {"pm": "project_manager", "risk": "risk_officer", "boss": "manager", "gm": "manager",
         "c1": "committee_member", "c2": "committee_member", "fin": "finance"}


@pytest.fixture
def server(database_url, tmp_path):
    _require_browser()
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    app = make_app(database_url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    ids = {name: add_user(app, name, role) for name, role in USERS.items()}
    with app.app_context():
        rt = app.extensions["danbao"]
        svc = RecordService(rt.models, rt.session, Actor(ids["pm"], "pm"))
        corp = svc.create("corporate_customer", {"name": "常州新达电气有限公司",
                                                 "uscc": make_uscc(random.Random(8), "320400")})
        project = svc.create("guarantee_project", {
            "project_no": "DB2026-0001", "name": "新达电气流动资金贷款担保", "customer_kind": "corporate",
            "corporate_customer": corp.id, "amount": "5000000", "term_months": 12, "a_manager": ids["pm"],
            "start_date": "2026-12-01", "fee_rate": "0.02",
            "counter_guarantees": [{"kind": "mortgage", "asset_kind": "real_estate", "owner": "常州新达电气有限公司",
                                    "appraised_value": "7200000"}]})
        project_id = project.id
    with serving(app) as base:
        yield base, project_id, app


def test_application_through_reviews_and_committee(server, tmp_path):
    from playwright.sync_api import sync_playwright
    base, project_id, app = server
    with sync_playwright() as p:
        browser = launch(p)

        def as_user(name):
            return signed_in(browser, base, name)

        def open_my_task(name):
            context, page = as_user(name)
            assert page.inner_text("#danbao-task-badge") == "1"
            page.click("#danbao-task-menu a")
            page.click("#my-tasks tbody tr a")
            page.wait_for_selector("#wf-actions")
            return context, page

        def step_shown(page):
            return page.inner_text(".danbao-wf-instance strong")

        context, page = as_user("pm")
        page.goto(f"{base}/e/guarantee_project/{project_id}")
        page.click("button[data-start=project_standard]")
        page.wait_for_selector(".danbao-wf-instance")
        assert step_shown(page) == "初审"
        assert page.locator("#wf-actions").count() == 0       # the applicant has no task on their own application
        context.close()

        context, page = open_my_task("risk")                   # 初审 sends the file back to the applicant
        assert page.eval_on_selector_all("#wf-target option", "os => os.map(o => o.value)") == ["_applicant"]
        page.fill("#wf-comment", "请补充近三年审计报告")
        page.select_option("#wf-target", "_applicant")
        page.click("#wf-return")
        page.wait_for_selector(".alert-success")
        assert step_shown(page) == "退回申请人补充资料"
        context.close()

        context, page = as_user("pm")
        page.goto(f"{base}/e/guarantee_project/{project_id}")
        assert "补充" in page.inner_text("#wf-with-applicant")
        page.click("#wf-resubmit")
        page.wait_for_selector(".alert-success")
        assert step_shown(page) == "初审"                       # resume: restart
        context.close()

        context, page = open_my_task("risk")
        page.fill("#wf-comment", "资料齐全，同意")
        page.click("#wf-approve")                               # the file is not complete: refused, listing what is missing
        refusal = page.wait_for_selector(".alert-danger").inner_text()
        assert "申请资料不全" in refusal and "尽职调查报告" in refusal
        assert step_shown(page) == "初审"
        from wfapifixtures import file_documents
        with app.app_context():
            file_documents(app.extensions["danbao"], project_id)
        page.reload()
        page.fill("#wf-comment", "资料齐全，同意")
        page.click("#wf-approve")
        page.wait_for_selector(".alert-success")
        assert step_shown(page) == "复审"                       # not the 初审 officer's: a manager's
        assert page.locator("#wf-actions").count() == 0
        context.close()

        context, page = open_my_task("gm")
        page.fill("#wf-comment", "同意上会")
        page.click("#wf-approve")
        page.wait_for_selector(".alert-success")
        assert step_shown(page) == "审保会"                     # 5,000,000 ≥ 3,000,000: the committee route
        context.close()

        for name, comment in (("c1", "同意，关注应收账款"), ("c2", "同意")):
            context, page = open_my_task(name)
            page.fill("#wf-comment", comment)
            page.click("#wf-agree")
            page.wait_for_selector(".alert-success")
            assert "保密" in page.inner_text(f"#wf-votes-{page.get_attribute('.danbao-wf-instance', 'data-instance')}") \
                or name == "c1"                                # the other's vote is secret until the meeting closes
            context.close()

        context, page = open_my_task("boss")                   # the chairman (not gm, who did 复审) votes last
        page.fill("#wf-comment", "同意")
        page.click("#wf-agree")
        page.wait_for_selector(".alert-success")
        assert step_shown(page) == "费用收取"
        timeline = page.inner_text(".danbao-timeline")
        for who in ("pm", "risk", "gm", "boss", "c1", "c2"):
            assert who in timeline
        assert "同意，关注应收账款" in timeline                    # votes are open once the meeting has closed
        assert page.locator("svg .danbao-step.current[data-step=fee_collection]").count() == 1
        page.screenshot(path=str(tmp_path / "workflow.png"), full_page=True)
        context.close()
        browser.close()
