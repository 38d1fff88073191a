"""A risk officer scores a company in headless chromium and reads the explanation."""
from __future__ import annotations

import random

import pytest

from test_browser import _require_browser, launch, serving, signed_in
from webfixtures import add_user, make_app

pytestmark = pytest.mark.browser


@pytest.fixture
def scored_company(database_url, tmp_path):
    _require_browser()
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    app = make_app(database_url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    add_user(app, "risk", "risk_officer")
    with app.app_context():
        rt = app.extensions["danbao"]
        company = RecordService(rt.models, rt.session, Actor(None, "t")).create("corporate_customer", {
            "name": "无锡恒通机械有限公司", "uscc": make_uscc(random.Random(5), "320200"), "tax_grade": "A",
            "statements": [
                {"period_end": "2024-12-31", "total_assets": "1000", "total_liabilities": "500", "revenue": "1000"},
                {"period_end": "2025-12-31", "total_assets": "1000", "total_liabilities": "500",
                 "current_assets": "600", "current_liabilities": "400", "inventory": "200",
                 "accounts_receivable": "100", "revenue": "1200", "cost_of_sales": "900",
                 "interest_expense": "10", "profit_before_tax": "90", "net_profit": "60"}]})
        company_id = company.id
    with serving(app) as base:
        yield base, company_id


def test_score_a_company_and_read_why(scored_company, tmp_path):
    from playwright.sync_api import sync_playwright
    server, company_id = scored_company
    with sync_playwright() as p:
        browser = launch(p)
        _context, page = signed_in(browser, server, "risk")
        page.goto(f"{server}/e/corporate_customer/{company_id}")
        page.click("#score-new")
        page.select_option("#input-industry_outlook", "good")
        page.select_option("#input-management", "strong")
        page.select_option("#input-credit_record", "clean")
        page.select_option("#input-lawsuits", "none")
        page.fill("#as_of", "2026-06-30")
        page.click("#score-submit")
        page.wait_for_url("**/scores/*")
        # 94.10 by the card's bands and weights (see tests/test_scoring.py for the arithmetic)
        assert page.inner_text("#score-total") == "94.10"
        assert page.inner_text("#score-grade") == "AAA"
        assert "资产负债率" in page.inner_text("#score-items tr[data-indicator=debt_ratio]")
        page.screenshot(path=str(tmp_path / "score.png"), full_page=True)
        page.click("h2 a")                      # back to the company: the grade is on its page
        assert "AAA" in page.inner_text("[data-field=credit_grade]")
        assert "94.10" in page.inner_text("#scores")
        browser.close()
