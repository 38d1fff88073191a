"""Controls that hold (issue 10, findings 8–10), on the engine without a web server.

8. 退回 reaches the applicant: a return goes to any step passed on the current
   path or to the applicant (``_applicant``), never ahead; the applicant
   completes the file (the project is back in application) and resubmits; the
   route restarts (standard) or resumes where it left (green channel).
9. Separation of duties: whoever approved 初审 gets no 复审 task and is refused
   if one is forced on them; the 复审 manager cannot do 总经理审批; a step left
   with nobody is refused with its own code. Committee members who are the
   project's A角/B角 are recused: no vote task, not in the quorum.
10. The product drives the project: a product naming its own route is offered
   only that route; scoring in a product's context uses its card.
Time is a hand-moved clock (tests/wfhelpers.py); nothing is mocked.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from danbao.engines import workflow_codes as wfc
from danbao.engines.scoring import card_for
from danbao.engines.workflow import APPLICANT, Refused
from wfhelpers import CORE, ENTITY, REPO, WfWorld

ROUTE_PACK = REPO / "tests" / "packs" / "product_route"


@pytest.fixture
def world(database_url):
    w = WfWorld(database_url)
    yield w
    w.close()


@pytest.fixture
def pworld(database_url):
    w = WfWorld(database_url, packs=(CORE, ROUTE_PACK))
    w.add_user("legal", ["auditor"])
    yield w
    w.close()


def approve(w: WfWorld, iid: int, *names: str):
    out = None
    for name in names:
        out = w.wf().act(w.task(name, iid), "approve", w.actor(name))
    return out


def refused(fn, *args, **kw) -> Refused:
    with pytest.raises(Refused) as exc:
        fn(*args, **kw)
    assert exc.value.message.zh and exc.value.message.en
    return exc.value


def force_task(w: WfWorld, iid: int, name: str) -> int:
    """A task for ``name`` at the current step, as an older version or a direct write could leave one."""
    inst = w.instance(iid)
    tasks = w.tables[1]
    with w.engine.begin() as conn:
        return conn.execute(tasks.insert().values(
            instance_id=iid, step=inst.step, round=inst.round, position=99, user_id=w.uid[name], status="open",
            created_at=w.clock(), escalated=False).returning(tasks.c.id)).scalar_one()


# -- finding 8: returns -------------------------------------------------------------------
def test_return_targets_are_the_applicant_and_steps_behind_never_ahead(world):
    iid = world.start(world.project())
    wf = world.wf()
    assert wf.return_targets(world.instance(iid)) == [APPLICANT]          # at 初审: the applicant only
    approve(world, iid, "risk")
    assert wf.return_targets(world.instance(iid)) == [APPLICANT, "first_review"]
    wf.act(world.task("boss", iid), "return", world.actor("boss"), comment="重新初审", target_step="first_review")
    # back at 初审, 复审 (passed before, now ahead) is no target
    assert wf.return_targets(world.instance(iid)) == [APPLICANT]
    exc = refused(wf.act, world.task("risk", iid), "return", world.actor("risk"), comment="x",
                  target_step="second_review")
    assert (exc.code, exc.field, exc.status) == (wfc.NOT_A_RETURN_TARGET, "target_step", 422)
    exc = refused(wf.act, world.task("risk", iid), "return", world.actor("risk"), comment="x",
                  target_step="first_review")                               # the current step
    assert exc.code == wfc.NOT_A_RETURN_TARGET
    assert world.instance(iid).step == "first_review"


def test_returned_to_the_applicant_who_completes_the_file_and_resubmits_restart(world):
    p = world.project()
    iid = world.start(p)
    approve(world, iid, "risk")
    before = world.instance(iid)
    out = world.wf().act(world.task("boss", iid), "return", world.actor("boss"), comment="请补充近三年财务报表",
                         target_step=APPLICANT)
    assert (out.step_before, out.step_after, out.state) == ("second_review", APPLICANT, "running")
    inst = world.instance(iid)
    assert (inst.state, inst.step, inst.round) == ("running", APPLICANT, before.round + 1)
    assert world.tasks(iid) == {}                                          # nobody has a task meanwhile
    assert world.value(ENTITY, p, "status") == "applying"                  # on_return_to_applicant
    assert world.wf().candidates(ENTITY, p) == []                          # still in its approval: no second start
    # the applicant completes the file
    version = world.records().get(ENTITY, p).version
    world.records().update(ENTITY, p, {"loan_purpose": "补充：采购原材料"}, expected_version=version)
    world.s.commit()
    assert world.value(ENTITY, p, "loan_purpose") == "补充：采购原材料"
    exc = refused(world.wf().resubmit, iid, world.actor("pm"))
    assert (exc.code, exc.status) == (wfc.ONLY_APPLICANT, 403)
    assert world.instance(iid).step == APPLICANT
    out = world.wf().resubmit(iid, world.actor("pm2"), comment="已补充")
    assert (out.step_after, out.state) == ("first_review", "running")       # resume: restart
    inst = world.instance(iid)
    assert (inst.step, inst.round) == ("first_review", before.round + 2)
    assert world.tasks(iid) == {"risk": "open"}
    assert world.value(ENTITY, p, "status") == "reviewing"                 # on_start again
    assert world.log(iid)[-2:] == [("return", "second_review", "boss", APPLICANT),
                                   ("resubmit", APPLICANT, "pm2", "first_review")]
    exc = refused(world.wf().resubmit, iid, world.actor("pm2"))
    assert (exc.code, exc.status) == (wfc.NOT_WITH_APPLICANT, 409)
    # the file goes the whole way again: 初审 (risk), 复审 by a manager
    approve(world, iid, "risk", "gm")
    assert world.instance(iid).step == "committee"


def test_returned_to_the_applicant_resumes_where_it_left_in_the_green_channel(world):
    p = world.project("800000", customer=world.customer(grade="AA"), fee_rate="0.015")
    iid = world.start(p, "project_green")
    approve(world, iid, "risk")
    assert world.instance(iid).step == "fee_collection"
    assert world.wf().return_targets(world.instance(iid)) == [APPLICANT, "first_review"]
    world.wf().act(world.task("fin", iid), "return", world.actor("fin"), comment="请补充收费确认函",
                   target_step=APPLICANT)
    assert (world.instance(iid).step, world.value(ENTITY, p, "status")) == (APPLICANT, "applying")
    out = world.wf().resubmit(iid, world.actor("pm2"))
    assert out.step_after == "fee_collection"                              # resume: where_left
    assert world.tasks(iid) == {"fin": "open"}
    assert world.value(ENTITY, p, "status") == "approved"                  # fee_collection's set: again
    assert world.log(iid)[-1] == ("resubmit", APPLICANT, "pm2", "fee_collection")


def test_a_returned_application_may_be_withdrawn_instead(world):
    p = world.project()
    iid = world.start(p)
    approve(world, iid, "risk")
    world.wf().act(world.task("boss", iid), "return", world.actor("boss"), comment="资料不全", target_step=APPLICANT)
    out = world.wf().withdraw(iid, world.actor("pm2"), comment="客户放弃")
    assert (out.step_after, out.state) == ("withdrawn", "withdrawn")
    assert world.value(ENTITY, p, "status") == "applying"


# -- finding 9: separation of duties and recusal ---------------------------------------------
def test_the_first_reviewer_gets_no_second_review_task_and_is_refused_if_forced(world):
    world.set_roles("risk", ["risk_officer", "manager"])       # a risk director: could sit at both levels
    iid = world.start(world.project())
    approve(world, iid, "risk")
    assert world.tasks(iid) == {"boss": "open", "gm": "open"}
    forced = force_task(world, iid, "risk")
    exc = refused(world.wf().act, forced, "approve", world.actor("risk"))
    assert (exc.code, exc.status, exc.kind) == (wfc.SEPARATED, 403, "forbidden")
    assert "separation of duties" in exc.message.en
    inst = world.instance(iid)
    assert (inst.step, world.tasks(iid)["risk"]) == ("second_review", "open")   # nothing moved
    assert world.actions(iid) == ["start", "approve"]


def test_the_second_review_manager_cannot_sign_off_and_an_empty_step_is_refused(world):
    p = world.project("1000000")
    iid = world.start(p)
    approve(world, iid, "risk", "gm")
    assert (world.instance(iid).step, world.tasks(iid)) == ("sign_off", {"boss": "open"})
    exc = refused(world.wf().act, force_task(world, iid, "gm"), "approve", world.actor("gm"))
    assert exc.code == wfc.SEPARATED
    # with the other manager gone, nobody is left for 总经理审批: refused, not passed silently
    q = world.project("1000000")
    i2 = world.start(q)
    approve(world, i2, "risk")
    world.set_roles("boss", [])
    task = world.task("gm", i2)
    exc = refused(world.wf().act, task, "approve", world.actor("gm"))
    assert (exc.code, exc.status) == (wfc.NOBODY_LEFT, 409)
    assert "总经理审批" in exc.message.zh
    inst = world.instance(i2)
    assert (inst.step, world.tasks(i2)) == ("second_review", {"boss": "open", "gm": "open"})   # gm's task kept
    assert world.actions(i2) == ["start", "approve"]


def test_committee_members_who_are_the_a_and_b_managers_are_recused(world):
    for member in ("c1", "c2"):                 # committee members who also manage projects (A角 must be one)
        world.set_roles(member, ["committee_member", "project_manager"])
    p = world.project("5000000", a_manager="c1", b_manager=world.uid["c2"])
    iid = world.start(p)
    approve(world, iid, "risk", "gm")
    assert world.instance(iid).step == "committee"
    assert world.tasks(iid) == {"boss": "open", "c3": "open", "c4": "open"}   # not c1/c2, not gm (复审)
    exc = refused(world.wf().vote, force_task(world, iid, "c1"), "agree", world.actor("c1"), comment="同意")
    assert (exc.code, exc.status) == (wfc.RECUSED, 403)
    world.s.execute(world.tables[1].delete().where(world.tables[1].c.user_id == world.uid["c1"],
                                                   world.tables[1].c.instance_id == iid))
    world.s.commit()
    for name in ("c3", "c4", "boss"):
        world.wf().vote(world.task(name, iid), "agree", world.actor(name), comment=f"{name}同意")
    # quorum and pass share over the three asked, the recused two not counted
    assert world.wf().timeline(iid)[-1].comment == "invited 3, votes 3"
    assert world.log(iid)[-1][0] == "meeting_passed"
    assert world.instance(iid).step == "fee_collection"


def test_staff_connected_to_the_customers_related_parties_are_recused(world):
    corp = world.customer()
    world.records().assign_children("corporate_customer", corp, "related_parties", [
        {"name": "常州新达投资有限公司", "relation": "parent", "connected_staff": world.uid["c3"]},
        {"name": "无关联员工的关联方", "relation": "other"}])
    world.s.commit()
    p = world.project("5000000", customer=corp)
    iid = world.start(p)
    approve(world, iid, "risk", "gm")
    assert world.tasks(iid) == {"boss": "open", "c1": "open", "c2": "open", "c4": "open"}   # not c3
    exc = refused(world.wf().vote, force_task(world, iid, "c3"), "agree", world.actor("c3"), comment="同意")
    assert exc.code == wfc.RECUSED


def test_recusal_leaves_the_quorum_to_those_asked(world):
    world.set_roles("c1", ["committee_member", "project_manager"])    # a member who also manages projects
    p = world.project("5000000", a_manager="c1")
    iid = world.start(p)
    approve(world, iid, "risk", "gm")
    assert set(world.tasks(iid)) == {"boss", "c2", "c3", "c4"}
    for name in ("c2", "c3"):
        world.wf().vote(world.task(name, iid), "agree", world.actor(name), comment="同意")
    world.wf().close_meeting(iid, world.actor("boss"))
    # 2 of 4 asked is below the 0.8 quorum (2 of 5 would be too, but the count is of 4)
    assert world.wf().timeline(iid)[-1].comment == "invited 4, votes 2"
    assert world.log(iid)[-1][0] == "meeting_noquorum"


# -- finding 10: the product drives the project ---------------------------------------------------
def test_a_product_naming_its_own_route_is_offered_only_that_route(pworld):
    w = pworld
    special = w.project("5000000", product="special_loan")
    standard = w.project("5000000")                                 # bank_loan: the project_approval group
    assert [wf.code for wf in w.wf().candidates(ENTITY, special)] == ["project_special"]
    assert [wf.code for wf in w.wf().candidates(ENTITY, standard)] == ["project_standard"]
    exc = refused(w.wf().start, ENTITY, special, "project_standard", w.actor("pm2"))
    assert (exc.code, exc.status) == (wfc.CANNOT_START, 409)
    assert w.wf().instance_of(ENTITY, special) == []
    exc = refused(w.wf().start, ENTITY, standard, "project_special", w.actor("pm2"))
    assert exc.code == wfc.CANNOT_START
    # its extra step cannot be skipped: 初审, then the legal review, then in force
    iid = w.start(special, "project_special")
    approve(w, iid, "risk")
    assert (w.instance(iid).step, w.tasks(iid)) == ("legal_review", {"legal": "open"})
    assert approve(w, iid, "legal").state == "approved"


def test_scoring_without_a_card_uses_the_products_card(pworld):
    meta = pworld.meta
    assert card_for(meta, "corporate_customer", "special_loan").code == "big_corporate"
    assert card_for(meta, "corporate_customer", "bank_loan").code == "sme_corporate"
    assert card_for(meta, "corporate_customer", None).code == "sme_corporate"
    # a product without a card for this kind of customer: the entity's own
    assert card_for(meta, "individual_customer", "special_loan").code == "individual"
    assert card_for(meta, "individual_customer", "construction_performance").code == "individual"


def test_route_rules_of_groups_and_codes(pworld):
    from danbao.engines.product_routes import routes_of
    meta = pworld.meta
    shared = {"project_release", "project_compensation", "project_write_off"}
    assert routes_of(meta, ENTITY, "special_loan") == shared | {"project_special"}
    # naming the group does not reach a route another product names by code
    assert routes_of(meta, ENTITY, "bank_loan") == shared | {"project_green", "project_standard"}
    assert routes_of(meta, ENTITY, "no_such_product") is None
    assert routes_of(meta, "corporate_customer", "bank_loan") is None


def test_a_separation_rule_counts_across_a_return(world):
    """Whoever approved 初审 stays off 复审 after the file went round again."""
    iid = world.start(world.project())
    world.add_user("risk2", ["risk_officer"])
    approve(world, iid, "risk")
    assert world.tasks(iid) == {"boss": "open", "gm": "open", "risk2": "open"}
    world.wf().act(world.task("boss", iid), "return", world.actor("boss"), comment="重审", target_step="first_review")
    approve(world, iid, "risk2")
    assert world.tasks(iid) == {"boss": "open", "gm": "open"}       # neither risk officer
    rows = world.s.execute(sa.select(world.tables[2].c.action).where(world.tables[2].c.instance_id == iid)).scalars()
    assert list(rows) == ["start", "approve", "return", "approve"]
