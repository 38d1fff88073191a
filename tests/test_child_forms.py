"""Inline child rows on the generated forms, through the Flask test client:
each row follows its own entity's conditions (a counter-guarantee shows the
fields of its kind) on the form and the record page, and a row's files are
uploaded from the parent form onto that row's record — checked before
anything is saved."""
from __future__ import annotations

import io
import json
import random
import re

import pytest
import sqlalchemy as sa

from webfixtures import add_user, login

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%test\n"


@pytest.fixture
def app(database_url, tmp_path):
    """The core pack with uploads capped at 1 MB (so a too-large file is small to make)."""
    from conftest import CORE_PACK
    from danbao.app import create_app
    from danbao.config import Settings
    app = create_app(Settings(instance_dir=tmp_path / "instance", database_url=database_url, packs=(CORE_PACK,),
                              secret_key="test-secret-0123456789abcdef0123456789", testing=True, max_upload_mb=1,
                              extra={"WTF_CSRF_ENABLED": False}))
    add_user(app, "pm", "project_manager")
    yield app
    with app.app_context():
        app.extensions["danbao"].db.session.remove()
        app.extensions["danbao"].db.engine.dispose()


def _customer(app, seed=1) -> int:
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    with app.app_context():
        rt = app.extensions["danbao"]
        corp = RecordService(rt.models, rt.session, Actor(None, "t")).create("corporate_customer", {
            "name": f"常州恒远机械制造有限公司{seed}", "uscc": make_uscc(random.Random(seed), "320400")})
        return corp.id


def _project_form(customer_id, **rows) -> dict:
    form = {"name": "恒远机械流动资金贷款担保", "customer_kind": "corporate", "corporate_customer": str(customer_id),
            "amount": "2000000", "term_months": "12", "product": "bank_loan", "status": "applying"}
    form.update(rows)
    return form


MORTGAGE_AND_SURETY = {
    "counter_guarantees-0-kind": "mortgage", "counter_guarantees-0-asset_kind": "real_estate",
    "counter_guarantees-0-owner": "王建国", "counter_guarantees-0-certificate_no": "苏(2023)常州市不动产权第0012345号",
    "counter_guarantees-0-rank": "1", "counter_guarantees-0-location": "常州市新北区长江路88号",
    "counter_guarantees-0-area_sqm": "156.20", "counter_guarantees-0-appraised_value": "2600000",
    "counter_guarantees-0-guarantor_name": "不应保存的保证人",       # hidden for a mortgage: ignored
    "counter_guarantees-1-kind": "surety", "counter_guarantees-1-guarantor_kind": "person",
    "counter_guarantees-1-guarantor_name": "王建国", "counter_guarantees-1-guarantor_id_no": "11010519491231002X",
    "counter_guarantees-1-appraised_value": "800000",
    "counter_guarantees-1-owner": "不应保存的所有权人",              # hidden for a surety: ignored
}
MORTGAGE_ONLY = {"rank", "area_sqm", "owner", "certificate_no", "location", "asset_kind"}
SURETY_ONLY = {"guarantor_kind", "guarantor_name", "guarantor_id_no", "guarantor_net_assets",
               "guarantor_contingent_liabilities"}


def _blocks(html: str, child: str) -> dict[str, str]:
    """{data-row: html} of the stacked row blocks of one children field (the template is '__i__')."""
    box = html[html.index(f'id="children-{child}"'):]
    box = box[:box.index('class="btn btn-default btn-sm danbao-add-row"')] if "danbao-add-row" in box else box
    parts = re.split(r'(?=<div class="panel panel-default danbao-block )', box)[1:]
    return {re.search(r'data-row="([^"]+)"', p).group(1): p for p in parts}


def _shown_cells(block: str) -> set[str]:
    """The fields of a form block whose cell is not hidden."""
    return {name for cls, name in re.findall(r'class="([^"]*danbao-cell[^"]*)" data-cfield="([a-z_]+)"', block)
            if "hidden" not in cls.split()}


def _page_blocks(html: str, child: str) -> list[str]:
    box = html[html.index(f'id="children-{child}"'):]
    return re.split(r'(?=<div class="panel panel-default danbao-block danbao-row")', box)[1:]


