"""An edit based on an older version is saved when nobody changed what it
sends since (a fee settled by finance, coverage recomputed, another field
edited by a colleague), and refused — changing nothing — when saving it
would overwrite somebody's change. Runs on the core pack's project."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danbao.engines.records import Conflict
from wfhelpers import ENTITY


def fresh(world, pid):
    world.s.expire_all()
    return world.records().get(ENTITY, pid)


def form_of(p) -> dict:
    """What the project form posts back: its editable top-level values and child rows as read."""
    return {"name": p.name, "entrustment_contract_no": p.entrustment_contract_no, "loan_purpose": p.loan_purpose,
            "counter_guarantees": [{"id": c.id, "kind": c.kind, "asset_kind": c.asset_kind,
                                    "appraised_value": str(c.appraised_value)} for c in p.counter_guarantees],
            "fee_instalments": [{"id": r.id, "kind": r.kind, "due_on": r.due_on.isoformat(), "amount": str(r.amount),
                                 "paid_amount": str(r.paid_amount) if r.paid_amount else None}
                                for r in p.fee_instalments]}


def with_fee_plan(world) -> int:
    pid = world.project(amount="2000000", fee_instalments=[
        {"kind": "guarantee_fee", "due_on": "2026-12-01", "amount": "20000.00"},
        {"kind": "guarantee_fee", "due_on": "2027-06-01", "amount": "20000.00"}])
    world.s.commit()
    return pid


def settle_first_row(world, pid) -> None:
    """Finance's receipt paying the first instalment: a system write of the fee plan."""
    p = fresh(world, pid)
    rows = [{"id": r.id, "kind": r.kind, "due_on": r.due_on, "amount": r.amount,
             "paid_amount": r.amount if i == 0 else None, "paid_on": dt.date(2026, 12, 1) if i == 0 else None}
            for i, r in enumerate(sorted(p.fee_instalments, key=lambda r: r.due_on))]
    world.records().assign_children(ENTITY, pid, "fee_instalments", rows)
    world.s.commit()


def test_an_edit_saves_over_a_fee_settled_meanwhile(world):
    pid = with_fee_plan(world)
    read = fresh(world, pid)
    form, version = form_of(read), read.version
    settle_first_row(world, pid)                      # finance confirms while the A角 edits
    assert fresh(world, pid).version > version
    form["name"] = "改过的项目名称"
    world.records().update(ENTITY, pid, form, expected_version=version)
    p = fresh(world, pid)
    assert p.name == "改过的项目名称"
    paid = sorted(p.fee_instalments, key=lambda r: r.due_on)
    assert paid[0].paid_amount == Decimal("20000.00") and paid[0].paid_on == dt.date(2026, 12, 1)   # not undone
    assert paid[1].paid_amount is None


def test_the_form_cannot_overwrite_what_the_ledger_paid(world):
    pid = with_fee_plan(world)
    p = fresh(world, pid)
    form = form_of(p)
    form["fee_instalments"][0]["paid_amount"] = "99999.00"        # typed into a read-only column
    world.records().update(ENTITY, pid, form, expected_version=p.version)
    assert all(r.paid_amount is None for r in fresh(world, pid).fee_instalments)


def test_an_edit_saves_over_a_system_field_written_meanwhile(world):
    pid = world.project()
    version = fresh(world, pid).version
    world.set(ENTITY, pid, overdue_since=dt.date(2026, 11, 1), overdue_amount="150000")   # the daily run, say
    world.records().update(ENTITY, pid, {"name": "新名称"}, expected_version=version)
    p = fresh(world, pid)
    assert (p.name, p.overdue_since, p.overdue_amount) == ("新名称", dt.date(2026, 11, 1), Decimal("150000.00"))
    # a form still showing "not overdue" would clear it: refused
    with pytest.raises(Conflict):
        world.records().update(ENTITY, pid, {"name": "又一个名称", "overdue_since": None}, expected_version=version)
    assert fresh(world, pid).overdue_since == dt.date(2026, 11, 1)


