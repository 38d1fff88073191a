"""The approval engine (engines/workflow.py) without a web server, on SQLite
and on PostgreSQL (``database_url``): routes of the core pack, every action,
every multi-approver mode, committee rules at their thresholds, time limits
on a moved clock, version pinning, the self-approval and ownership rules, a
stateful property test over random actions, and (PostgreSQL) people acting
at the same moment."""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy.orm import Session

from conftest import is_postgres
from danbao.engines.records import Conflict, NotFound
from danbao.engines.workflow import Refused, meeting_result, share
from danbao.model.engine import make_engine
from danbao.meta.model import Assignees, CommitteeMeta
from wfhelpers import CORE, ENTITY, PEOPLE, WfWorld, core_build

STANDARD = "project_standard"
LABEL = "{zh: 甲, en: A}"


# -- packs written for these tests ----------------------------------------------------
MODES_PACK = f"""roles:
  - {{name: reviewer, label: {{zh: 评审员, en: Reviewer}}}}
  - {{name: trio, label: {{zh: 三人组, en: Trio}}}}
workflows:
  - code: modes
    group: modes
    label: {{zh: 会签方式, en: Modes}}
    entity: guarantee_project
    version: "t1"
    start: s_any
    reject_to: refused
    withdraw_to: withdrawn
    steps:
      - {{key: s_any, label: {LABEL}, assignees: {{roles: [reviewer]}}, next: [{{to: s_all}}]}}
      - {{key: s_all, label: {LABEL}, assignees: {{roles: [reviewer]}}, mode: all, next: [{{to: s_ratio}}]}}
      - {{key: s_ratio, label: {LABEL}, assignees: {{roles: [reviewer]}}, mode: ratio, ratio: 0.75,
         next: [{{to: s_third}}]}}
      - {{key: s_third, label: {LABEL}, assignees: {{roles: [trio]}}, mode: ratio, ratio: 0.6667,
         next: [{{to: s_seq}}]}}
      - {{key: s_seq, label: {LABEL}, assignees: {{roles: [reviewer]}}, mode: sequence, next: [{{to: done}}]}}
      - {{key: done, label: {LABEL}, kind: end, outcome: approved}}
      - {{key: refused, label: {LABEL}, kind: end, outcome: rejected}}
      - {{key: withdrawn, label: {LABEL}, kind: end, outcome: withdrawn}}
  - code: timers
    group: timers
    label: {{zh: 超时, en: Timers}}
    entity: guarantee_project
    version: "t1"
    start: t_ok
    reject_to: refused
    steps:
      - {{key: t_ok, label: {LABEL}, assignees: {{roles: [reviewer]}}, time_limit_hours: 2, on_timeout: approve,
         next: [{{to: t_no}}]}}
      - {{key: t_no, label: {LABEL}, assignees: {{roles: [reviewer]}}, time_limit_hours: 2, on_timeout: reject,
         next: [{{to: done}}]}}
      - {{key: done, label: {LABEL}, kind: end, outcome: approved}}
      - {{key: refused, label: {LABEL}, kind: end, outcome: rejected}}
"""

#: a later pack may change any key of a workflow: here project_standard loses
#: every step between the first review and the end
V2_PACK = """workflows:
  - code: project_standard
    version: "2027.1"
    steps:
      - {key: first_review, label: {zh: 初审, en: First review}, assignees: {roles: [risk_officer]},
         next: [{to: in_force}]}
      - {key: in_force, label: {zh: 在保, en: In force}, kind: end, outcome: approved, set: {status: guaranteeing}}
      - {key: rejected, label: {zh: 否决, en: Rejected}, kind: end, outcome: rejected, set: {status: rejected}}
      - {key: withdrawn, label: {zh: 撤回, en: Withdrawn}, kind: end, outcome: withdrawn, set: {status: applying}}
"""

MODE_PEOPLE = {**PEOPLE, "r1": ["reviewer"], "r2": ["reviewer"], "r3": ["reviewer"], "r4": ["reviewer"],
               "t1": ["trio"], "t2": ["trio"], "t3": ["trio"]}


