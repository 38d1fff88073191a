"""A ledger entry through its maker-checker chain in headless chromium: the A角
makes it on the project page, the risk officer checks it from 待处理台账 (the
menu-bar badge), finance confirms it, and only then does the balance move;
the 监管指标 page shows the book."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from test_browser import _require_browser, launch, serving, signed_in
from webfixtures import add_user, make_app

pytestmark = pytest.mark.browser
#: DANBAO_SCREENSHOTS=<folder> keeps the screenshots for a look
SHOTS = Path(os.environ["DANBAO_SCREENSHOTS"]) if os.environ.get("DANBAO_SCREENSHOTS") else None
USERS = {"pm": "project_manager", "risk": "risk_officer", "fin": "finance", "boss": "manager"}


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
        corp = svc.create("corporate_customer", {"name": "无锡华信电子科技有限公司",
                                                 "uscc": make_uscc(random.Random(21), "320200")})
        project = svc.create("guarantee_project", {
            "name": "华信电子流动资金贷款担保", "customer_kind": "corporate", "corporate_customer": corp.id,
            "amount": "3000000", "term_months": 12, "a_manager": ids["pm"],
            "counter_guarantees": [{"kind": "pledge", "asset_kind": "deposit", "appraised_value": "3500000"}]})
        project_id = project.id
    with serving(app) as base:
        yield base, project_id


def test_review_fee_made_checked_confirmed(server, tmp_path):
    from playwright.sync_api import sync_playwright
    base, project_id = server
    with sync_playwright() as p:
        browser = launch(p)

        def as_user(name):
            return signed_in(browser, base, name)

        def balance(page, code):
            return page.inner_text(f"#ledger-balances td[data-balance={code}]").strip()

        context, page = as_user("pm")
        page.goto(f"{base}/e/guarantee_project/{project_id}")
        assert page.inner_text("body").count("DB-") >= 1           # the project number came from the rule
        page.select_option("#ledger-kind", "review_fee_received")
        page.fill("#ledger-amount", "9000.00")
        page.fill("#ledger-note", "评审费 0.3%")
        page.click("#ledger-submit")
        page.wait_for_selector(".alert-success")
        assert page.get_attribute("#ledger-entries tbody tr[data-entry]", "data-state") == "made"
        assert balance(page, "review_fee") in ("0.00", "0")          # nothing counts before confirmation
        assert page.locator("#ledger-entries button[data-action=check]").count() == 0   # not the maker's to check
        context.close()

        context, page = as_user("risk")
        assert page.inner_text("#danbao-ledger-badge") == "1"
        page.click("#danbao-ledger-menu a")
        page.click("#ledger-pending button[data-action=check]")
        page.wait_for_selector(".alert-success")
        assert page.locator("#ledger-pending tr[data-entry]").count() == 0
        context.close()

        context, page = as_user("fin")
        page.click("#danbao-ledger-menu a")
        page.click("#ledger-pending button[data-action=confirm]")
        page.wait_for_selector(".alert-success")
        page.goto(f"{base}/e/guarantee_project/{project_id}")
        assert balance(page, "review_fee").replace(",", "") == "9000.00"
        assert page.get_attribute("#ledger-entries tbody tr[data-entry]", "data-state") == "confirmed"
        page.screenshot(path=str(SHOTS / "ledger.png") if SHOTS else str(tmp_path / "ledger.png"), full_page=True)
        context.close()

        context, page = as_user("boss")
        page.goto(f"{base}/regulatory/")
        text = page.inner_text("body")
        assert "监管指标" in text and "代偿率" in text and ("放大倍数" in text or "杠杆" in text)
        if SHOTS:
            page.screenshot(path=str(SHOTS / "regulatory.png"), full_page=True)
        context.close()
        browser.close()
