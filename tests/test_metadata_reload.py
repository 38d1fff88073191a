"""An admin changes metadata on disk, sees it validated and the migration it
implies, applies it, and the screens follow without a restart."""
from __future__ import annotations

import re
import shutil

from werkzeug.test import Client

from conftest import CORE_PACK
from danbao.app import create_app
from danbao.config import Settings
from danbao.web.switch import AppSwitcher
from webfixtures import PASSWORD, add_user


def test_edit_validate_plan_apply_and_swap(database_url, tmp_path):
    pack = tmp_path / "core"
    shutil.copytree(CORE_PACK, pack)
    settings = Settings(instance_dir=tmp_path / "inst", database_url=database_url, packs=(pack,),
                        secret_key="reload-test-secret-0123456789abcdef", testing=True,
                        extra={"WTF_CSRF_ENABLED": False})
    switcher = AppSwitcher(lambda meta=None: create_app(settings, meta=meta))
    add_user(switcher.app, "boss", "Admin")
    add_user(switcher.app, "pm", "project_manager")
    client = Client(switcher)
    client.post("/login/", data={"username": "boss", "password": PASSWORD})
    resp = client.post("/e/bank/add", data={"name": "江苏银行南京分行", "credit_line": "100000000"})
    assert resp.status_code == 302

    page = client.get("/metadata/").get_data(as_text=True)
    assert "磁盘上的元数据与当前一致" in page and "migration-plan" not in page

    bank_yaml = pack / "entities" / "bank.yaml"
    text = bank_yaml.read_text(encoding="utf-8")
    text = text.replace("  - {name: active,", "  - {name: swift_code, type: string, label: {zh: SWIFT代码, en: SWIFT code}, max_length: 11}\n  - {name: active,")
    text = text.replace("fields: [name, branch, credit_line, margin_ratio, active]", "fields: [name, branch, credit_line, margin_ratio, swift_code, active]")
    bank_yaml.write_text(text, encoding="utf-8")

    page = client.get("/metadata/").get_data(as_text=True)
    assert "add column bank.swift_code" in page or "新增列 bank.swift_code" in page
    old_app = switcher.app
    resp = client.post("/metadata/apply")
    assert resp.status_code == 302
    assert switcher.app is not old_app and switcher.generation == 2
    form = client.get("/e/bank/1/edit").get_data(as_text=True)
    assert "SWIFT代码" in form and "江苏银行南京分行" in form

    # a broken change is shown with file:line and changes nothing
    bank_yaml.write_text(text.replace("type: string, label: {zh: SWIFT代码", "type: strnig, label: {zh: SWIFT代码"), encoding="utf-8")
    page = client.get("/metadata/").get_data(as_text=True)
    assert re.search(r"bank\.yaml:\d+: DB110", page)
    current = switcher.app
    client.post("/metadata/apply")
    assert switcher.app is current
    assert "江苏银行南京分行" in client.get("/e/bank/").get_data(as_text=True)

    # only admins reach the page
    other = Client(switcher)
    other.post("/login/", data={"username": "pm", "password": PASSWORD})
    assert other.get("/metadata/").status_code == 403