def write_pack(folder: Path, name: str, content: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pack.yaml").write_text(f'name: {name}\nversion: "1"\nlabel: {{zh: 测试, en: Test}}\nrequires: [core]\n',
                                      encoding="utf-8")
    (folder / "workflows.yaml").write_text(content, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def modes_pack(tmp_path_factory):
    return write_pack(tmp_path_factory.mktemp("packs") / "wf_modes", "wf_modes", MODES_PACK)


@pytest.fixture(scope="session")
def v2_pack(tmp_path_factory):
    return write_pack(tmp_path_factory.mktemp("packs") / "wf_v2", "wf_v2", V2_PACK)


@pytest.fixture
def world(database_url):
    w = WfWorld(database_url)
    yield w
    w.close()


@pytest.fixture
def mworld(database_url, modes_pack):
    w = WfWorld(database_url, packs=(CORE, modes_pack), people=MODE_PEOPLE)
    yield w
    w.close()


# -- helpers ----------------------------------------------------------------------------
def approve(w: WfWorld, iid: int, *names: str):
    out = None
    for name in names:
        out = w.wf().act(w.task(name, iid), "approve", w.actor(name))
    return out


def vote(w: WfWorld, iid: int, **votes: str):
    out = None
    for name, v in votes.items():
        out = w.wf().vote(w.task(name, iid), v, w.actor(name), comment=f"{name}: {v}")
    return out


def at_committee(w: WfWorld, amount="5000000") -> tuple[int, int]:
    p = w.project(amount)
    iid = w.start(p)
    approve(w, iid, "risk", "gm")                   # 初审, 复审 (gm: boss stays free to chair)
    assert w.instance(iid).step == "committee"
    return p, iid


def snapshot(w: WfWorld, iid: int):
    """Everything an action could change about an instance and its record."""
    ti, tt, ta, tv = w.tables
    inst = w.instance(iid)
    table = w.models.table(ENTITY)
    rows = [tuple(inst), tuple(w.s.execute(sa.select(table).where(table.c.id == inst.record_id)).one())]
    for t in (tt, ta, tv):
        rows.append([tuple(r) for r in w.s.execute(sa.select(t).where(t.c.instance_id == iid).order_by(t.c.id))])
    return rows


def refused(fn, *args, **kw) -> str:
    with pytest.raises(Refused) as exc:
        fn(*args, **kw)
    assert exc.value.message.zh and exc.value.message.en
    return exc.value.message.en


# -- which workflow, and the routes of the core pack ---------------------------------------
def test_green_channel_is_chosen_for_small_well_rated_companies(world):
    wf = world.wf()
    good = world.customer(grade="AA")
    assert [w.code for w in wf.candidates(ENTITY, world.project("800000", customer=good))] == ["project_green"]
    assert [w.code for w in wf.candidates(ENTITY, world.project("1000000", customer=good))] == ["project_green"]
    assert [w.code for w in wf.candidates(ENTITY, world.project("1000000.01", customer=good))] == [STANDARD]
    weak = world.customer(grade="B")
    assert [w.code for w in wf.candidates(ENTITY, world.project("800000", customer=weak))] == [STANDARD]
    unrated = world.customer()
    assert [w.code for w in wf.candidates(ENTITY, world.project("800000", customer=unrated))] == [STANDARD]


def test_green_channel_route(world):
    p = world.project("500000", customer=world.customer(grade="AAA"), fee_rate="0.015")
    iid = world.start(p, "project_green")
    assert world.instance(iid).workflow == "project_green"
    assert world.value(ENTITY, p, "status") == "reviewing"          # on_start
    approve(world, iid, "risk")
    assert world.instance(iid).step == "fee_collection"
    approve(world, iid, "fin", "pm")
    world.set(ENTITY, p, start_date=dt.date(2026, 11, 25))
    out = approve(world, iid, "fin")
    assert (out.step_after, out.state) == ("in_force", "approved")
    assert [a[1] for a in world.log(iid)] == ["first_review", "first_review", "fee_collection",
                                              "contract_signing", "loan_confirmation"]
    assert world.value(ENTITY, p, "status") == "guaranteeing"


def test_start_refusals(world):
    p = world.project()
    wf = world.wf()
    assert "may not start" in refused(wf.start, ENTITY, p, STANDARD, world.actor("risk"))
    assert "cannot start now" in refused(wf.start, ENTITY, p, "project_green", world.actor("pm2"))
    assert "cannot start now" in refused(wf.start, ENTITY, p, "no_such_workflow", world.actor("pm2"))
    with pytest.raises(NotFound):
        wf.start(ENTITY, 999_999, STANDARD, world.actor("pm2"))
    # the A角 named on the record may start even without the project_manager role
    world.set_roles("pm", [])
    assert wf.may_start(world.meta.workflows[STANDARD], p, world.uid["pm"])
    iid = world.start(p)
    assert wf.candidates(ENTITY, p) == []                          # its group is running
    assert "cannot start now" in refused(wf.start, ENTITY, p, STANDARD, world.actor("pm2"))
    assert [i.id for i in wf.instance_of(ENTITY, p)] == [iid]


def test_standard_route_with_committee_ends_in_force(world):
    p = world.project("3000000")                                   # exactly the committee threshold
    wf = world.wf()
    iid = world.start(p, comment="请审批")
    inst = world.instance(iid)
    assert (inst.state, inst.step, inst.round, inst.workflow_version) == ("running", "first_review", 0, "2026.1")
    assert world.tasks(iid) == {"risk": "open"}
    assert wf.path_ahead(inst) == ["second_review", "committee", "fee_collection", "contract_signing",
                                   "loan_confirmation", "in_force"]
    out = approve(world, iid, "risk")
    assert (out.step_before, out.step_after, out.state) == ("first_review", "second_review", "running")
    assert world.tasks(iid) == {"boss": "open", "gm": "open"}        # not the 初审 risk officer; mode any
    assert approve(world, iid, "gm").step_after == "committee"
    assert world.tasks(iid) == {n: "open" for n in ("boss", "c1", "c2", "c3", "c4")}   # not gm: 复审
    vote(world, iid, c1="agree", c2="agree", c3="agree", c4="agree")
    assert vote(world, iid, boss="agree").step_after == "fee_collection"
    assert world.value(ENTITY, p, "status") == "approved"           # set: on entering fee collection
    world.set(ENTITY, p, fee_rate="0.02")
    approve(world, iid, "fin")
    assert world.tasks(iid) == {"pm": "open"}                       # the A角 signs
    approve(world, iid, "pm")
    world.set(ENTITY, p, start_date=dt.date(2026, 11, 20))
    out = approve(world, iid, "fin")
    assert (out.step_after, out.state) == ("in_force", "approved")
    inst = world.instance(iid)
    assert (inst.state, inst.step) == ("approved", "in_force") and inst.finished_at is not None
    assert world.tasks(iid) == {}
    assert world.value(ENTITY, p, "status") == "guaranteeing"
    assert world.log(iid) == [
        ("start", "first_review", "pm2", None), ("approve", "first_review", "risk", None),
        ("approve", "second_review", "gm", None),
        ("vote", "committee", "c1", "agree"), ("vote", "committee", "c2", "agree"),
        ("vote", "committee", "c3", "agree"), ("vote", "committee", "c4", "agree"),
        ("vote", "committee", "boss", "agree"), ("meeting_passed", "committee", "system", None),
        ("approve", "fee_collection", "fin", None), ("approve", "contract_signing", "pm", None),
        ("approve", "loan_confirmation", "fin", None)]
    assert {a.workflow_version for a in wf.timeline(iid)} == {"2026.1"}
    assert [d.action for d in wf.done_by(world.uid["risk"])] == ["approve"]
    assert wf.open_tasks(world.uid["fin"]) == []


@pytest.mark.parametrize("amount, route", [("2999999.99", "sign_off"), ("3000000", "committee"),
                                           ("100000", "sign_off")])
def test_amount_routes_to_committee_or_sign_off(world, amount, route):
    p = world.project(amount)
    iid = world.start(p)
    approve(world, iid, "risk", "gm")
    assert world.instance(iid).step == route
    if route == "sign_off":
        assert world.tasks(iid) == {"boss": "open"}                 # not gm, who did 复审
        assert approve(world, iid, "boss").step_after == "fee_collection"


def test_requires_refuses_with_the_metadata_message_and_changes_nothing(world):
    p = world.project("1000000", start_date=None)
    iid = world.start(p)
    approve(world, iid, "risk", "gm", "boss")
    assert world.instance(iid).step == "fee_collection"
    before = snapshot(world, iid)
    with pytest.raises(Refused) as exc:
        approve(world, iid, "fin")
    assert (exc.value.message.zh, exc.value.message.en) == ("申请未录入担保费率或起始日（请退回申请人补充）",
                                                               "The application has no fee rate or start date: return it to the applicant")
    assert snapshot(world, iid) == before
    world.set(ENTITY, p, fee_rate="0.018", start_date=dt.date(2026, 11, 30))
    approve(world, iid, "fin", "pm")
    world.set(ENTITY, p, start_date=None)
    with pytest.raises(Refused) as exc:
        approve(world, iid, "fin")
    assert exc.value.message.zh == "请录入放款（起始）日"


# -- the actions ----------------------------------------------------------------------------
def test_approve_in_mode_any_closes_the_other_tasks(world):
    world.add_user("risk2", ["risk_officer"])
    iid = world.start(world.project())
    assert world.tasks(iid) == {"risk": "open", "risk2": "open"}
    first = world.instance(iid).round
    approve(world, iid, "risk2")
    assert world.instance(iid).step == "second_review"
    assert {world.name_of(t.user_id): t.status for t in world.wf().tasks_of(iid, first)} == \
        {"risk": "closed", "risk2": "approved"}


def test_reject_needs_a_comment_and_ends_the_workflow(world):
    p = world.project()
    iid = world.start(p)
    approve(world, iid, "risk")
    task = world.task("boss", iid)
    before = snapshot(world, iid)
    assert "comment is required" in refused(world.wf().act, task, "reject", world.actor("boss"))
    assert "comment is required" in refused(world.wf().act, task, "reject", world.actor("boss"), comment="  ")
    assert snapshot(world, iid) == before
    out = world.wf().act(task, "reject", world.actor("boss"), comment="担保物不足")
    assert (out.step_after, out.state) == ("rejected", "rejected")
    inst = world.instance(iid)
    assert (inst.state, inst.step) == ("rejected", "rejected")
    assert world.tasks(iid, current=False) == {}                   # the other reviewer's task closed too
    assert world.log(iid)[-1] == ("reject", "second_review", "boss", "rejected")
    assert world.wf().timeline(iid)[-1].comment == "担保物不足"
    assert world.value(ENTITY, p, "status") == "rejected"
    assert world.wf().candidates(ENTITY, p) == []                  # status is no longer applying


def test_return_to_a_step_already_passed(world):
    iid = world.start(world.project())
    approve(world, iid, "risk")
    task = world.task("boss", iid)
    assert "comment is required" in refused(world.wf().act, task, "return", world.actor("boss"),
                                            target_step="first_review")
    before = snapshot(world, iid)
    for target in ("committee", "sign_off", "second_review", "in_force", "no_such_step", None):
        msg = refused(world.wf().act, task, "return", world.actor("boss"), comment="补充材料", target_step=target)
        assert "only return to a step already passed (the applicant, First review)" in msg
    assert snapshot(world, iid) == before
    round_before = world.instance(iid).round
    out = world.wf().act(task, "return", world.actor("boss"), comment="补充材料", target_step="first_review")
    assert (out.step_after, out.state) == ("first_review", "running")
    inst = world.instance(iid)
    assert inst.step == "first_review" and inst.round == round_before + 1
    assert world.tasks(iid) == {"risk": "open"}
    assert world.log(iid)[-1] == ("return", "second_review", "boss", "first_review")
    assert world.wf().timeline(iid)[-1].comment == "补充材料"


def test_return_cannot_jump_forward_to_a_step_a_return_left_behind(world):
    _, iid = at_committee(world)
    world.wf().act(world.task("c1", iid), "return", world.actor("c1"), comment="重新初审", target_step="first_review")
    task = world.task("risk", iid)
    # committee and second_review were passed before the return, not on the way to first_review now
    for target in ("committee", "second_review"):
        assert "already passed (the applicant)" in refused(world.wf().act, task, "return", world.actor("risk"),
                                                           comment="x", target_step=target)
    approve(world, iid, "risk")
    assert "already passed (the applicant, First review)" in refused(world.wf().act, world.task("boss", iid), "return",
                                                      world.actor("boss"), comment="x", target_step="committee")


def test_withdraw_before_anyone_acted(world):
    p = world.project()
    iid = world.start(p)
    world.wf().act(world.task("risk", iid), "comment", world.actor("risk"), comment="看过了")   # not acting
    assert "Only the applicant" in refused(world.wf().withdraw, iid, world.actor("pm"))
    out = world.wf().withdraw(iid, world.actor("pm2"), comment="资料有误")
    assert (out.step_after, out.state) == ("withdrawn", "withdrawn")
    inst = world.instance(iid)
    assert (inst.state, inst.step) == ("withdrawn", "withdrawn")
    assert world.tasks(iid, current=False) == {}
    assert world.actions(iid) == ["start", "comment", "withdraw"]
    assert world.value(ENTITY, p, "status") == "applying"
    assert "finished" in refused(world.wf().withdraw, iid, world.actor("pm2"))
    # the record can be submitted again: a new instance
    assert [w.code for w in world.wf().candidates(ENTITY, p)] == [STANDARD]
    again = world.start(p)
    assert again != iid and world.instance(again).state == "running"


def test_withdraw_refused_once_someone_acted(world):
    iid = world.start(world.project())
    approve(world, iid, "risk")
    before = snapshot(world, iid)
    assert "already acted" in refused(world.wf().withdraw, iid, world.actor("pm2"))
    assert snapshot(world, iid) == before


def test_delegate_to_a_named_colleague(world):
    iid = world.start(world.project())
    task = world.task("risk", iid)
    wf = world.wf()
    assert "another colleague" in refused(wf.act, task, "delegate", world.actor("risk"), user_id=world.uid["risk"])
    assert "another colleague" in refused(wf.act, task, "delegate", world.actor("risk"), user_id=None)
    assert "applicant" in refused(wf.act, task, "delegate", world.actor("risk"), user_id=world.uid["pm2"])
    world.add_user("gone", ["risk_officer"], active=False)
    assert "No such active user" in refused(wf.act, task, "delegate", world.actor("risk"), user_id=world.uid["gone"])
    assert "No such active user" in refused(wf.act, task, "delegate", world.actor("risk"), user_id=424242)
    out = wf.act(task, "delegate", world.actor("risk"), user_id=world.uid["clerk"], comment="出差，请代审")
    assert (out.step_after, out.state) == ("first_review", "running")
    assert world.tasks(iid, status=None) == {"risk": "delegated", "clerk": "open"}
    assert world.log(iid)[-1] == ("delegate", "first_review", "risk", str(world.uid["clerk"]))
    assert "done" in refused(wf.act, task, "approve", world.actor("risk"))
    assert "already acted" in refused(world.wf().withdraw, iid, world.actor("pm2"))      # a delegation is acting
    assert approve(world, iid, "clerk").step_after == "second_review"
    # at second_review the risk officer is already asked: not a delegate for the manager
    assert "already asked" in refused(wf.act, world.task("boss", iid), "delegate", world.actor("boss"),
                                      user_id=world.uid["risk"])


def test_delegation_ends_at_until_and_the_task_goes_back(world):
    iid = world.start(world.project())
    until = world.clock() + dt.timedelta(hours=2)
    world.wf().act(world.task("risk", iid), "delegate", world.actor("risk"), user_id=world.uid["clerk"], until=until)
    clerk_task = world.task("clerk", iid)
    world.clock.advance(hours=1)
    assert world.wf().process_timeouts() == 0
    world.clock.advance(hours=2)
    assert world.wf().process_timeouts() == 1
    assert world.tasks(iid, status=None) == {"risk": "open", "clerk": "closed"}
    assert world.log(iid)[-1] == ("delegation_ended", "first_review", "system", None)
    assert "done" in refused(world.wf().act, clerk_task, "approve", world.actor("clerk"))
    assert world.wf().process_timeouts() == 0
    assert approve(world, iid, "risk").step_after == "second_review"


def test_a_delegation_passed_on_comes_back_in_order(world):
    iid = world.start(world.project())
    now = world.clock()
    world.wf().act(world.task("risk", iid), "delegate", world.actor("risk"), user_id=world.uid["clerk"],
                   until=now + dt.timedelta(hours=10))
    world.wf().act(world.task("clerk", iid), "delegate", world.actor("clerk"), user_id=world.uid["fin"],
                   until=now + dt.timedelta(hours=2))
    world.clock.advance(hours=3)
    assert world.wf().process_timeouts() == 1
    assert world.holders(iid) == {"clerk"}                          # back to clerk, still on risk's behalf
    back = [t for t in world.wf().tasks_of(iid) if t.status == "open"][0]
    assert (back.delegated_from_id, back.delegated_until) == (world.uid["risk"], now + dt.timedelta(hours=10))
    world.clock.advance(hours=8)
    assert world.wf().process_timeouts() == 1
    assert world.holders(iid) == {"risk"}
    assert world.actions(iid).count("delegation_ended") == 2


def test_a_delegation_ending_does_not_ask_the_delegator_twice(world):
    iid = world.start(world.project())
    world.wf().act(world.task("risk", iid), "delegate", world.actor("risk"), user_id=world.uid["clerk"],
                   until=world.clock() + dt.timedelta(hours=2))
    world.wf().act(world.task("clerk", iid), "add_approver", world.actor("clerk"), user_id=world.uid["risk"])
    world.clock.advance(hours=3)
    assert world.wf().process_timeouts() == 1
    assert world.tasks(iid) == {"risk": "open"}
    assert len([t for t in world.wf().tasks_of(iid) if t.status == "open"]) == 1


def test_a_delegated_task_keeps_the_time_limit(world):
    iid = world.start(world.project())
    world.wf().act(world.task("risk", iid), "delegate", world.actor("risk"), user_id=world.uid["clerk"])
    world.clock.advance(hours=49)
    assert world.wf().process_timeouts() == 1
    assert world.tasks(iid) == {"clerk": "open", "boss": "open", "gm": "open"}   # escalated to the managers
    assert world.actions(iid)[-1] == "escalate"


def test_add_approver(world):
    iid = world.start(world.project())
    wf = world.wf()
    assert "applicant" in refused(wf.act, world.task("risk", iid), "add_approver", world.actor("risk"),
                                  user_id=world.uid["pm2"])
    approve(world, iid, "risk")
    # mode any at 复审: the added colleague is one more who may approve
    wf.act(world.task("boss", iid), "add_approver", world.actor("boss"), user_id=world.uid["clerk"], comment="请法务看")
    assert world.tasks(iid) == {"boss": "open", "gm": "open", "clerk": "open"}
    assert world.log(iid)[-1] == ("add_approver", "second_review", "boss", str(world.uid["clerk"]))
    assert "already asked" in refused(wf.act, world.task("gm", iid), "add_approver", world.actor("gm"),
                                      user_id=world.uid["clerk"])
    # the 初审 risk officer cannot be added back: separation of duties
    assert "signed an earlier level" in refused(wf.act, world.task("gm", iid), "add_approver", world.actor("gm"),
                                                user_id=world.uid["risk"])
    assert approve(world, iid, "clerk").step_after == "committee"
    added = [t for t in wf.tasks_of(iid) if t.user_id == world.uid["clerk"]][0]
    assert added.added_by_id == world.uid["boss"]


def test_comment_is_logged_and_changes_nothing_else(world):
    iid = world.start(world.project())
    task = world.task("risk", iid)
    assert "comment is required" in refused(world.wf().act, task, "comment", world.actor("risk"))
    before = snapshot(world, iid)
    out = world.wf().act(task, "comment", world.actor("risk"), comment="请补充财报")
    assert (out.step_before, out.step_after, out.state) == ("first_review", "first_review", "running")
    after = snapshot(world, iid)
    instance, record, tasks, log, votes_ = after
    assert (instance, record, tasks, votes_) == (before[0], before[1], before[2], before[4])
    assert log[:-1] == before[3] and world.log(iid)[-1] == ("comment", "first_review", "risk", None)
    assert world.wf().timeline(iid)[-1].comment == "请补充财报"
    assert "unknown action" in refused(world.wf().act, task, "approve_all", world.actor("risk"))


# -- who may act --------------------------------------------------------------------------
def test_only_the_current_open_task_of_the_acting_user(world):
    iid = world.start(world.project())
    wf = world.wf()
    task = world.task("risk", iid)
    before = snapshot(world, iid)
    assert "not yours" in refused(wf.act, task, "approve", world.actor("boss"))
    assert "not yours" in refused(wf.act, task, "comment", world.actor("clerk"), comment="x")
    assert snapshot(world, iid) == before
    for bad in (999_999, 0, -1, "1", None, 2**40):
        with pytest.raises(NotFound):
            wf.act(bad, "approve", world.actor("risk"))
    approve(world, iid, "risk")
    # the first review's task belongs to a step the workflow has left
    assert "moved on" in refused(wf.act, task, "approve", world.actor("risk"))
    assert "moved on" in refused(wf.act, task, "comment", world.actor("risk"), comment="x")


def test_the_applicant_gets_no_task_even_holding_the_reviewing_role(world):
    world.set_roles("pm2", ["project_manager", "risk_officer", "manager"])
    iid = world.start(world.project())
    assert world.tasks(iid) == {"risk": "open"}
    approve(world, iid, "risk")
    assert world.tasks(iid) == {"boss": "open", "gm": "open"}
    assert world.wf().open_tasks(world.uid["pm2"]) == []
    # and with nobody else in the role, the start is refused: nobody could review
    world.drop_role("risk_officer")
    world.set_roles("pm2", ["project_manager", "risk_officer"])
    p = world.project()
    assert "Nobody can act at step 'First review'" in refused(world.start, p)
    assert world.wf().instance_of(ENTITY, p) == []
    assert world.value(ENTITY, p, "status") == "applying"


def test_a_step_whose_role_has_no_users_refuses_and_changes_nothing(world):
    p = world.project("1000000")
    iid = world.start(p)
    approve(world, iid, "risk", "gm")
    assert world.instance(iid).step == "sign_off"
    world.drop_role("finance")
    before = snapshot(world, iid)
    with pytest.raises(Refused) as exc:
        approve(world, iid, "boss")
    assert exc.value.message.zh == "环节“费用收取”没有可以处理的人员，请先为相应角色分配用户"
    assert exc.value.message.en == "Nobody can act at step 'Fee collection': give its role to a user first"
    assert snapshot(world, iid) == before
    assert world.value(ENTITY, p, "status") == "reviewing"
    world.set_roles("fin", ["finance"])
    assert approve(world, iid, "boss").step_after == "fee_collection"


# -- multi-approver modes ---------------------------------------------------------------------
def test_modes_any_all_ratio_and_sequence(mworld):
    w = mworld
    iid = w.start(w.project(), "modes")
    reviewers = {"r1", "r2", "r3", "r4"}
    # any: one approval moves on
    assert set(w.tasks(iid)) == reviewers
    assert approve(w, iid, "r3").step_after == "s_all"
    # all: every one of them
    for name in ("r1", "r2", "r3"):
        assert approve(w, iid, name).step_after == "s_all"
    assert approve(w, iid, "r4").step_after == "s_ratio"
    # ratio 0.75 of 4: two is not enough, three is exactly enough
    approve(w, iid, "r1", "r2")
    assert w.instance(iid).step == "s_ratio"
    assert approve(w, iid, "r4").step_after == "s_third"
    assert w.tasks(iid, current=False, status=None)["r3"] in ("closed", "approved")
    # ratio 0.6667 of 3: two of three (0.666…) is two thirds
    assert approve(w, iid, "t2").step_after == "s_third"
    assert approve(w, iid, "t1").step_after == "s_seq"
    # sequence: in order of position, the later ones wait
    order = sorted(reviewers, key=w.uid.get)
    assert w.tasks(iid) == {order[0]: "open", **{n: "waiting" for n in order[1:]}}
    later = [t.id for t in w.wf().tasks_of(iid, w.instance(iid).round) if t.user_id == w.uid[order[1]]][0]
    assert w.wf().open_tasks(w.uid[order[1]]) == []
    assert "done" in refused(w.wf().act, later, "approve", w.actor(order[1]))
    for i, name in enumerate(order[:-1]):
        assert approve(w, iid, name).step_after == "s_seq"
        assert w.tasks(iid)[order[i + 1]] == "open"
        assert all(w.tasks(iid)[n] == "waiting" for n in order[i + 2:])
    out = approve(w, iid, order[-1])
    assert (out.step_after, out.state) == ("done", "approved")


def test_sequence_add_approver_waits_at_the_end(mworld):
    w = mworld
    iid = w.start(w.project(), "modes")
    approve(w, iid, "r1", "r1", "r2", "r3", "r4", "r1", "r2", "r3", "t1", "t2")
    assert w.instance(iid).step == "s_seq"
    w.wf().act(w.task("r1", iid), "add_approver", w.actor("r1"), user_id=w.uid["clerk"])
    assert w.tasks(iid)["clerk"] == "waiting"
    approve(w, iid, "r1", "r2", "r3", "r4")
    assert w.tasks(iid) == {"clerk": "open"}
    assert approve(w, iid, "clerk").state == "approved"


def test_on_timeout_approve_then_reject(mworld):
    w = mworld
    iid = w.start(w.project(), "timers")
    # without withdraw_to there is no end to withdraw to: refused, so a finished instance always rests on an end
    before = snapshot(w, iid)
    assert "cannot be withdrawn" in refused(w.wf().withdraw, iid, w.actor("pm2"))
    assert snapshot(w, iid) == before
    w.clock.advance(hours=1)
    assert w.wf().process_timeouts() == 0
    w.clock.advance(hours=2)
    assert w.wf().process_timeouts() == 1                       # four tasks overdue, one decision
    assert w.instance(iid).step == "t_no"
    assert w.log(iid)[-1] == ("auto_approve", "t_ok", "system", None)
    w.clock.advance(hours=3)
    assert w.wf().process_timeouts() == 1
    inst = w.instance(iid)
    assert (inst.state, inst.step) == ("rejected", "refused")
    assert w.actions(iid) == ["start", "auto_approve", "auto_reject"]
    assert w.wf().process_timeouts() == 0


# -- committee ----------------------------------------------------------------------------
RULE = CommitteeMeta(pass_share=Decimal("0.8"), quorum=Decimal("0.8"), chairman=Assignees(("manager",)), veto=True)
TWO_THIRDS = CommitteeMeta(pass_share=Decimal("0.6667"), quorum=Decimal("0.5"))


def votes(agree=0, disagree=0, defer=0, chair=None):
    out = [("agree", False)] * agree + [("disagree", False)] * disagree + [("defer", False)] * defer
    return out + ([(chair, True)] if chair else [])


@pytest.mark.parametrize("rule, invited, cast, expected", [
    (RULE, 5, votes(4, 1), "passed"),                  # 4/5 = 0.8: exactly the pass share
    (RULE, 5, votes(3, 1, chair="agree"), "passed"),
    (RULE, 5, votes(3, 2), "rejected"),                # 0.6
    (RULE, 5, votes(3, 1), "rejected"),                # quorum 4/5 exactly; 3/4 = 0.75 < 0.8
    (RULE, 4, votes(3, 1), "rejected"),
    (RULE, 5, votes(3), "no_quorum"),                  # 3/5 = 0.6 < 0.8
    (RULE, 5, votes(4), "passed"),                     # quorum exactly, all agree
    (RULE, 5, votes(4, chair="disagree"), "vetoed"),
    (RULE, 0, [], "no_quorum"),
    (RULE, 5, votes(2, 0, 3), "deferred"),             # 2/5 agree; defer 3/5 ≥ 0.5
    (RULE, 5, votes(3, 0, 2), "rejected"),             # 3/5 agree; defer 2/5 < 0.5
    (TWO_THIRDS, 3, votes(2, 1), "passed"),            # 2/3 = 0.666… is two thirds (0.6667)
    (TWO_THIRDS, 6, votes(4, 2), "passed"),
    (TWO_THIRDS, 9, votes(6, 3), "passed"),
    (TWO_THIRDS, 5, votes(3, 2), "rejected"),          # 0.6
    (TWO_THIRDS, 8, votes(5, 3), "rejected"),          # 0.625
    (TWO_THIRDS, 12, votes(7, 4), "rejected"),         # 7/11 = 0.636
    (TWO_THIRDS, 6, votes(2, 1), "passed"),            # 3 of 6 voting is a quorum (0.5)
    (TWO_THIRDS, 7, votes(2, 1), "no_quorum"),         # 3/7 < 0.5
])
def test_meeting_result_thresholds(rule, invited, cast, expected):
    assert meeting_result(rule, invited, cast) == expected


def test_defer_counts_present_or_not():
    rule = CommitteeMeta(pass_share=Decimal("0.8"), defer_counts_present=False, defer_share=Decimal("0.5"))
    assert meeting_result(rule, 5, votes(4, 0, 1)) == "passed"          # 4 of the 4 present
    assert meeting_result(RULE, 5, votes(4, 0, 1)) == "passed"          # 4/5 with defer present
    assert meeting_result(dataclasses.replace(RULE, defer_share=Decimal("0.4")), 5, votes(3, 0, 2)) == "deferred"


def test_shares_are_compared_at_four_places():
    assert share(2, 3) == Decimal("0.6667") and share(1, 3) == Decimal("0.3333")
    assert share(4, 5) == Decimal("0.8000") and share(3, 4) == Decimal("0.75")
    # no share of fewer than 100 people sits within half a unit below a 4-place threshold
    fractions = {Decimal(p) / Decimal(q) for q in range(1, 100) for p in range(q + 1)}
    for threshold in (Decimal("0.5"), Decimal("0.6"), Decimal("0.75"), Decimal("0.8"), Decimal("0.9")):
        assert not [f for f in fractions if f < threshold <= f.quantize(Decimal("0.0001"), rounding="ROUND_HALF_UP")]


def test_committee_passes_at_exactly_four_of_five(world):
    _, iid = at_committee(world)
    vote(world, iid, c1="agree", c2="disagree", c3="agree", c4="agree")
    out = vote(world, iid, boss="agree")
    assert out.step_after == "fee_collection"
    assert world.log(iid)[-1] == ("meeting_passed", "committee", "system", None)
    assert world.wf().timeline(iid)[-1].comment == "invited 5, votes 5"


def test_committee_rejects_below_the_pass_share(world):
    p, iid = at_committee(world)
    vote(world, iid, c1="agree", c2="disagree", c3="agree", c4="disagree")
    out = vote(world, iid, boss="agree")                            # 3/5 = 0.6
    assert (out.step_after, out.state) == ("rejected", "rejected")
    assert world.actions(iid)[-1] == "meeting_rejected"
    assert world.value(ENTITY, p, "status") == "rejected"


def test_chairman_veto(world):
    _, iid = at_committee(world)
    vote(world, iid, c1="agree", c2="agree", c3="agree", c4="agree")
    out = vote(world, iid, boss="disagree")
    assert (out.step_after, out.state) == ("rejected", "rejected")
    assert world.actions(iid)[-1] == "meeting_vetoed"
    v = [r for r in world.wf().meeting_votes(iid) if r.username == "boss"][0]
    assert v.chairman and v.vote == "disagree"


def test_defer_starts_a_new_meeting_at_the_same_step(world):
    _, iid = at_committee(world)
    first = world.instance(iid).round
    vote(world, iid, c1="defer", c2="defer", c3="defer", c4="agree")
    out = vote(world, iid, boss="agree")
    assert (out.step_after, out.state) == ("committee", "running")
    inst = world.instance(iid)
    assert inst.step == "committee" and inst.round == first + 1
    assert world.tasks(iid) == {n: "open" for n in ("boss", "c1", "c2", "c3", "c4")}
    assert world.actions(iid)[-1] == "meeting_deferred"
    vote(world, iid, c1="agree", c2="agree", c3="agree", c4="agree")
    assert vote(world, iid, boss="agree").step_after == "fee_collection"
    rounds = [r.round for r in world.wf().meeting_votes(iid)]
    assert rounds == [first] * 5 + [first + 1] * 5


def test_close_meeting_by_the_chairman_only_and_no_quorum_means_a_new_round(world):
    _, iid = at_committee(world)
    first = world.instance(iid).round
    vote(world, iid, c1="agree", c2="agree", c3="agree")
    before = snapshot(world, iid)
    assert "Only the chairman" in refused(world.wf().close_meeting, iid, world.actor("c1"))
    assert snapshot(world, iid) == before
    out = world.wf().close_meeting(iid, world.actor("boss"), comment="人数不足")
    assert (out.step_after, out.state) == ("committee", "running")
    assert world.instance(iid).round == first + 1
    assert world.actions(iid)[-2:] == ["close_meeting", "meeting_noquorum"]
    assert len(world.tasks(iid)) == 5
    # four votes are a quorum (4/5 = 0.8), all agree: passes when the chairman closes
    vote(world, iid, c1="agree", c2="agree", c3="agree", c4="agree")
    assert world.wf().close_meeting(iid, world.actor("boss")).step_after == "fee_collection"
    assert "No committee meeting is open" in refused(world.wf().close_meeting, iid, world.actor("boss"))


def test_secret_votes_are_hidden_from_others_until_the_meeting_closes(world):
    _, iid = at_committee(world)
    vote(world, iid, c1="disagree", c2="agree")
    wf = world.wf()

    def seen(viewer):
        return {v.username: (None if v.hidden else v.vote) for v in wf.meeting_votes(iid, world.uid[viewer])}
    assert seen("c1") == {"c1": "disagree", "c2": None}
    assert seen("c2") == {"c1": None, "c2": "agree"}
    assert seen("fin") == {"c1": None, "c2": None}
    vote(world, iid, c3="agree", c4="agree", boss="agree")          # 4/5: passed, meeting closed
    assert seen("fin") == {"c1": "disagree", "c2": "agree", "c3": "agree", "c4": "agree", "boss": "agree"}


def test_votes_only_at_a_committee_and_approve_is_refused_there(world):
    _, iid = at_committee(world)
    task = world.task("c1", iid)
    wf = world.wf()
    assert "vote instead" in refused(wf.act, task, "approve", world.actor("c1"))
    assert "vote instead" in refused(wf.act, task, "reject", world.actor("c1"), comment="no")
    assert "signed comment" in refused(wf.vote, task, "agree", world.actor("c1"), comment=" ")
    assert "vote must be one of" in refused(wf.vote, task, "abstain", world.actor("c1"), comment="x")
    assert "not yours" in refused(wf.vote, task, "agree", world.actor("c2"), comment="x")
    vote(world, iid, c1="agree")
    assert "done" in refused(wf.vote, task, "disagree", world.actor("c1"), comment="改票")
    p2 = world.project()
    i2 = world.start(p2)
    assert "not a committee" in refused(wf.vote, world.task("risk", i2), "agree", world.actor("risk"), comment="x")


def test_a_delegated_vote_is_counted_once(world):
    _, iid = at_committee(world)
    world.wf().act(world.task("c1", iid), "delegate", world.actor("c1"), user_id=world.uid["clerk"])
    vote(world, iid, clerk="agree", c2="agree", c3="agree", boss="agree")
    # four of the five invited voted: a quorum (the delegator is not a sixth member)
    out = world.wf().close_meeting(iid, world.actor("boss"))
    assert out.step_after == "fee_collection"
    assert world.wf().timeline(iid)[-1].comment == "invited 5, votes 4"


def test_two_thirds_pass_in_the_compensation_committee(world):
    world.add_user("c5", ["committee_member"])
    p = world.project()
    world.set(ENTITY, p, status="overdue")
    iid = world.start(p, "project_compensation")
    world.set_roles("gm", [])                                       # one chairman: six members in all
    approve(world, iid, "risk")
    assert world.tasks(iid) == {n: "open" for n in ("boss", "c1", "c2", "c3", "c4", "c5")}
    vote(world, iid, c1="agree", c2="agree", c3="agree", c4="disagree", c5="disagree")
    assert vote(world, iid, boss="agree").step_after == "manager_approval"   # 4/6


# -- time limits ---------------------------------------------------------------------------
def test_escalation_adds_the_escalate_to_people_once(world):
    world.add_user("risk2", ["risk_officer"])
    iid = world.start(world.project())
    world.clock.advance(hours=47)
    assert world.wf().process_timeouts() == 0
    world.clock.advance(hours=2)
    assert world.wf().process_timeouts() == 2                       # both risk officers' tasks were overdue
    assert world.tasks(iid) == {"risk": "open", "risk2": "open", "boss": "open", "gm": "open"}
    assert world.actions(iid) == ["start", "escalate"]
    world.clock.advance(hours=100)
    assert world.wf().process_timeouts() == 0
    assert world.actions(iid) == ["start", "escalate"]
    assert approve(world, iid, "boss").step_after == "second_review"


def test_escalation_skips_people_already_asked(world):
    world.set_roles("boss", ["manager", "risk_officer"])
    iid = world.start(world.project())
    world.clock.advance(hours=49)
    world.wf().process_timeouts()
    assert world.tasks(iid) == {"risk": "open", "boss": "open", "gm": "open"}
    assert len(world.wf().tasks_of(iid, world.instance(iid).round)) == 3


def test_remind_logs_once_per_task(world):
    iid = world.start(world.project())
    approve(world, iid, "risk")
    world.clock.advance(hours=73)
    assert world.wf().process_timeouts() == 2                       # second review: two people, remind
    assert world.actions(iid)[-2:] == ["remind", "remind"]
    assert world.instance(iid).step == "second_review"
    world.clock.advance(hours=73)
    assert world.wf().process_timeouts() == 0
    assert world.actions(iid).count("remind") == 2


# -- version pinning ---------------------------------------------------------------------------
def test_a_running_record_keeps_its_workflow_version(world, v2_pack):
    old = world.project("5000000")
    old_iid = world.start(old)
    approve(world, old_iid, "risk")
    meta2, models2 = core_build((CORE, v2_pack))
    assert meta2.workflows[STANDARD].version == "2027.1"
    assert [s.key for s in meta2.workflows[STANDARD].steps] == ["first_review", "in_force", "rejected", "withdrawn"]
    wf2 = world.wf(meta=meta2, models=models2)
    # the instance in flight follows its stored definition, conditions included
    out = wf2.act(world.task("gm", old_iid), "approve", world.actor("gm"))
    assert out.step_after == "committee"
    assert wf2.path_ahead(world.instance(old_iid))[:2] == ["fee_collection", "contract_signing"]
    for name in ("c1", "c2", "c3", "c4", "boss"):
        wf2.vote(world.task(name, old_iid), "agree", world.actor(name), comment="同意")
    assert world.instance(old_iid).step == "fee_collection"
    assert {a.workflow_version for a in wf2.timeline(old_iid)} == {"2026.1"}
    # a new start uses the new definition
    new = world.project("5000000")
    assert [w.digest for w in wf2.candidates(ENTITY, new)] == [meta2.workflows[STANDARD].digest]
    new_iid = wf2.start(ENTITY, new, STANDARD, world.actor("pm2"))
    out = wf2.act(world.task("risk", new_iid), "approve", world.actor("risk"))
    assert (out.step_after, out.state) == ("in_force", "approved")
    inst = world.instance(new_iid)
    assert inst.workflow_version == "2027.1" and inst.digest != world.instance(old_iid).digest
    assert world.value(ENTITY, new, "status") == "guaranteeing"
    # and the old engine (old metadata) still reads the new instance by its own definition
    assert [s.key for s in world.wf().workflow_of(inst).steps] == ["first_review", "in_force", "rejected", "withdrawn"]


# -- random actions never leave the workflow's definition (hypothesis, stateful) ----------------
NAMES = sorted(MODE_PEOPLE)
CODES = (STANDARD, "project_green", "modes", "timers", "project_release")


def allowed_people(wf, step_key: str, a_manager: str | None) -> set[str]:
    """Who a step asks, by the fixed roles of MODE_PEOPLE and the record's A角."""
    step = wf.step(step_key)
    groups = [step.assignees]
    if step.committee is not None and step.committee.chairman:
        groups.append(step.committee.chairman)
    if step.escalate_to:
        groups.append(step.escalate_to)
    out = set()
    for who in groups:
        out |= {n for n, roles in MODE_PEOPLE.items() if set(roles) & set(who.roles)}
        if "a_manager" in who.fields and a_manager:
            out.add(a_manager)
    return out


class WorkflowMachine(RuleBasedStateMachine):
    """Three projects per run; random people take random actions on random
    tasks (mostly their own), the clock jumps, fields get filled in."""
    world: WfWorld

    def __init__(self):
        super().__init__()
        w = self.world
        self.projects = [w.project("5000000"), w.project("800000", customer=w.customer(grade="AA")),
                         w.project("2000000", fee_rate="0.01")]
        self.instances: list[int] = []
        self.log_rows: dict[int, tuple] = {}
        self.vote_rows: dict[int, tuple] = {}
        self.states: dict[int, tuple] = {}

    # -- what people do ------------------------------------------------------------
    def _tasks(self, open_only: bool):
        _, tt, _, _ = self.world.tables
        if not self.instances:
            return []
        q = sa.select(tt).where(tt.c.instance_id.in_(self.instances)).order_by(tt.c.id)
        if open_only:
            q = q.where(tt.c.status == "open")
        self.world.s.commit()
        return self.world.s.execute(q).all()

    def _try(self, fn, *args, **kw):
        """Refused, NotFound and a step's conditions (CT020) are answers; anything else
        (Conflict included: nobody else is acting) fails the test."""
        from danbao.engines.refusals import Refusal
        try:
            return fn(*args, **kw)
        except (Refused, NotFound):
            return None
        except Refusal as exc:
            if exc.code != "CT020":
                raise
            self.world.s.rollback()
            return None

    @rule(p=st.integers(0, 2), data=st.data(), who=st.sampled_from(["pm", "pm2", "pm2", "risk", "clerk"]))
    def start(self, p, data, who):
        w = self.world
        if len(self.instances) >= 4:
            return
        offered = [wf.code for wf in w.wf().candidates(ENTITY, self.projects[p]) if wf.code != "timers"]
        code = data.draw(st.sampled_from(offered if offered and data.draw(st.integers(0, 3)) else CODES))
        iid = self._try(w.wf().start, ENTITY, self.projects[p], code, w.actor(who))
        if iid is not None:
            self.instances.append(iid)

    @rule(data=st.data(), n=st.integers(1, 8))
    def work(self, data, n):
        """People do their work: approve, or vote with a signed comment."""
        w = self.world
        for _ in range(n):
            open_ = self._tasks(open_only=True)
            if not open_:
                return
            task = data.draw(st.sampled_from(open_))
            who = w.name_of(task.user_id)
            inst = w.instance(task.instance_id)
            if w.wf().workflow_of(inst).step(task.step).kind == "committee":
                choice = data.draw(st.sampled_from(("agree", "agree", "agree", "disagree", "defer")))
                self._try(w.wf().vote, task.id, choice, w.actor(who), comment="签")
            else:
                self._try(w.wf().act, task.id, "approve", w.actor(who))

    @rule(data=st.data(), action=st.sampled_from(("approve", "reject", "return", "delegate", "add_approver",
                                                  "comment", "vote", "close_meeting", "withdraw")))
    def anything(self, data, action):
        """Any action by someone (mostly the task's owner), with odd arguments."""
        w = self.world
        every = self._tasks(open_only=False)
        if not every:
            return
        open_ = [t for t in every if t.status == "open"]
        task = data.draw(st.sampled_from(open_ if open_ and data.draw(st.integers(0, 3)) else every))
        who = w.name_of(task.user_id) if data.draw(st.integers(0, 3)) else data.draw(st.sampled_from(NAMES))
        comment = data.draw(st.sampled_from(["意见", "意见", ""]))
        if action == "vote":
            self._try(w.wf().vote, task.id, data.draw(st.sampled_from(("agree", "disagree", "defer", "maybe"))),
                      w.actor(who), comment=comment)
        elif action == "close_meeting":
            self._try(w.wf().close_meeting, task.instance_id, w.actor(data.draw(st.sampled_from(["boss", who]))))
        elif action == "withdraw":
            inst = w.instance(task.instance_id)
            starter = w.name_of(inst.started_by_id)
            self._try(w.wf().withdraw, task.instance_id, w.actor(starter if data.draw(st.booleans()) else who))
        else:
            kw = {"comment": comment}
            if action == "return":
                kw["target_step"] = data.draw(st.sampled_from(
                    [task.step, "first_review", "second_review", "committee", "fee_collection", "s_any", "s_all",
                     "s_ratio", "in_force", None]))
            if action in ("delegate", "add_approver"):
                kw["user_id"] = w.uid[data.draw(st.sampled_from(NAMES))]
            if action == "delegate" and data.draw(st.booleans()):
                kw["until"] = w.clock() + dt.timedelta(hours=data.draw(st.integers(1, 60)))
            self._try(w.wf().act, task.id, action, w.actor(who), **kw)

    @rule(p=st.integers(0, 2))
    def fill_in(self, p):
        self.world.set(ENTITY, self.projects[p], fee_rate="0.015", start_date=dt.date(2026, 11, 20))

    @rule(hours=st.sampled_from([1, 3, 25, 49, 73]))
    def time_passes(self, hours):
        self.world.clock.advance(hours=hours)
        self.world.wf().process_timeouts()

    # -- what must always hold ----------------------------------------------------------
    @invariant()
    def inside_the_definition(self):
        w = self.world
        for iid in self.instances:
            inst = w.instance(iid)
            wf = w.wf().workflow_of(inst)
            assert wf.has_step(inst.step)
            step = wf.step(inst.step)
            assert (inst.state == "running") == (not step.is_end), (inst.state, inst.step)
            if step.is_end:
                assert inst.state in (step.outcome, "withdrawn")
            tasks = w.wf().tasks_of(iid)
            live = [t for t in tasks if t.status in ("open", "waiting")]
            assert all((t.step, t.round) == (inst.step, inst.round) for t in live)
            if inst.state == "running":
                assert any(t.status == "open" for t in live), "a running instance with nobody to act"
                assert len({t.user_id for t in live}) == len(live), "someone asked twice at one step"
            a_manager = w.name_of(w.value(ENTITY, inst.record_id, "a_manager"))
            for t in tasks:
                assert t.user_id != inst.started_by_id
                if t.delegated_from_id is None and t.added_by_id is None:
                    assert w.name_of(t.user_id) in allowed_people(wf, t.step, a_manager), (t.step, t.user_id)

    @invariant()
    def the_log_is_append_only_and_records_every_change(self):
        w = self.world
        if not self.instances:
            return
        _, _, ta, tv = w.tables
        w.s.commit()
        rows = {r.id: tuple(r) for r in w.s.execute(sa.select(ta).where(ta.c.instance_id.in_(self.instances)))}
        votes_ = {r.id: tuple(r) for r in w.s.execute(sa.select(tv).where(tv.c.instance_id.in_(self.instances)))}
        for old, new in ((self.log_rows, rows), (self.vote_rows, votes_)):
            assert all(new.get(k) == v for k, v in old.items()), "a logged row changed or vanished"
            if old:
                assert min(set(new) - set(old), default=max(old) + 1) > max(old), "a row slipped in before others"
        fresh = {rows[k][1] for k in set(rows) - set(self.log_rows)}       # instances with new log rows
        for iid in self.instances:
            inst = w.instance(iid)
            now = (inst.state, inst.step, inst.round, inst.lock)
            if self.states.get(iid) not in (None, now):
                assert iid in fresh, f"instance {iid} changed {self.states[iid]} -> {now} without a log row"
            self.states[iid] = now
            assert [r[5] for r in rows.values() if r[1] == iid].count("start") == 1
        self.log_rows, self.vote_rows = rows, votes_


def test_random_actions_stay_inside_the_workflow(tmp_path, modes_pack):
    from hypothesis.stateful import run_state_machine_as_test
    engine = make_engine("sqlite://", poolclass=StaticPool)        # one connection, in memory: fast
    world = WfWorld("", engine=engine, packs=(CORE, modes_pack), people=MODE_PEOPLE)
    machine = type("Machine", (WorkflowMachine,), {"world": world})
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=70, stateful_step_count=50, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        world.close()


# -- people acting at the same moment (PostgreSQL) ---------------------------------------------
def _at_once(world: WfWorld, jobs):
    """Run ``jobs`` (callables taking an engine) in threads, each with its own
    session and connection, released together by a barrier; their results or
    exceptions, in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        with Session(world.engine) as session:
            wf = world.wf(session=session)
            session.execute(sa.text("SELECT 1"))               # hold a connection before the start
            barrier.wait()
            try:
                results[i] = job(wf)
            except Exception as exc:                           # noqa: BLE001 - judged by the test
                results[i] = exc
    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL: concurrent sessions on one database")
@pytest.mark.parametrize("same_task", [True, False], ids=["same-task", "different-tasks"])
def test_simultaneous_approvals_make_exactly_one_transition(database_url, same_task):
    world = WfWorld(database_url, pool_size=12)
    names = ["risk"] + [f"risk{i}" for i in range(2, 9)]
    for name in names[1:]:
        world.add_user(name, ["risk_officer"])
    try:
        for _ in range(6):
            iid = world.start(world.project())
            first = world.instance(iid).round
            if same_task:                                      # one person clicking eight times
                task = world.task("risk", iid)
                jobs = [lambda wf, t=task: wf.act(t, "approve", world.actor("risk"))] * len(names)
            else:                                              # eight people, mode any
                jobs = [lambda wf, t=world.task(n, iid), n=n: wf.act(t, "approve", world.actor(n)) for n in names]
            results = _at_once(world, jobs)
            done = [r for r in results if not isinstance(r, Exception)]
            assert len(done) == 1, results
            assert done[0].step_after == "second_review"
            assert all(isinstance(r, (Conflict, Refused)) for r in results if r is not done[0]), results
            inst = world.instance(iid)
            assert (inst.step, inst.round, inst.lock) == ("second_review", first + 1, 1)
            assert world.actions(iid) == ["start", "approve"]
            statuses = [t.status for t in world.wf().tasks_of(iid, first)]
            assert statuses.count("approved") == 1
            approver = world.name_of(next(t.user_id for t in world.wf().tasks_of(iid, first)
                                          if t.status == "approved"))
            # the next step entered once: every manager and risk officer asked once, but the first reviewer
            assert sorted(world.tasks(iid)) == sorted(["boss", "gm"] + [n for n in names if n != approver])
            assert len(world.wf().tasks_of(iid, first + 1)) == len(names) + 1
            assert len(world.wf().tasks_of(iid)) == 2 * len(names) + 1
    finally:
        world.close()


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL: concurrent sessions on one database")
def test_simultaneous_votes_retried_decide_the_meeting_once(database_url):
    """Five members vote at once; a vote that meets a Conflict is cast again.
    Every vote is recorded once and the meeting is decided once."""
    world = WfWorld(database_url, pool_size=8)
    try:
        _, iid = at_committee(world)
        members = ["boss", "c1", "c2", "c3", "c4"]

        def voter(name):
            def job(wf):
                task = [t.id for t in wf.open_tasks(world.uid[name]) if t.instance_id == iid][0]
                for _ in range(50):
                    try:
                        return wf.vote(task, "agree", world.actor(name), comment="同意")
                    except Conflict:
                        continue
                raise AssertionError("never got through")
            return job
        results = _at_once(world, [voter(n) for n in members])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert sorted(r.step_after for r in results) == ["committee"] * 4 + ["fee_collection"]
        log = world.actions(iid)
        assert log.count("vote") == 5 and log.count("meeting_passed") == 1
        assert sorted(v.username for v in world.wf().meeting_votes(iid)) == sorted(members)
        assert world.instance(iid).step == "fee_collection"
    finally:
        world.close()
