"""Schemathesis over the generated OpenAPI spec: every operation, logged in
with a JWT, with generated (valid and invalid) payloads. No server error is
allowed: every bad payload must get a 4xx, and every response must match
the spec (status code, content type, body schema)."""
from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from webfixtures import add_user, jwt, make_app
from wfapifixtures import open_fuzz_tasks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_app(module_database_url, tmp_path_factory):
    app = make_app(module_database_url, tmp_path_factory.mktemp("inst"))
    add_user(app, "fuzzer", "risk_officer")
    client = app.test_client()
    # a couple of rows so GET/PUT/DELETE on ids 1..n reach real records
    headers = jwt(client, "fuzzer")
    client.post("/api/v1/bank/", json={"name": "测试银行", "credit_line": "1000.00"}, headers=headers)
    _open_warnings(app)
    open_fuzz_tasks(app)   # approvals: tasks of the fuzzer's own, a project it submitted
    yield app, headers
    with app.app_context():
        app.extensions["danbao"].db.session.remove()
        app.extensions["danbao"].db.engine.dispose()


def _open_warnings(app):
    """Warnings in the fuzzer's inbox (a risk officer), so acknowledging reaches real ones."""
    import datetime as dt
    import random
    from danbao.demo import make_uscc
    from danbao.engines.records import Actor, RecordService
    from danbao.engines.warnings import scan
    with app.app_context():
        rt = app.extensions["danbao"]
        svc = RecordService(rt.models, rt.session, Actor(None, "fuzz"))
        for i in range(3):
            svc.create("corporate_customer", {"name": f"预警企业{i}", "uscc": make_uscc(random.Random(i), "320100"),
                                              "tax_grade": "D"})
        scan(rt.session, rt.models, rt.meta, as_of=dt.date(2026, 11, 1), rules=["corp_tax_grade_low"])


def _operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_survives_generated_payloads(api_app):
    """One hypothesis run per operation (schemathesis' own pytest plugin does not load under pytest 9)."""
    from hypothesis import given
    app, headers = api_app
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = _operations(schema)
    assert len(operations) >= 5 * 3   # 3 top-level entities x 5 operations in the core pack
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(operation.as_strategy(generation_mode=mode))
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case):
                case.call_and_validate(headers=headers, checks=checks)
            run()