def _project_id(resp) -> int:
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    return int(resp.headers["Location"].rstrip("/").split("/")[-1])


def _rows(app, entity: str, project_id: int):
    with app.app_context():
        rt = app.extensions["danbao"]
        cls = rt.models.cls(entity)
        return rt.session.execute(sa.select(cls).where(cls.parent_id == project_id).order_by(cls.id)).scalars().all()


def _files(app, entity: str) -> list[tuple[int, str, str]]:
    with app.app_context():
        rt = app.extensions["danbao"]
        att = rt.models.system["danbao_attachment"]
        return [tuple(r) for r in rt.session.execute(sa.select(att.c.record_id, att.c.field, att.c.filename).where(
            att.c.entity == entity, att.c.deleted.is_(False)).order_by(att.c.id)).all()]


def test_counter_guarantee_rows_show_the_fields_of_their_kind(app):
    c = login(app.test_client(), "pm")
    pid = _project_id(c.post("/e/guarantee_project/add", data=_project_form(_customer(app), **MORTGAGE_AND_SURETY)))
    mortgage, surety = _rows(app, "counter_guarantee", pid)
    assert (mortgage.kind, mortgage.rank, mortgage.guarantor_name) == ("mortgage", 1, None)
    assert (surety.kind, surety.guarantor_name, surety.owner) == ("surety", "王建国", None)

    form = c.get(f"/e/guarantee_project/{pid}/edit").get_data(as_text=True)
    assert 'data-child="counter_guarantees" data-layout="stacked"' in form
    assert 'data-child="fee_instalments"' not in form                      # the system's plan: shown, not an input
    assert 'data-field="fee_instalments" data-locked="true"' in form
    blocks = _blocks(form, "counter_guarantees")
    assert set(blocks) == {"0", "1", "__i__"}
    assert MORTGAGE_ONLY <= _shown_cells(blocks["0"]) and not SURETY_ONLY & _shown_cells(blocks["0"])
    assert SURETY_ONLY <= _shown_cells(blocks["1"]) and not MORTGAGE_ONLY & _shown_cells(blocks["1"])
    assert 'name="counter_guarantees-1-id" value="%d"' % surety.id in blocks["1"]
    # a new row starts with only what every kind has; the page's script takes it from there
    assert _shown_cells(blocks["__i__"]) == {"kind", "description", "discount_rate", "covered_value"}
    assert 'name="counter_guarantees-__i__-kind"' in blocks["__i__"]
    spec = json.loads(re.search(r'<script type="application/json" id="danbao-rules">(.*?)</script>', form, re.S).group(1))
    rules = spec["children"]["counter_guarantees"]
    assert {"target": "rank", "kind": "visible_if", "js": '(D.cmp("==", v("kind"), "mortgage"))'} in rules["rules"]
    assert rules["types"]["appraised_value"] == "money" and "fee_instalments" not in spec["children"]
    # the system's own values are shown, not offered as inputs
    assert 'name="counter_guarantees-0-discount_rate"' not in form
    assert re.search(r'id="fld-counter_guarantees-0-covered_value" data-computed="true">1,820,000.00 ', blocks["0"])

    page = c.get(f"/e/guarantee_project/{pid}").get_data(as_text=True)
    first, second = _page_blocks(page, "counter_guarantees")
    shown = [set(re.findall(r'data-cfield="([a-z_]+)"', b)) for b in (first, second)]
    assert MORTGAGE_ONLY <= shown[0] and not SURETY_ONLY & shown[0]
    assert SURETY_ONLY <= shown[1] and not MORTGAGE_ONLY & shown[1]
    assert "常州市新北区长江路88号" in first and "王建国" in second and "不应保存" not in page


