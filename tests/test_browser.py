"""The path people click most, in headless Debian chromium: log in, create a
corporate customer with a shareholder, find it by search."""
from __future__ import annotations

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


@pytest.fixture
def server(database_url, tmp_path):
    _require_browser()
    app = make_app(database_url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    add_user(app, "pm", "project_manager")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    srv.shutdown()


def test_login_create_customer_with_shareholder_and_search(server, tmp_path):
    from playwright.sync_api import sync_playwright
    from danbao.demo import make_uscc
    code = make_uscc(random.Random(7), "320500")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(locale="zh-CN")
        page.set_default_timeout(15000)
        page.goto(server + "/login/")
        page.fill("input[name=username]", "pm")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/workbench/**")
        page.goto(server + "/e/corporate_customer/")
        page.click("#add-record")
        page.fill("#fld-name", "苏州金泰电子科技有限公司")
        page.fill("#fld-uscc", code)
        page.fill("#fld-registered_capital", "800")
        page.click(".danbao-add-row[data-child=shareholders]")
        page.fill("input[name='shareholders-0-name']", "周杰")
        page.select_option("select[name='shareholders-0-holder_type']", "person")
        page.fill("input[name='shareholders-0-share_ratio']", "0.55")
        page.click("#save")
        page.wait_for_selector("#record-title")
        assert page.inner_text("#record-title") == "苏州金泰电子科技有限公司"
        assert "周杰" in page.inner_text("#children-shareholders")
        page.screenshot(path=str(tmp_path / "show.png"), full_page=True)
        page.goto(server + "/e/corporate_customer/")
        page.fill("#search-q", "金泰")
        page.click("#search-go")
        page.wait_for_selector("table.danbao-list")
        rows = page.locator("table.danbao-list tbody tr")
        assert rows.count() == 1
        assert "苏州金泰电子科技有限公司" in rows.first.inner_text()
        browser.close()
