"""The path people click most, in headless Debian chromium: log in, create a
corporate customer with a shareholder, find it by search."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import threading

import pytest
from werkzeug.serving import make_server

from webfixtures import PASSWORD, add_user, make_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def _require_browser():
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        if os.environ.get("DANBAO_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (DANBAO_REQUIRE_BROWSER set) but /usr/bin/chromium is missing")
        pytest.skip("Debian chromium not installed")


@contextlib.contextmanager
def serving(app):
    """``app`` on a free local port in a thread, for the browser; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.shutdown()


def launch(p):
    """Debian's chromium, headless, through playwright."""
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])


def signed_in(browser, base: str, name: str):
    """(context, page) of ``name`` logged in through the login form, on the workbench."""
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(base + "/login/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/workbench/**")
    return context, page


@pytest.fixture
def server(database_url, tmp_path):
    _require_browser()
    app = make_app(database_url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    _one_warning_for_project_managers(app, add_user(app, "pm", "project_manager"))
    with serving(app) as base:
        yield base


def _one_warning_for_project_managers(app, pm: int):
    """A company founded 100 days ago, entered by the project manager (so it is his customer under
    the record rules): the core rule corp_newly_founded notifies project managers."""
    import datetime as dt
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    from danbao.engines.warnings import scan
    today = dt.date.today()
    with app.app_context():
        rt = app.extensions["danbao"]
        RecordService(rt.models, rt.session, Actor(pm, "pm")).create("corporate_customer", {
            "name": "南京新创科技有限公司", "uscc": make_uscc(random.Random(3), "320100"),
            "established_on": (today - dt.timedelta(days=100)).isoformat()})
        scan(rt.session, rt.models, rt.meta, as_of=today, rules=["corp_newly_founded"])


def test_login_create_customer_with_shareholder_and_search(server, tmp_path):
    from playwright.sync_api import sync_playwright
    from danbao.demo import make_uscc
    code = make_uscc(random.Random(7), "320500")
    with sync_playwright() as p:
        browser = launch(p)
        _context, page = signed_in(browser, server, "pm")
        assert page.inner_text("#danbao-warning-badge") == "1"      # open warnings, in the menu bar
        page.goto(server + "/e/corporate_customer/")
        page.click("#add-record")
        page.fill("#fld-name", "苏州金泰电子科技有限公司")
        page.fill("#fld-uscc", code)
        page.fill("#fld-registered_capital", "800")
        # visible_if / required_if follow the checkbox as the user clicks
        cert = page.locator("[data-field=high_tech_cert_no]")
        assert cert.is_hidden()
        page.check("#fld-high_tech")
        assert cert.is_visible()
        page.uncheck("#fld-high_tech")
        assert cert.is_hidden()
        page.click(".danbao-add-row[data-child=shareholders]")
        page.fill("input[name='shareholders-0-name']", "周杰")
        page.select_option("select[name='shareholders-0-holder_type']", "person")
        page.fill("input[name='shareholders-0-share_ratio']", "0.55")
        page.click("#save")
        page.wait_for_selector("#record-title")
        assert page.inner_text("#record-title") == "苏州金泰电子科技有限公司"
        assert "周杰" in page.inner_text("#children-shareholders")
        page.screenshot(path=str(tmp_path / "show.png"), full_page=True)
        _same_answers_in_browser_and_python(page)
        page.goto(server + "/e/corporate_customer/")
        page.fill("#search-q", "金泰")
        page.click("#search-go")
        page.wait_for_selector("table.danbao-list")
        rows = page.locator("table.danbao-list tbody tr")
        assert rows.count() == 1
        assert "苏州金泰电子科技有限公司" in rows.first.inner_text()
        browser.close()


def _same_answers_in_browser_and_python(page):
    """The form's translated conditions agree with danbao.expr on sample values."""
    import datetime as dt
    from decimal import Decimal
    from danbao.expr import Scope, compile_expression
    from danbao.web.exprjs import to_js
    scope = Scope({"amount": "number", "status": "text", "flag": "boolean", "start": "date", "due": "date"})
    rows = [{"amount": Decimal("1500"), "status": "active", "flag": True, "start": dt.date(2024, 1, 31), "due": dt.date(2024, 3, 1)},
            {"amount": None, "status": None, "flag": None, "start": None, "due": None},
            {"amount": Decimal("0"), "status": "closed", "flag": False, "start": dt.date(2023, 12, 31), "due": dt.date(2024, 2, 29)}]
    sources = ["amount > 1000", "amount >= 1000 and flag", "not flag", "status in ['active', 'pending']",
               "status not in ['active']", "amount == None", "status != None", "amount / 0 == None",
               "add_months(start, 1) == due", "add_months(start, 1) <= due", "days_between(start, due) > 30",
               "coalesce(amount, 5) > 1", "(amount if flag else 0) > 100", "abs(amount - 2000) < 600",
               "max(amount, 10) > 100", "add_days(start, 30) < due", "today() > start", "-amount < 0",
               "1000 < amount < 2000", "flag or amount == 0"]
    today = dt.date(2024, 6, 1)
    for source in sources:
        rule = compile_expression(source, scope, expect="boolean")
        js = to_js(source)
        for row in rows:
            expected = rule.evaluate(row, today=today) is True
            plain = {k: (float(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, dt.date) else v)
                     for k, v in row.items()}
            got = page.evaluate(
                "([js, row, today]) => { DanbaoExpr.today = today; "
                "return new Function('v', 'D', 'return ' + js + ';')(n => row[n] === undefined ? null : row[n], DanbaoExpr) === true; }",
                [js, plain, today.isoformat()])
            assert got == expected, (source, row)