def test_posted_values_decide_the_rows_shown_again_after_an_error(app):
    c = login(app.test_client(), "pm")
    data = _project_form(_customer(app), **MORTGAGE_AND_SURETY)
    data["counter_guarantees-1-guarantor_name"] = ""      # required for a surety
    resp = c.post("/e/guarantee_project/add", data=data)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', html))
    assert errors == {"counter_guarantees-1-guarantor_name": "必填"}
    blocks = _blocks(html, "counter_guarantees")
    assert "rank" in _shown_cells(blocks["0"]) and "guarantor_name" in _shown_cells(blocks["1"])
    # required by the row's kind: the marker is on
    assert re.search(r'data-cfield="guarantor_name">\s*<label[^>]*>[^<]*<span class="danbao-req danbao-req-if ">',
                     blocks["1"])
    assert 'value="常州市新北区长江路88号"' in blocks["0"]
    # a row that names somebody else's record is refused on that row
    resp = c.post("/e/guarantee_project/add", data=dict(data, **{"counter_guarantees-1-guarantor_name": "王建国",
                                                                 "counter_guarantees-0-id": "999999"}))
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', resp.get_data(as_text=True)))
    assert resp.status_code == 422 and errors == {"counter_guarantees-0-id": "不是本记录的明细行"}


def test_child_row_files_land_on_the_row_they_were_chosen_in(app):
    c = login(app.test_client(), "pm")
    customer = _customer(app)
    # created with two checks, the second one's photo uploaded with the new project
    pid = _project_id(c.post("/e/guarantee_project/add", content_type="multipart/form-data", data=_project_form(
        customer, **{"post_checks-0-round_no": "9",
                     "post_checks-1-round_no": "1", "post_checks-1-method": "site_visit",
                     "post_checks-1-files": [(io.BytesIO(PNG), "第一次现场.png")]})))
    dropped, first = _rows(app, "post_check", pid)
    assert (dropped.round_no, first.round_no) == (9, 1)
    assert _files(app, "post_check") == [(first.id, "files", "第一次现场.png")]

    form = c.get(f"/e/guarantee_project/{pid}/edit").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    assert "第一次现场.png" in _blocks(form, "post_checks")["1"] and "第一次现场.png" not in _blocks(form, "post_checks")["0"]
    photo_id = re.search(r'name="post_checks-1-remove_attachment" value="(\d+)"', form).group(1)
    # round 9 is dropped; rows posted with gaps: i = 0 (kept, its photo replaced), 2 (new), 5 (new, no file), 7 (new)
    resp = c.post(f"/e/guarantee_project/{pid}/edit", content_type="multipart/form-data", data=_project_form(
        customer, version=version, **{
            "post_checks-0-id": str(first.id), "post_checks-0-round_no": "1", "post_checks-0-method": "site_visit",
            "post_checks-0-remove_attachment": photo_id,
            "post_checks-0-files": [(io.BytesIO(PDF), "第一次报告.pdf")],
            "post_checks-2-id": "", "post_checks-2-round_no": "2", "post_checks-2-method": "phone",
            "post_checks-2-files": [(io.BytesIO(PDF), "第二次记录.pdf"), (io.BytesIO(PNG), "第二次照片.png")],
            "post_checks-5-id": "", "post_checks-5-round_no": "3",
            "post_checks-7-id": "", "post_checks-7-round_no": "4",
            "post_checks-7-files": [(io.BytesIO(PNG), "第四次照片.png")]}))
    assert _project_id(resp) == pid
    rows = {r.round_no: r.id for r in _rows(app, "post_check", pid)}
    assert set(rows) == {1, 2, 3, 4} and rows[1] == first.id
    assert sorted(_files(app, "post_check")) == sorted([
        (rows[1], "files", "第一次报告.pdf"), (rows[2], "files", "第二次记录.pdf"),
        (rows[2], "files", "第二次照片.png"), (rows[4], "files", "第四次照片.png")])

    page = c.get(f"/e/guarantee_project/{pid}").get_data(as_text=True)
    blocks = {re.search(r'data-row-id="(\d+)"', b).group(1): b for b in _page_blocks(page, "post_checks")}
    assert "第二次照片.png" in blocks[str(rows[2])] and "第二次照片.png" not in blocks[str(rows[1])]
    assert "第一次现场.png" not in page
    href = re.search(r'src="(/e/post_check/%d/files/\d+)"' % rows[4], blocks[str(rows[4])]).group(1)
    got = c.get(href)
    assert got.status_code == 200 and got.data == PNG

    # a row dropped with its photo: the file is kept for the audit, no longer served
    form = c.get(f"/e/guarantee_project/{pid}/edit").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    resp = c.post(f"/e/guarantee_project/{pid}/edit", content_type="multipart/form-data", data=_project_form(
        customer, version=version, **{"post_checks-0-id": str(rows[1]), "post_checks-0-round_no": "1"}))
    assert _project_id(resp) == pid
    assert {r.round_no for r in _rows(app, "post_check", pid)} == {1}
    assert c.get(href).status_code == 404


