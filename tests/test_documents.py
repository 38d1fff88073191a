"""Document kinds (资料类型) on files and the documents a project still lacks: the engine
(tagging, refusals, status and missing per stage, a licence filed on the customer
counting for the project, ``documents_missing`` kept right as files come and go) and
the screens and REST API (upload with a kind, retag, the product panel's ticks, the
warning rule opening for a project missing its licence and closing once it is tagged)."""
from __future__ import annotations

import datetime as dt
import io
import random
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import CORE_PACK
from danbao.demo import make_uscc
from danbao.engines import documents
from danbao.engines.attachments import AttachmentStore
from danbao.engines.records import Actor, RecordService
from danbao.engines.warnings import scan
from danbao.meta.loader import load_packs
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import ensure_schema
from webfixtures import login, staffed_app

META = load_packs([CORE_PACK])
PROJECT = "guarantee_project"
CORP = "corporate_customer"
PDF = b"%PDF-1.4\n% test\n"
#: bank_loan's required application-stage documents, in the product's order
APPLICATION = ["guarantee_application", "business_licence", "financial_statements", "credit_report", "id_card",
               "due_diligence_report"]
LABELS = {"guarantee_application": "担保申请书", "business_licence": "营业执照", "financial_statements": "财务报表",
          "credit_report": "征信报告", "id_card": "身份证", "due_diligence_report": "尽职调查报告"}
_SEQ = iter(range(1, 10_000))


# -- the engine ------------------------------------------------------------------------------------
@pytest.fixture
def world(database_url, tmp_path):
    models = build_models(META)
    engine = make_engine(database_url)
    ensure_schema(engine, models)
    session = Session(engine)
    store = AttachmentStore(tmp_path / "files", models.system["danbao_attachment"])
    yield models, session, RecordService(models, session, Actor(None, "tester")), store
    session.close()
    engine.dispose()


def _corp(svc, n=None):
    n = n or next(_SEQ)
    return svc.create(CORP, {"name": f"资料企业{n}", "uscc": make_uscc(random.Random(7000 + n), "320100")})


def _project(svc, corp, **values):
    n = next(_SEQ)
    return svc.create(PROJECT, {"project_no": f"DOC-{n:04d}", "name": f"资料项目{n}", "customer_kind": "corporate",
                                "corporate_customer": corp.id, "amount": "1000000.00", "term_months": 12, **values})


def _file(session, models, store, entity, record_id, name="file.pdf", field="documents"):
    att_id = store.add(session, field=models.meta.entity(entity).field(field), entity=entity, record_id=record_id,
                       filename=name, stream=io.BytesIO(PDF), user_id=None)
    session.commit()
    return att_id


def _tagged(world, entity, record_id, code, name=None):
    """Upload a file to a record, tag it, rewrite the projects concerned; return the attachment id."""
    models, session, svc, store = world
    att_id = _file(session, models, store, entity, record_id, name or f"{code}.pdf")
    documents.tag(session, models, META, att_id, code, None)
    documents.refresh_documents_missing(svc, entity, record_id)
    session.commit()
    return att_id


