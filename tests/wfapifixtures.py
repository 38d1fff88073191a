"""Helpers for the approval REST tests (tests/test_workflow_api.py) and the
schemathesis run (tests/test_api_fuzz.py): a second role for a user, a
project to submit, and, for the fuzzer, tasks of its own to act on."""
from __future__ import annotations

import itertools
import random

from webfixtures import add_user
from wfhelpers import full_cover

_SEQ = itertools.count(1)


def add_role(app, username: str, role: str) -> None:
    """Give ``username`` one more role."""
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.find_user(username=username)
        user.roles.append(sm.find_role(role) or sm.add_role(role))
        sm.update_user(user)


def make_project(app, a_manager: int | None, amount: str = "5000000", **values) -> int:
    """A corporate customer and a guarantee project (status applying); its id."""
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    n = next(_SEQ)
    with app.app_context():
        rt = app.extensions["danbao"]
        svc = RecordService(rt.models, rt.session, Actor(None, "test"))
        corp = svc.create("corporate_customer", {"name": f"审批企业{n}",
                                                 "uscc": make_uscc(random.Random(1000 + n), "320100")})
        project = svc.create("guarantee_project", {
            "project_no": f"WF{n:05d}", "name": f"审批项目{n}", "customer_kind": "corporate",
            "corporate_customer": corp.id, "amount": amount, "term_months": 12, "a_manager": a_manager,
            "start_date": "2026-12-01", "loan_contract_no": "JK-1", "bank_contract_no": "BZ-1",
            "entrustment_contract_no": "WT-1", "counter_guarantees": full_cover(amount), **values})
        file_documents(rt, project.id)
        return project.id


def file_documents(rt, project_id: int) -> None:
    """The project's required application and contract documents, as tagged files
    (the rows an upload and a tag write), so a test may drive it past 初审 and 签约办理."""
    import datetime as dt
    for stage in ("application", "contract"):
        file_required(rt.session, rt.models, rt.meta, project_id, stage, dt.datetime(2026, 12, 1, 9))
    rt.session.commit()


def file_required(session, models, meta, project_id: int, stage: str, now) -> list[str]:
    """Write the attachment and tag rows of every required ``stage`` document the
    project lacks (no bytes are needed for a document to count); not committed."""
    from danbao.engines.documents import missing_documents
    from danbao.model.system import ATTACHMENT_TABLE, DOCUMENT_TAG_TABLE
    att, tags = models.system[ATTACHMENT_TABLE], models.system[DOCUMENT_TAG_TABLE]
    project = session.get(models.cls("guarantee_project"), project_id)
    codes = [d.requirement.code for d in missing_documents(session, models, meta, project, stage)]
    for code in codes:
        aid = session.execute(att.insert().values(
            entity="guarantee_project", record_id=project_id, field="documents", filename=f"{code}.pdf",
            content_type="application/pdf", kind="document", size=16, sha256="0" * 64,
            storage_key=f"test/{project_id}/{code}", uploaded_at=now, deleted=False).returning(att.c.id)).scalar_one()
        session.execute(tags.insert().values(attachment_id=aid, doc_kind=code, tagged_at=now))
    return codes


def dispose(app) -> None:
    with app.app_context():
        app.extensions["danbao"].db.session.remove()
        app.extensions["danbao"].db.engine.dispose()


def open_fuzz_tasks(app, fuzzer: str = "fuzzer") -> None:
    """Projects submitted by a project manager, so the fuzzer (a risk officer)
    holds open first-review tasks and the record and task paths reach real rows;
    a manager and committee members exist so approving can move on."""
    from danbao.engines.records import Actor
    from danbao.engines.workflow import WorkflowEngine
    pm = add_user(app, "fuzz_pm", "project_manager")
    add_user(app, "fuzz_risk", "risk_officer")       # first review of the project the fuzzer submits
    add_user(app, "fuzz_boss", "manager")
    add_user(app, "fuzz_c1", "committee_member")
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.find_user(username=fuzzer)
        fuzzer_id = user.id
        # an A角 must hold the project manager's role (the field's `role:`): the fuzzer holds both
        if all(r.name != "project_manager" for r in user.roles):
            user.roles.append(sm.find_role("project_manager"))
            sm.update_user(user)
    # the fuzzer is the A角 (a starter by that field) of all three
    projects = [make_project(app, fuzzer_id, fee_rate="0.01") for _ in range(3)]
    with app.app_context():
        rt = app.extensions["danbao"]
        engine = WorkflowEngine(rt.session, rt.models, rt.meta)
        for p in projects[:2]:
            engine.start("guarantee_project", p, "project_standard", Actor(pm, "fuzz_pm"))
        # one the fuzzer submitted itself (withdraw reaches a real instance)
        engine.start("guarantee_project", projects[2], "project_standard", Actor(fuzzer_id, fuzzer))