def test_two_people_changing_different_fields_both_keep_their_change(world):
    pid = world.project()
    read = fresh(world, pid)
    a_form, version = form_of(read), read.version
    world.records().update(ENTITY, pid, {"loan_purpose": "流动资金周转"}, expected_version=version)
    # the first person's form still shows the old loan purpose: saving it would undo the change
    a_form["name"] = "A 的名称"
    with pytest.raises(Conflict):
        world.records().update(ENTITY, pid, a_form, expected_version=version)
    assert fresh(world, pid).name != "A 的名称"
    # sent without that field (an API client's partial update), it is saved
    world.records().update(ENTITY, pid, {"name": "A 的名称"}, expected_version=version)
    p = fresh(world, pid)
    assert (p.name, p.loan_purpose) == ("A 的名称", "流动资金周转")


def test_the_same_field_changed_by_both_is_refused_unless_equal(world):
    pid = world.project()
    version = fresh(world, pid).version
    world.records().update(ENTITY, pid, {"name": "B 的名称"}, expected_version=version)
    with pytest.raises(Conflict) as info:
        world.records().update(ENTITY, pid, {"name": "A 的名称"}, expected_version=version)
    assert "test" in info.value.message.zh          # names who changed it
    world.records().update(ENTITY, pid, {"name": "B 的名称", "entrustment_contract_no": "WT-1"},
                           expected_version=version)
    assert fresh(world, pid).entrustment_contract_no == "WT-1"


def test_child_rows_changed_added_or_removed_by_others_refuse_a_stale_list(world):
    pid = world.project()
    read = fresh(world, pid)
    form, version = form_of(read), read.version
    row = form["counter_guarantees"][0]
    world.records().update(ENTITY, pid, {"counter_guarantees": [dict(row, appraised_value="123456.00")]},
                           expected_version=version)
    with pytest.raises(Conflict):                 # the stale list would put the old value back
        world.records().update(ENTITY, pid, form, expected_version=version)
    now = fresh(world, pid)
    stale, version = form_of(now), now.version     # read before the row is added
    added = stale["counter_guarantees"] + [{"kind": "credit", "description": "信用反担保"}]
    world.records().update(ENTITY, pid, {"counter_guarantees": added}, expected_version=version)
    with pytest.raises(Conflict):                  # saving it would drop the new row
        world.records().update(ENTITY, pid, stale, expected_version=version)
    assert len(fresh(world, pid).counter_guarantees) == 2


def test_a_stale_form_with_a_deleted_row_is_a_conflict_not_a_field_error(world):
    pid = world.project(counter_guarantees=[{"kind": "mortgage", "asset_kind": "real_estate",
                                             "appraised_value": "9000000"},
                                            {"kind": "credit", "description": "信用"}])
    read = fresh(world, pid)
    form, version = form_of(read), read.version
    keep = [r for r in form["counter_guarantees"] if r["kind"] == "mortgage"]
    world.records().update(ENTITY, pid, {"counter_guarantees": keep}, expected_version=version)
    with pytest.raises(Conflict):
        world.records().update(ENTITY, pid, form, expected_version=version)


def test_versions_the_audit_cannot_account_for_are_a_conflict(world):
    """Rows written before the audit recorded versions (an upgraded database)."""
    pid = world.project()
    version = fresh(world, pid).version
    world.set(ENTITY, pid, overdue_since=dt.date(2026, 11, 1))
    audit = world.models.system["danbao_audit"]
    world.s.execute(sa.update(audit).values(root_version=None))
    world.s.commit()
    with pytest.raises(Conflict):
        world.records().update(ENTITY, pid, {"name": "新名称"}, expected_version=version)


def test_a_version_from_the_future_or_not_a_number_is_a_conflict(world):
    pid = world.project()
    version = fresh(world, pid).version
    for wrong in (version + 5, "abc", True):
        with pytest.raises(Conflict):
            world.records().update(ENTITY, pid, {"name": "x"}, expected_version=wrong)


FIELDS = ("name", "entrustment_contract_no", "loan_purpose", "bank_contract_no")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(theirs=st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(["甲", "乙"]), min_size=1),
       mine=st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(["甲", "乙"]), min_size=1))