def test_tagging_retagging_and_refusing_an_unknown_code(world):
    models, session, svc, store = world
    corp = _corp(svc)
    att_id = _file(session, models, store, CORP, corp.id, "licence.pdf")
    assert documents.tags_for(session, models, CORP, corp.id) == {}
    assert documents.tag(session, models, META, att_id, "business_licence", 7) == "business_licence"
    session.commit()
    assert documents.tags_for(session, models, CORP, corp.id) == {att_id: "business_licence"}
    tags = models.system["danbao_document_tag"]
    row = session.execute(sa.select(tags)).one()
    assert row.tagged_by_id == 7 and row.tagged_at is not None
    documents.tag(session, models, META, att_id, "articles", 8)          # retag: still one row
    session.commit()
    assert documents.tags_for(session, models, CORP, corp.id) == {att_id: "articles"}
    assert session.execute(sa.select(sa.func.count()).select_from(tags)).scalar() == 1
    with pytest.raises(documents.DocumentRefused) as refused:
        documents.tag(session, models, META, att_id, "passport_of_mars", None)
    assert refused.value.kind == "invalid"
    assert "passport_of_mars" in refused.value.message.zh and "document kind" in refused.value.message.en
    with pytest.raises(documents.DocumentRefused) as refused:
        documents.tag(session, models, META, 999_999, "articles", None)
    assert refused.value.kind == "not_found"
    with pytest.raises(documents.DocumentRefused):
        documents.tag(session, models, META, att_id, 42, None)
    assert documents.tags_for(session, models, CORP, corp.id) == {att_id: "articles"}   # refusals changed nothing
    assert documents.tag(session, models, META, att_id, "", None) is None              # empty removes the tag
    session.commit()
    assert documents.tags_for(session, models, CORP, corp.id) == {}
    # a removed file cannot be tagged, and its tag no longer counts
    documents.tag(session, models, META, att_id, "articles", None)
    store.remove(session, att_id)
    session.commit()
    assert documents.tags_for(session, models, CORP, corp.id) == {}
    with pytest.raises(documents.DocumentRefused):
        documents.tag(session, models, META, att_id, "articles", None)


def test_status_and_missing_per_stage_with_the_licence_on_the_customer(world):
    models, session, svc, store = world
    corp, other = _corp(svc), _corp(svc)
    project = _project(svc, corp)
    states = documents.document_status(session, models, META, project)
    assert [s.code for s in states] == [d.code for d in META.products["bank_loan"].documents
                                        if d.applies_to(CORP)]    # a company: no marriage certificate
    assert not any(s.present for s in states)
    missing = documents.missing_documents(session, models, META, project, "application")
    assert [s.code for s in missing] == APPLICATION                # optional ones are never missing
    assert [s.label.zh for s in missing][:2] == ["担保申请书", "营业执照"]
    # the licence filed on the customer counts for the project; one on another customer does not
    _tagged(world, CORP, other.id, "business_licence", "other.pdf")
    assert "business_licence" in [s.code for s in documents.missing_documents(session, models, META, project)]
    licence = _tagged(world, CORP, corp.id, "business_licence", "licence.pdf")
    state = {s.code: s for s in documents.document_status(session, models, META, project)}
    assert state["business_licence"].present
    assert [(f.id, f.entity, f.filename) for f in state["business_licence"].files] == [(licence, CORP, "licence.pdf")]
    # the project's own files: the rest of the application papers
    for code in APPLICATION:
        if code != "business_licence":
            _tagged(world, PROJECT, project.id, code)
    assert documents.missing_documents(session, models, META, project, "application") == []
    contract = documents.missing_documents(session, models, META, project, "contract")
    assert [s.code for s in contract] == ["loan_contract", "bank_guarantee_contract", "entrustment_contract",
                                          "counter_guarantee_contract", "fee_receipt", "loan_notice"]
    assert all(s.stage == "contract" for s in contract)
    release = documents.missing_documents(session, models, META, project, "release")
    assert [s.code for s in release][-2:] == ["repayment_proof", "release_notice"]
    assert len(release) == len(contract) + 2
    with pytest.raises(ValueError):
        documents.missing_documents(session, models, META, project, "someday")
    # an optional document is present when tagged, and still never missing
    _tagged(world, PROJECT, project.id, "site_photos")
    state = {s.code: s for s in documents.document_status(session, models, META, project)}
    assert state["site_photos"].present and not state["site_photos"].required
    # the customer's record sees the tags of its own files only
    assert documents.tags_for(session, models, CORP, corp.id) == {licence: "business_licence"}


