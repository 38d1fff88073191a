"""A counter-guarantee row in headless chromium: a new row asks only for what
its kind needs — choosing 保证 (surety) shows the guarantor's fields and hides
the mortgage ones, live — and the saved project's page shows them."""
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


@pytest.fixture
def server(database_url, tmp_path):
    _require_browser()
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    app = make_app(database_url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    pm = add_user(app, "pm", "project_manager")
    with app.app_context():
        rt = app.extensions["danbao"]
        svc = RecordService(rt.models, rt.session, Actor(pm, "pm"))
        corp = svc.create("corporate_customer", {"name": "镇江华宇化工有限公司",
                                                 "uscc": make_uscc(random.Random(31), "321100")})
        project = svc.create("guarantee_project", {
            "name": "华宇化工流动资金贷款担保", "customer_kind": "corporate", "corporate_customer": corp.id,
            "amount": "3000000", "term_months": 12, "a_manager": pm,
            "counter_guarantees": [{"kind": "mortgage", "asset_kind": "real_estate", "rank": 1,
                                    "location": "镇江市京口区学府路1号", "appraised_value": "2000000"}]})
        project_id = project.id
    with serving(app) as base:
        yield base, project_id


def test_surety_row_shows_guarantor_fields_and_the_page_shows_them(server, tmp_path):
    from playwright.sync_api import sync_playwright
    base, project_id = server
    with sync_playwright() as p:
        browser = launch(p)
        _context, page = signed_in(browser, base, "pm")
        page.goto(f"{base}/e/guarantee_project/{project_id}/edit")
        old = page.locator("#children-counter_guarantees .danbao-row[data-row='0']")
        assert old.locator("[data-cfield=rank]").is_visible()
        assert old.locator("[data-cfield=guarantor_name]").is_hidden()

        page.click(".danbao-add-row[data-child=counter_guarantees]")
        row = page.locator("#children-counter_guarantees .danbao-row[data-row='1']")
        assert row.locator("[data-cfield=kind]").is_visible()
        assert row.locator("[data-cfield=guarantor_name]").is_hidden()
        page.select_option("select[name='counter_guarantees-1-kind']", "mortgage", force=True)
        assert row.locator("[data-cfield=rank]").is_visible()
        assert row.locator("[data-cfield=guarantor_name]").is_hidden()

        page.select_option("select[name='counter_guarantees-1-kind']", "surety", force=True)
        for name in ("guarantor_kind", "guarantor_name", "guarantor_id_no", "guarantor_net_assets", "appraised_value"):
            assert row.locator(f"[data-cfield={name}]").is_visible(), name
        for name in ("asset_kind", "owner", "certificate_no", "rank", "location", "area_sqm"):
            assert row.locator(f"[data-cfield={name}]").is_hidden(), name
        assert row.locator("[data-cfield=guarantor_name] .danbao-req-if").is_visible()     # required for a surety
        assert old.locator("[data-cfield=rank]").is_visible()                              # the other row is its own
        page.select_option("select[name='counter_guarantees-1-guarantor_kind']", "company")
        page.fill("input[name='counter_guarantees-1-guarantor_name']", "镇江华宇控股集团有限公司")
        page.fill("input[name='counter_guarantees-1-appraised_value']", "1500000")
        page.fill("#fld-fee_rate", "1.8%")                                  # a rate typed as people say it
        assert page.locator("[data-field=status] [data-readonly=true]").is_visible()   # the workflows' to move
        assert page.locator("[name=status]").count() == 0
        if SHOTS:
            page.screenshot(path=str(SHOTS / "children-form.png"), full_page=True)
        page.click("#save")
        page.wait_for_selector("#record-title")
        assert page.locator(".alert-success").count() == 1
        blocks = page.locator("#children-counter_guarantees .danbao-row")
        assert blocks.count() == 2
        surety = blocks.nth(1)
        assert "镇江华宇控股集团有限公司" in surety.locator("[data-cfield=guarantor_name]").inner_text()
        assert "1,500,000.00" in surety.inner_text()
        assert surety.locator("[data-cfield=rank]").count() == 0
        assert blocks.nth(0).locator("[data-cfield=guarantor_name]").count() == 0
        assert "镇江市京口区学府路1号" in blocks.nth(0).inner_text()
        assert page.locator("[data-field=fee_rate]").inner_text().strip() == "1.8%"
        page.screenshot(path=str((SHOTS or tmp_path) / "children-show.png"), full_page=True)
        browser.close()