@pytest.mark.parametrize("upload,message", [
    ((PNG[:8] + b"\x00" * (1024 * 1024 + 10), "太大.png"), "文件过大：不能超过 1 MB"),
    ((b"<html>evil</html>", "page.html"), "不支持的文件类型：.html"),
    ((b"MZ\x90\x00", "fake.pdf"), "文件内容与扩展名不符"),
])
def test_a_bad_child_file_is_a_field_error_and_nothing_is_saved(app, upload, message):
    c = login(app.test_client(), "pm")
    customer = _customer(app)
    pid = _project_id(c.post("/e/guarantee_project/add", data=_project_form(
        customer, **{"post_checks-0-round_no": "1", "post_checks-0-findings": "经营正常"})))
    (first,) = _rows(app, "post_check", pid)
    form = c.get(f"/e/guarantee_project/{pid}/edit").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    content, name = upload
    resp = c.post(f"/e/guarantee_project/{pid}/edit", content_type="multipart/form-data", data=_project_form(
        customer, version=version, name="改过的名称", **{
            "post_checks-0-id": str(first.id), "post_checks-0-round_no": "1", "post_checks-0-findings": "经营正常，已改",
            "post_checks-0-files": [(io.BytesIO(PNG), "好的照片.png")],
            "post_checks-1-id": "", "post_checks-1-round_no": "2", "post_checks-1-findings": "第二次检查",
            "post_checks-1-files": [(io.BytesIO(content), name)]}))
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', html))
    assert list(errors) == ["post_checks-1-files"] and message in errors["post_checks-1-files"]
    # what was typed is all still on the form; the files must be chosen again
    assert 'value="改过的名称"' in html and "经营正常，已改" in html and "第二次检查" in html
    assert "请修正后重新选择文件" in html
    # and nothing was saved: not the record, not the rows, not the good file
    (still,) = _rows(app, "post_check", pid)
    assert still.findings == "经营正常"
    assert _files(app, "post_check") == []
    assert c.get(f"/e/guarantee_project/{pid}").get_data(as_text=True).count("改过的名称") == 0


def test_a_file_of_a_kind_the_field_does_not_accept_is_refused_on_create(app):
    from danbao.demo import make_uscc
    c = login(app.test_client(), "pm")
    resp = c.post("/e/corporate_customer/add", content_type="multipart/form-data", data={
        "name": "常州永达纺织有限公司", "uscc": make_uscc(random.Random(5), "320400"),
        "credit_records-0-queried_on": "2025-03-01",
        "credit_records-0-reports": [(io.BytesIO(b"ID3" + b"\x00" * 32), "录音.mp3")]})
    assert resp.status_code == 422
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', resp.get_data(as_text=True)))
    assert "credit_records-0-reports" in errors and "此处只接受" in errors["credit_records-0-reports"]
    with app.app_context():
        rt = app.extensions["danbao"]
        cls = rt.models.cls("corporate_customer")
        assert rt.session.execute(sa.select(sa.func.count()).select_from(cls)).scalar() == 0
    assert _files(app, "credit_record") == []
    c.get("/lang/en")
    resp = c.post("/e/corporate_customer/add", content_type="multipart/form-data", data={
        "name": "常州永达纺织有限公司", "uscc": make_uscc(random.Random(5), "320400"),
        "credit_records-0-queried_on": "2025-03-01",
        "credit_records-0-reports": [(io.BytesIO(b"ID3" + b"\x00" * 32), "recording.mp3")]})
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', resp.get_data(as_text=True)))
    assert "only document, image files here" in errors["credit_records-0-reports"]