def test_documents_missing_is_kept_right_as_files_come_and_go(world):
    models, session, svc, store = world
    corp = _corp(svc)
    project = _project(svc, corp)
    assert project.documents_missing == "、".join(LABELS[c] for c in APPLICATION)
    licence = _tagged(world, CORP, corp.id, "business_licence")
    session.refresh(project)
    assert "营业执照" not in project.documents_missing and project.documents_missing.startswith("担保申请书、财务报表")
    # the change is audited on the project like any other
    audit = models.system["danbao_audit"]
    rows = session.execute(sa.select(audit.c.old_value, audit.c.new_value).where(
        audit.c.entity == PROJECT, audit.c.record_id == project.id, audit.c.field == "documents_missing")
        .order_by(audit.c.id)).all()
    assert rows[-1].old_value.startswith("担保申请书、营业执照") and "营业执照" not in rows[-1].new_value
    ids = {code: _tagged(world, PROJECT, project.id, code) for code in APPLICATION if code != "business_licence"}
    session.refresh(project)
    assert project.documents_missing is None
    # untagging a file, removing one: missing again
    documents.tag(session, models, META, ids["credit_report"], None, None)
    documents.refresh_documents_missing(svc, PROJECT, project.id)
    session.commit()
    session.refresh(project)
    assert project.documents_missing == "征信报告"
    store.remove(session, licence)
    documents.refresh_documents_missing(svc, CORP, corp.id)
    session.commit()
    session.refresh(project)
    assert project.documents_missing == "营业执照、征信报告"
    # nothing changed: nothing written (no new version)
    version = project.version
    assert documents.refresh_documents_missing(svc, PROJECT, project.id) == []
    session.commit()
    session.refresh(project)
    assert project.version == version
    # a save recomputes it: a new customer with a licence on file
    other = _corp(svc)
    _tagged(world, CORP, other.id, "business_licence")
    svc.update(PROJECT, project.id, {"corporate_customer": other.id}, expected_version=project.version)
    session.refresh(project)
    assert project.documents_missing == "征信报告"
    # the field is the system's: what a user sends is ignored
    svc.update(PROJECT, project.id, {"documents_missing": "随便"}, expected_version=project.version)
    session.refresh(project)
    assert project.documents_missing == "征信报告"


def test_a_project_of_a_product_without_documents_misses_nothing(world):
    models, session, svc, store = world
    project = _project(svc, _corp(svc))
    assert documents.document_status(session, models, META, type("P", (), {"product": "no_such"})()) == []
    assert documents.projects_of(session, models, META, "bank", 1) == []
    assert documents.projects_of(session, models, META, PROJECT, project.id) == [project.id]
    assert documents.missing_text([], 500) is None
    # a database upgraded to the field: every project gets it on the next refresh
    table = models.table(PROJECT)
    session.execute(table.update().values(documents_missing=None))
    session.commit()
    assert documents.refresh_all_projects(svc) == 1
    session.commit()
    session.refresh(project)
    assert project.documents_missing.startswith("担保申请书、营业执照")
    assert documents.refresh_all_projects(svc) == 0


def test_the_daily_run_rechecks_open_applications_only(world):
    """Setting ``documents_open_statuses``: applications get their missing documents
    back after an upgrade; a released project is left as it is."""
    from danbao.engines.business import daily_run
    models, session, svc, store = world
    applying, released = _project(svc, _corp(svc)), _project(svc, _corp(svc))
    svc.assign(PROJECT, released.id, {"status": "released"})
    session.commit()
    table = models.table(PROJECT)
    session.execute(table.update().values(documents_missing=None))
    session.commit()
    counts = daily_run(session, models, META, dt.date(2026, 12, 1))
    assert counts["documents"] == 1
    session.expire_all()
    assert session.get(models.cls(PROJECT), applying.id).documents_missing.startswith("担保申请书")
    assert session.get(models.cls(PROJECT), released.id).documents_missing is None
    assert daily_run(session, models, META, dt.date(2026, 12, 2))["documents"] == 0


# -- screens and REST ------------------------------------------------------------------------------
USERS = {"pm": "project_manager", "risk": "risk_officer", "audit": "auditor"}


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    yield from staffed_app(module_database_url, tmp_path_factory.mktemp("inst"), USERS)


def _web_project(app, **values):
    n = next(_SEQ)
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"), seeding=True)
        corp = _corp(svc, n)
        project = _project(svc, corp, a_manager=app.ids["pm"], **values)
        return corp.id, project.id


