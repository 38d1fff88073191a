"""Screens and REST API through the Flask test client, on the core pack."""
from __future__ import annotations

import re

import pytest

from webfixtures import add_user, csrf_from, jwt, login, make_app


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance")
    add_user(app, "pm", "project_manager")
    add_user(app, "risk", "risk_officer")
    add_user(app, "aud", "auditor")
    yield app
    with app.app_context():
        app.extensions["danbao"].db.session.remove()
        app.extensions["danbao"].db.engine.dispose()


def uscc(seed=1):
    import random
    from danbao.demo import make_uscc
    return make_uscc(random.Random(seed), "320100")


def corp_payload(**kw):
    data = {"name": "南京恒达精密机械有限公司", "uscc": uscc(), "registered_capital": "500.00",
            "industry": "C", "enterprise_size": "small", "established_on": "2015-06-01"}
    data.update(kw)
    return data


def test_rest_crud_with_jwt(app):
    c = app.test_client()
    h = jwt(c, "pm")
    resp = c.post("/api/v1/corporate_customer/", json=corp_payload(
        shareholders=[{"name": "张伟", "holder_type": "person", "share_ratio": "0.6"}]), headers=h)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    rid = body["id"]
    assert body["result"]["registered_capital"] == "500.00"
    assert body["result"]["shareholders"][0]["share_ratio"] == "0.600000"
    got = c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]
    assert got["name"] == "南京恒达精密机械有限公司"
    resp = c.put(f"/api/v1/corporate_customer/{rid}", json={"employees": 42, "version": got["version"]}, headers=h)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["result"]["employees"] == 42
    listed = c.get("/api/v1/corporate_customer/?q=恒达", headers=h).get_json()
    assert listed["count"] == 1
    # project managers may not delete; risk officers may
    assert c.delete(f"/api/v1/corporate_customer/{rid}", headers=h).status_code == 403
    hr = jwt(c, "risk")
    assert c.delete(f"/api/v1/corporate_customer/{rid}", headers=hr).status_code == 200
    assert c.get(f"/api/v1/corporate_customer/{rid}", headers=hr).status_code == 404


@pytest.mark.parametrize("payload,field", [
    ({"enterprise_size": True}, "enterprise_size"),
    ({"basic_bank": {}}, "basic_bank"),
    ({"basic_bank": 999999}, "basic_bank"),
    ({"registered_capital": 1e125}, "registered_capital"),
    ({"registered_capital": "1e125"}, "registered_capital"),
    ({"uscc": "91320100MA1XYZ0K4Z"}, "uscc"),
    ({"employees": "many"}, "employees"),
    ({"established_on": "2023-02-30"}, "established_on"),
    ({"no_such_field": 1}, "no_such_field"),
    ({"name": None}, "name"),
])
def test_rest_bad_payloads_get_field_messages(app, payload, field):
    c = app.test_client()
    h = jwt(c, "pm")
    resp = c.post("/api/v1/corporate_customer/", json=corp_payload(**payload), headers=h)
    assert resp.status_code == 422, resp.data
    assert field in resp.get_json()["errors"]


def test_rest_unique_and_language(app):
    c = app.test_client()
    h = jwt(c, "pm")
    assert c.post("/api/v1/corporate_customer/", json=corp_payload(), headers=h).status_code == 201
    resp = c.post("/api/v1/corporate_customer/", json=corp_payload(), headers={**h, "Accept-Language": "en"})
    assert resp.status_code == 422
    assert resp.get_json()["errors"]["uscc"] == "is already used by another record"
    resp = c.post("/api/v1/corporate_customer/", json=corp_payload(), headers={**h, "Accept-Language": "zh-CN"})
    assert resp.get_json()["errors"]["uscc"] == "已被其他记录使用"


def test_rest_conflict_on_stale_version(app):
    c = app.test_client()
    h = jwt(c, "pm")
    rid = c.post("/api/v1/corporate_customer/", json=corp_payload(), headers=h).get_json()["id"]
    v = c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]["version"]
    assert c.put(f"/api/v1/corporate_customer/{rid}", json={"employees": 1, "version": v}, headers=h).status_code == 200
    resp = c.put(f"/api/v1/corporate_customer/{rid}", json={"employees": 2, "version": v}, headers=h)
    assert resp.status_code == 409
    assert c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]["employees"] == 1