def test_a_stale_save_never_loses_a_change(world, theirs, mine):
    """Whatever two people change from the same version: the second save goes
    through exactly when it sends nothing the first changed to something else,
    and afterwards every value is the last one somebody saved."""
    pid = world.project()
    read = fresh(world, pid)
    before, version = {f: getattr(read, f) for f in FIELDS}, read.version
    world.records().update(ENTITY, pid, theirs, expected_version=version)
    after_theirs = {f: theirs.get(f, before[f]) for f in FIELDS}
    clash = any(f in theirs and after_theirs[f] != before[f] and mine[f] != after_theirs[f] for f in mine)
    try:
        world.records().update(ENTITY, pid, mine, expected_version=version)
    except Conflict:
        assert clash
        expected = after_theirs
    else:
        assert not clash
        expected = dict(after_theirs, **mine)
    p = fresh(world, pid)
    assert {f: getattr(p, f) for f in FIELDS} == expected


def test_an_older_database_gets_the_audit_version_column_without_losing_a_row(database_url):
    """The column is added by the planned migration (``add_system_column``);
    audit rows written before keep their values and an empty version."""
    from danbao.model.builder import build_models
    from danbao.model.engine import make_engine
    from danbao.model.migrate import SAFE, apply_migration, ensure_schema, plan_migration
    from metafactory import entity, field, meta

    models = build_models(meta(entity("memo", field("a", "string"))))
    engine = make_engine(database_url)
    try:
        ensure_schema(engine, models)
        audit = models.system["danbao_audit"]
        with engine.begin() as conn:
            conn.execute(audit.insert().values(at=dt.datetime(2026, 1, 1), action="update", entity="memo",
                                               record_id=1, root_entity="memo", root_id=1, field="a",
                                               old_value="x", new_value="y", meta_version="1", root_version=2))
            conn.execute(sa.text("ALTER TABLE danbao_audit DROP COLUMN root_version"))
        plan = plan_migration(engine, models)
        assert [(op.kind, op.table, op.column, op.safety) for op in plan] == [
            ("add_system_column", "danbao_audit", "root_version", SAFE)]
        assert plan.describe("en") == ["[safe] add column danbao_audit.root_version INTEGER to system table"]
        apply_migration(engine, plan)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(audit)).mappings().all()
        assert [(r["field"], r["old_value"], r["new_value"], r["root_version"]) for r in rows] == [("a", "x", "y", None)]
        assert plan_migration(engine, models).is_empty
    finally:
        engine.dispose()


def test_a_fee_row_added_to_a_project_cannot_come_in_paid(world):
    """The fee plan is the system's (paid amounts the ledger's): a person who sends a changed
    plan — a row added as paid — is refused (CT004) and nothing changes; the plan sent back as
    read is no change; a project imported with its plan (seeding) keeps it."""
    from danbao.engines.records import RecordService
    from danbao.engines.refusals import Refusal
    pid = with_fee_plan(world)
    p = fresh(world, pid)
    before = [(r.kind, r.due_on, r.amount, r.paid_amount) for r in p.fee_instalments]
    person = RecordService(world.models, world.s, world.actor("pm"), clock=world.clock)
    rows = form_of(p)["fee_instalments"] + [{"kind": "review_fee", "due_on": "2026-12-10", "amount": "5000.00",
                                             "paid_amount": "5000.00", "paid_on": "2026-12-10"}]
    with pytest.raises(Refusal) as refused:
        person.update(ENTITY, pid, {"fee_instalments": rows}, expected_version=p.version)
    assert refused.value.code == "CT004" and refused.value.field == "fee_instalments" and refused.value.status == 409
    world.s.rollback()
    p = fresh(world, pid)
    assert [(r.kind, r.due_on, r.amount, r.paid_amount) for r in p.fee_instalments] == before
    person.update(ENTITY, pid, {"name": "改名", "fee_instalments": form_of(p)["fee_instalments"]},
                  expected_version=p.version)
    p = fresh(world, pid)
    assert p.name == "改名" and [(r.kind, r.due_on, r.amount, r.paid_amount) for r in p.fee_instalments] == before
    imported = world.project(amount="1000000", fee_instalments=[
        {"kind": "guarantee_fee", "due_on": "2025-12-01", "amount": "10000.00", "paid_amount": "10000.00",
         "paid_on": "2025-12-01"}])
    assert [r.paid_amount for r in fresh(world, imported).fee_instalments] == [Decimal("10000.00")]