def _store(app, entity, record_id, name="file.pdf"):
    rt = app.extensions["danbao"]
    with app.app_context():
        return _file(rt.session, rt.models, rt.store, entity, record_id, name)


def _missing(app, pid):
    rt = app.extensions["danbao"]
    with app.app_context():
        rt.session.rollback()
        return rt.session.get(rt.models.cls(PROJECT), pid).documents_missing


def _tag_of(app, att_id):
    rt = app.extensions["danbao"]
    with app.app_context():
        rt.session.rollback()
        return documents.tag_of(rt.session, rt.models, att_id)


def _open_warnings(app, pid):
    rt = app.extensions["danbao"]
    with app.app_context():
        scan(rt.session, rt.models, rt.meta, as_of=dt.date.today(), rules=["project_documents_missing"])
        w = rt.models.system["danbao_warning"]
        return [(r.status, r.message_zh) for r in rt.session.execute(sa.select(w.c.status, w.c.message_zh).where(
            w.c.rule == "project_documents_missing", w.c.record_id == pid).order_by(w.c.id))]


def test_upload_with_a_kind_retag_and_the_panel_ticks(app):
    cid, pid = _web_project(app)
    c = login(app.test_client(), "pm")
    form = c.get(f"/e/{CORP}/{cid}/edit").text
    assert 'name="documents__doc_kind"' in form and '<option value="business_licence">营业执照</option>' in form
    page = c.get(f"/e/{PROJECT}/{pid}").text
    assert re.search(r'data-document="business_licence" data-present="false" data-required="true"', page)
    # a new customer created with its licence: the upload form's kind tags the file
    resp = c.post(f"/e/{CORP}/add", data={
        "name": "带执照企业", "uscc": make_uscc(random.Random(9901), "320100"),
        "documents": [(io.BytesIO(PDF), "执照.pdf")], "documents__doc_kind": "business_licence"},
        content_type="multipart/form-data")
    assert resp.status_code == 302, resp.text[:500]
    new_cid = int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    show = c.get(f"/e/{CORP}/{new_cid}").text
    att_id = int(re.search(r'data-attachment="(\d+)" data-doc-kind="business_licence"', show).group(1))
    assert '<option value="business_licence" selected>营业执照</option>' in show
    # an edit of the project's customer with its licence: the project's ticks and missing list follow
    rt = app.extensions["danbao"]
    with app.app_context():
        corp = rt.session.get(rt.models.cls(CORP), cid)
        name, uscc, version = corp.name, corp.uscc, corp.version
    resp = c.post(f"/e/{CORP}/{cid}/edit", data={
        "name": name, "uscc": uscc, "version": str(version),
        "documents": [(io.BytesIO(PDF), "营业执照扫描件.pdf")], "documents__doc_kind": "business_licence"},
        content_type="multipart/form-data")
    assert resp.status_code == 302, resp.text[:800]
    assert "营业执照" not in _missing(app, pid)
    page = c.get(f"/e/{PROJECT}/{pid}").text
    assert 'data-document="business_licence" data-present="true"' in page
    item = page[page.index('data-document="business_licence"'):]
    item = item[:item.index("</li>")]
    assert "✓" in item and "营业执照扫描件.pdf" in item
    assert "✗" in page[page.index('data-document="credit_report"'):]
    # retag on the customer's page: the licence is now the articles, so the project misses it again
    lic_id = int(re.search(r'data-attachment="(\d+)" data-doc-kind="business_licence"',
                           c.get(f"/e/{CORP}/{cid}").text).group(1))
    resp = c.post(f"/e/{CORP}/{cid}/files/{lic_id}/tag", data={"doc_kind": "articles"})
    assert resp.status_code == 302
    assert _tag_of(app, lic_id) == "articles"
    assert "已标注为：公司章程" in c.get(resp.headers["Location"]).text
    assert _missing(app, pid).split("、")[1] == "营业执照"
    # an unknown code is refused with its message; nothing changes
    resp = c.post(f"/e/{CORP}/{cid}/files/{lic_id}/tag", data={"doc_kind": "nonsense"}, follow_redirects=True)
    assert "没有这种资料类型：nonsense" in resp.text and _tag_of(app, lic_id) == "articles"
    # a file of another record, a file that does not exist: 404; an auditor may not tag
    assert c.post(f"/e/{CORP}/{cid}/files/{att_id}/tag", data={"doc_kind": "articles"}).status_code == 404
    assert c.post(f"/e/{CORP}/{cid}/files/999999/tag", data={"doc_kind": "articles"}).status_code == 404
    auditor = login(app.test_client(), "audit")
    assert auditor.post(f"/e/{CORP}/{cid}/files/{lic_id}/tag", data={"doc_kind": ""}).status_code == 403
    assert "data-doc-kind=\"articles\"" in auditor.get(f"/e/{CORP}/{cid}").text      # shown, not editable
    assert 'name="doc_kind"' not in auditor.get(f"/e/{CORP}/{cid}").text
    # untag
    c.post(f"/e/{CORP}/{cid}/files/{lic_id}/tag", data={"doc_kind": ""})
    assert _tag_of(app, lic_id) is None
    # other entities' files get no document kind controls
    assert 'name="documents__doc_kind"' not in c.get("/e/bank/add").text