def test_rest_needs_auth_and_rights(app):
    c = app.test_client()
    assert c.get("/api/v1/corporate_customer/").status_code == 401
    assert c.get("/api/v1/corporate_customer/", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    h = jwt(c, "aud")
    assert c.get("/api/v1/corporate_customer/", headers=h).status_code == 200
    assert c.post("/api/v1/corporate_customer/", json=corp_payload(), headers=h).status_code == 403
    assert c.get("/api/v1/shareholder/", headers=h).status_code == 404
    assert c.post("/api/v1/corporate_customer/", data="{not json", headers={**jwt(c, "pm"), "Content-Type": "application/json"}).status_code == 400


def test_openapi_lists_every_top_level_entity(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert "/api/v1/corporate_customer/" in spec["paths"]
    assert "/api/v1/shareholder/" not in spec["paths"]
    props = spec["components"]["schemas"]["corporate_customer_input"]["properties"]
    assert props["enterprise_size"]["enum"] == ["large", "medium", "small", "micro"]


def test_form_create_with_child_rows_then_search(app):
    c = login(app.test_client(), "pm")
    page = c.get("/e/corporate_customer/add")
    assert page.status_code == 200 and "统一社会信用代码" in page.get_data(as_text=True)
    form = {"name": "苏州博瑞新材料有限公司", "uscc": uscc(2), "industry": "C", "registered_capital": "1,000",
            "high_tech": ["false", "true"], "high_tech_cert_no": "GR202132123456",
            "shareholders-0-name": "李娜", "shareholders-0-holder_type": "person", "shareholders-0-share_ratio": "1",
            "shareholders-1-name": "", "shareholders-1-holder_type": "", "shareholders-1-share_ratio": ""}
    resp = c.post("/e/corporate_customer/add", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    show = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert "李娜" in show and "1,000.00" in show and "修改记录" in show
    listing = c.get("/e/corporate_customer/?q=博瑞").get_data(as_text=True)
    assert "苏州博瑞新材料有限公司" in listing


def test_form_errors_next_to_fields_in_user_language(app):
    c = login(app.test_client(), "pm")
    resp = c.post("/e/corporate_customer/add", data={"name": "", "uscc": "123", "employees": "-5",
                                                     "shareholders-0-name": "王芳", "shareholders-0-holder_type": "nope"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', html))
    assert errors["name"] == "必填"
    assert "uscc" in errors and "employees" in errors
    assert "shareholders-0-holder_type" in errors
    assert "Traceback" not in html
    c.get("/lang/en")
    resp = c.post("/e/corporate_customer/add", data={"name": ""})
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', resp.get_data(as_text=True)))
    assert errors["name"] == "is required"


def test_form_edit_conflict_keeps_user_input(app):
    c1 = login(app.test_client(), "pm")
    c2 = login(app.test_client(), "risk")
    resp = c1.post("/e/corporate_customer/add", data={"name": "杭州天成软件有限公司", "uscc": uscc(3)})
    rid = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    html1 = c1.get(f"/e/corporate_customer/{rid}/edit").get_data(as_text=True)
    html2 = c2.get(f"/e/corporate_customer/{rid}/edit").get_data(as_text=True)
    v1 = re.search(r'name="version" value="(\d+)"', html1).group(1)
    v2 = re.search(r'name="version" value="(\d+)"', html2).group(1)
    assert c1.post(f"/e/corporate_customer/{rid}/edit", data={"version": v1, "name": "杭州天成软件股份有限公司", "uscc": uscc(3)}).status_code == 302
    resp = c2.post(f"/e/corporate_customer/{rid}/edit", data={"version": v2, "name": "杭州天成科技", "uscc": uscc(3)})
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "已被他人修改" in html and 'value="杭州天成科技"' in html
    show = c1.get(f"/e/corporate_customer/{rid}").get_data(as_text=True)
    assert "杭州天成软件股份有限公司" in show


def test_permission_denied_for_role_without_rights(app):
    c = login(app.test_client(), "aud")
    assert c.get("/e/corporate_customer/").status_code == 200
    assert c.get("/e/corporate_customer/add").status_code == 403
    assert c.post("/e/corporate_customer/add", data={"name": "x"}).status_code == 403


def test_audit_log_records_field_changes(app):
    c = app.test_client()
    h = jwt(c, "pm")
    rid = c.post("/api/v1/corporate_customer/", json=corp_payload(), headers=h).get_json()["id"]
    v = c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]["version"]
    c.put(f"/api/v1/corporate_customer/{rid}", json={"registered_capital": "750", "version": v}, headers=h)
    import sqlalchemy as sa
    with app.app_context():
        rt = app.extensions["danbao"]
        audit = rt.models.system["danbao_audit"]
        rows = rt.session.execute(sa.select(audit).where(audit.c.record_id == rid, audit.c.entity == "corporate_customer",
                                                         audit.c.field == "registered_capital")
                                  .order_by(audit.c.id)).all()
    assert [(r.action, r.old_value, r.new_value) for r in rows] == [("create", None, "500.00"), ("update", "500.00", "750.00")]
    assert rows[-1].username == "pm" and rows[-1].meta_version.startswith("core@")
    page = login(app.test_client(), "pm").get(f"/e/corporate_customer/{rid}").get_data(as_text=True)
    assert "750.00" in page and "500.00" in page


def test_attachment_upload_preview_and_refusal(app):
    import io
    c = login(app.test_client(), "pm")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    resp = c.post("/e/corporate_customer/add", data={
        "name": "宁波永兴物流有限公司", "uscc": uscc(4),
        "documents": [(io.BytesIO(png), "licence.png"), (io.BytesIO(b"<html>evil</html>"), "page.html"),
                      (io.BytesIO(b"MZ\x90\x00"), "fake.pdf")]}, content_type="multipart/form-data")
    assert resp.status_code == 302
    show = c.get(resp.headers["Location"], follow_redirects=True).get_data(as_text=True)
    # the refusals were flashed with their reasons; the good file is stored
    assert "不支持的文件类型：.html" in show and "文件内容与扩展名不符" in show
    assert "licence.png" in show
    show = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert "page.html" not in show and "fake.pdf" not in show
    href = re.search(r'src="(/e/corporate_customer/\d+/files/\d+)"', show).group(1)
    got = c.get(href)
    assert got.status_code == 200 and got.data == png and got.mimetype == "image/png"
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_language_switch_and_chinese_default(app):
    c = login(app.test_client(), "pm")
    assert "对公客户" in c.get("/e/corporate_customer/").get_data(as_text=True)
    c.get("/lang/en")
    assert "Corporate customer" in c.get("/e/corporate_customer/").get_data(as_text=True)


def test_platform_module_not_shadowed():
    import platform
    assert platform.system()


def test_error_pages_are_friendly_and_api_errors_json(app):
    c = login(app.test_client(), "pm")
    resp = c.get("/e/no_such_entity/")
    assert resp.status_code == 404 and "页面或记录不存在" in resp.get_data(as_text=True)
    resp = c.get("/e/corporate_customer/999999")
    assert resp.status_code == 404
    resp = app.test_client().get("/api/v1/corporate_customer/abc", headers=jwt(app.test_client(), "pm"))
    assert resp.status_code == 404 and resp.is_json


def test_referenced_record_cannot_be_deleted(app):
    c = app.test_client()
    h = jwt(c, "risk")
    bank = c.post("/api/v1/bank/", json={"name": "招商银行深圳分行"}, headers=h).get_json()["id"]
    rid = c.post("/api/v1/corporate_customer/", json=corp_payload(basic_bank=bank), headers=h).get_json()["id"]
    # banks are not deletable by any metadata role; the Admin may try
    add_user(app, "root", "Admin")
    resp = c.delete(f"/api/v1/bank/{bank}", headers=jwt(c, "root"))
    assert resp.status_code == 409
    assert c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]["basic_bank"] == bank


def test_computed_and_conditional_fields_are_enforced_on_the_server(app):
    c = app.test_client()
    h = jwt(c, "pm")
    # required_if: a high-tech company must give its certificate number
    resp = c.post("/api/v1/corporate_customer/", json=corp_payload(high_tech=True), headers=h)
    assert resp.status_code == 422 and "high_tech_cert_no" in resp.get_json()["errors"]
    # visible_if false: whatever is sent for the hidden field is ignored
    body = c.post("/api/v1/corporate_customer/", json=corp_payload(
        high_tech=False, high_tech_cert_no="GR2020", registered_capital="800", paid_in_capital="300",
        paid_in_ratio="0.99"), headers=h).get_json()["result"]
    assert body["high_tech_cert_no"] is None
    # computed: calculated on save (rounded half-up to the rate's 6 places), input ignored
    assert body["paid_in_ratio"] == "0.375000"
    body = c.put(f"/api/v1/corporate_customer/{body['id']}", json={"version": body["version"], "registered_capital": "0"},
                 headers=h).get_json()["result"]
    assert body["paid_in_ratio"] is None      # division by zero gives None, never a crash
    ind = {"name": "李娜", "id_type": "resident_id", "id_no": "11010519491231002X", "housing": "mortgaged",
           "annual_income": "300000", "total_debt": "100000"}
    resp = c.post("/api/v1/individual_customer/", json=ind, headers=h)
    assert resp.status_code == 422 and "mortgage_balance" in resp.get_json()["errors"]
    body = c.post("/api/v1/individual_customer/", json=dict(ind, mortgage_balance="500000"), headers=h).get_json()
    assert body["result"]["debt_to_income"] == "0.3333"


def test_forms_refuse_posts_without_the_csrf_token(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "csrf", WTF_CSRF_ENABLED=True)
    add_user(app, "pm", "project_manager")
    c = app.test_client()
    page = c.get("/login/").get_data(as_text=True)
    c.post("/login/", data={"username": "pm", "password": "Secret-123", "csrf_token": csrf_from(page)})
    page = c.get("/e/corporate_customer/add").get_data(as_text=True)
    data = {"name": "无锡润泽包装材料有限公司", "uscc": uscc(9)}
    assert c.post("/e/corporate_customer/add", data=data).status_code == 400
    resp = c.post("/e/corporate_customer/add", data=dict(data, csrf_token=csrf_from(page)))
    assert resp.status_code == 302


def test_names_read_in_their_own_order(app):
    from danbao.engines.users import display_name
    assert display_name("三", "张", "zhangsan") == "张三 (zhangsan)"
    assert display_name("John", "Smith", "js") == "John Smith (js)"
    assert display_name(None, None, "x") == "x"
    page = login(app.test_client(), "pm").get("/e/corporate_customer/").get_data(as_text=True)
    assert "测试pm<b" in page.replace("\n", "")          # the user menu: family name first


def test_the_change_history_reads_one_entry_per_save(app):
    """修改记录: newest save first, each listing field: old → new; the first 20
    saves, then a link to all; a field whose condition fails is not shown."""
    c = app.test_client()
    h = jwt(c, "pm")
    rid = c.post("/api/v1/corporate_customer/", json=corp_payload(name="常州天宁机械有限公司", employees=10),
                 headers=h).get_json()["id"]
    for n in range(11, 35):                                     # 24 saves after the creation
        v = c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]["version"]
        assert c.put(f"/api/v1/corporate_customer/{rid}", json={"employees": n, "version": v},
                     headers=h).status_code == 200
    page = login(app.test_client(), "pm").get(f"/e/corporate_customer/{rid}").get_data(as_text=True)
    audit = page[page.index('id="audit"'):]
    entries = re.findall(r'<tr class="danbao-change">(.*?)</tr>', audit, re.S)
    assert len(entries) == 20
    newest = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", entries[0]))
    assert "员工人数" in newest and "33 → 34" in newest
    assert "另有 5 次保存" in audit                               # 25 saves in all
    every = login(app.test_client(), "pm").get(f"/e/corporate_customer/{rid}?history=all").get_data(as_text=True)
    entries = re.findall(r'<tr class="danbao-change">(.*?)</tr>', every[every.index('id="audit"'):], re.S)
    assert len(entries) == 25 and "<details>" in entries[-1]      # the creation: many fields, folded
    assert 'data-field="high_tech_cert_no"' not in page           # not a high-tech company: its certificate hidden


def test_read_only_fields_show_as_text_on_the_form(app):
    """A field the system writes (企业规模 is classified; 资信等级 comes from scoring) is no input."""
    c = app.test_client()
    h = jwt(c, "pm")
    rid = c.post("/api/v1/corporate_customer/", json=corp_payload(), headers=h).get_json()["id"]
    form = login(app.test_client(), "pm").get(f"/e/corporate_customer/{rid}/edit").get_data(as_text=True)
    readonly = [f.name for f in app.extensions["danbao"].meta.entity("corporate_customer").column_fields
                if f.readonly and not f.computed]
    assert readonly
    for name in readonly:
        assert f'id="fld-{name}" data-readonly="true"' in form and f'name="{name}"' not in form, name


def test_the_latest_saves_read_in_small_batches_are_the_same(app, monkeypatch):
    """The page reads the history a batch at a time until it has its 20 saves: the
    result does not depend on the batch size, and the count of the rest is exact."""
    from danbao.web import history
    c = app.test_client()
    h = jwt(c, "pm")
    rid = c.post("/api/v1/corporate_customer/", json=corp_payload(name="无锡新吴电子有限公司", employees=5),
                 headers=h).get_json()["id"]
    for n in range(6, 30):
        v = c.get(f"/api/v1/corporate_customer/{rid}", headers=h).get_json()["result"]["version"]
        assert c.put(f"/api/v1/corporate_customer/{rid}", json={"employees": n, "version": v},
                     headers=h).status_code == 200

    def audit_part():
        page = login(app.test_client(), "pm").get(f"/e/corporate_customer/{rid}").get_data(as_text=True)
        return page[page.index('id="audit"'):page.index("</table>", page.index('id="audit"'))], page
    whole, page = audit_part()
    monkeypatch.setattr(history, "BATCH", 3)
    small, page_small = audit_part()
    assert small == whole and whole.count('<tr class="danbao-change">') == 20
    assert "另有 5 次保存" in page and "另有 5 次保存" in page_small