def test_the_warning_opens_for_a_project_missing_its_licence_and_closes_once_tagged(app):
    cid, pid = _web_project(app, status="reviewing")
    pm = app.tokens["pm"]
    client = app.test_client()
    for code in APPLICATION:
        if code == "business_licence":
            continue
        att_id = _store(app, PROJECT, pid, f"{code}.pdf")
        resp = client.post(f"/api/v1/attachments/{att_id}/tag", json={"doc_kind": code}, headers=pm)
        assert resp.status_code == 200, resp.data
        assert resp.get_json()["doc_kind"] == code and resp.get_json()["entity"] == PROJECT
    assert _missing(app, pid) == "营业执照"
    assert _open_warnings(app, pid) == [("open", f"项目 {_project_no(app, pid)}（{_project_name(app, pid)}）缺少资料：营业执照")]
    # the licence lands on the customer, untagged: still missing; tagged: the warning closes
    licence = _store(app, CORP, cid, "licence.jpg.pdf")
    assert _open_warnings(app, pid)[-1][0] == "open"
    c = login(app.test_client(), "pm")
    assert c.post(f"/e/{CORP}/{cid}/files/{licence}/tag", data={"doc_kind": "business_licence"}).status_code == 302
    assert _missing(app, pid) is None
    assert [s for s, _ in _open_warnings(app, pid)] == ["closed"]
    page = c.get(f"/e/{PROJECT}/{pid}").text
    for code in APPLICATION:
        assert f'data-document="{code}" data-present="true"' in page
    assert 'data-document="loan_contract" data-present="false"' in page      # a contract-stage paper, not yet due


def _project_no(app, pid):
    rt = app.extensions["danbao"]
    with app.app_context():
        return rt.session.get(rt.models.cls(PROJECT), pid).project_no


def _project_name(app, pid):
    rt = app.extensions["danbao"]
    with app.app_context():
        return rt.session.get(rt.models.cls(PROJECT), pid).name


def test_the_rest_api_tags_lists_and_refuses(app):
    cid, pid = _web_project(app)
    att_id = _store(app, CORP, cid, "licence.pdf")
    client = app.test_client()
    pm, audit = app.tokens["pm"], app.tokens["audit"]
    url = f"/api/v1/attachments/{att_id}/tag"
    assert client.post(url, json={"doc_kind": "business_licence"}).status_code == 401
    assert client.post(url, json={"doc_kind": "business_licence"}, headers=audit).status_code == 403
    for body, key in (({"doc_kind": "nope"}, "doc_kind"), ({}, "doc_kind"), ({"doc_kind": 3}, "doc_kind"),
                      ({"doc_kind": "articles", "extra": 1}, "extra")):
        resp = client.post(url, json=body, headers=pm)
        assert resp.status_code == 422 and key in resp.get_json()["errors"], (body, resp.data)
    assert client.post(url, data="{", headers=pm, content_type="application/json").status_code == 400
    assert client.post("/api/v1/attachments/999999/tag", json={"doc_kind": None}, headers=pm).status_code == 404
    assert client.post("/api/v1/attachments/abc/tag", json={"doc_kind": None}, headers=pm).status_code == 404
    resp = client.post(url, json={"doc_kind": "business_licence"}, headers={**pm, "Accept-Language": "en"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["doc_kind"] == "business_licence" and body["doc_kind_label"] == "Business licence"
    assert body["filename"] == "licence.pdf" and body["record_id"] == cid
    assert "营业执照" not in _missing(app, pid)
    listed = client.get(f"/api/v1/{CORP}/{cid}/attachments", headers=audit).get_json()["result"]
    assert [(a["id"], a["doc_kind"]) for a in listed] == [(att_id, "business_licence")]
    docs = client.get(f"/api/v1/{PROJECT}/{pid}/documents", headers=audit).get_json()
    state = {d["code"]: d for d in docs["documents"]}
    assert state["business_licence"]["present"] and state["business_licence"]["files"][0]["id"] == att_id
    assert "business_licence" not in docs["missing"]["application"]
    assert docs["missing"]["contract"][:len(docs["missing"]["application"])] == docs["missing"]["application"]
    assert client.get(f"/api/v1/{CORP}/{cid}/documents", headers=audit).status_code == 404
    assert client.get(f"/api/v1/{PROJECT}/999999/documents", headers=audit).status_code == 404
    assert client.get("/api/v1/bank/1/attachments", headers=audit).status_code == 404
    resp = client.post(url, json={"doc_kind": None}, headers=pm)
    assert resp.status_code == 200 and resp.get_json()["doc_kind"] is None
    assert "营业执照" in _missing(app, pid)
    # files of other entities (a credit record of the customer) carry no document kind
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(app.ids["pm"], "pm"))
        corp = svc.get(CORP, cid)
        svc.update(CORP, cid, {"credit_records": [{"queried_on": "2026-01-05"}]}, expected_version=corp.version)
        row_id = svc.get(CORP, cid).credit_records[0].id
        other = _file(rt.session, rt.models, rt.store, "credit_record", row_id, "report.pdf", field="reports")
    resp = client.post(f"/api/v1/attachments/{other}/tag", json={"doc_kind": "credit_report"}, headers=pm)
    assert resp.status_code == 422 and "doc_kind" in resp.get_json()["errors"]


def test_openapi_describes_the_document_paths(app):
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/attachments/{attachment_id}/tag"]) == {"post"}
    assert f"/api/v1/{PROJECT}/{{record_id}}/documents" in paths
    assert f"/api/v1/{CORP}/{{record_id}}/attachments" in paths
    assert "/api/v1/bank/{record_id}/attachments" not in paths


def test_a_person_is_not_asked_for_a_company_s_papers(world):
    """``customers`` on a requirement: a business licence and statements from a
    company, a marriage certificate (optional) from a person."""
    models, session, svc, store = world
    person = svc.create("individual_customer", {"name": "王强", "id_type": "resident_id", "id_no": "11010519491231002X"})
    mine = svc.create(PROJECT, {"project_no": "DOC-P-1", "name": "个人经营贷", "customer_kind": "individual",
                                "individual_customer": person.id, "amount": "500000.00", "term_months": 12})
    theirs = _project(svc, _corp(svc))
    asked = {s.requirement.code for s in documents.document_status(session, models, META, mine)}
    company = {s.requirement.code for s in documents.document_status(session, models, META, theirs)}
    assert {"business_licence", "financial_statements", "articles"} <= company - asked
    assert "marriage_proof" in asked - company
    assert {"guarantee_application", "id_card", "credit_report"} <= asked & company
    assert "营业执照" not in (mine.documents_missing or "") and "身份证" in mine.documents_missing
