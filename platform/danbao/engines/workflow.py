"""The approval engine: workflows from metadata driven by people's actions.

A record enters a workflow with ``start``; each step asks named people to act
(one task each, resolved from roles and the record's user fields when the
step is entered). ``act`` takes an action on a task: approve, reject, return
to an earlier step, delegate, add an approver, comment; ``vote`` casts a
committee vote and ``close_meeting`` decides a meeting; ``withdraw`` lets the
applicant take the record back before anyone acted; ``process_timeouts``
reminds, escalates or decides overdue steps.

Rules that hold whatever the metadata says:
* nobody acts on a record they submitted (no tasks are made for the starter);
* a step's ``separate_from`` and ``recuse`` (see ``_excluded``) keep people off
  it: no task, not counted in a quorum, refused if they act anyway;
* a return goes back only along the path taken (``return_targets``): never to
  the current step or one ahead; to the applicant (``APPLICANT``) where the
  workflow declares ``on_return_to_applicant``, who then resubmits;
* only the current step's open task of the acting user can be acted on;
* every state change bumps ``lock`` with a compare-and-set, so two people
  acting at once produce exactly one transition (the other gets Conflict and
  nothing of theirs is written);
* every action is appended to the action log with the workflow version;
* a record finishes under the workflow version it started with (the
  definition is stored with the instance).

Every refusal is a ``Refused`` with a WF code (engines/workflow_codes.py);
the web layer maps its kind to pages and HTTP codes, never its words.
No Flask here.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from danbao.engines.coerce import CONTROL_CHARS
from danbao.engines.actions import ActionContext, run_actions
from danbao.engines import workflow_codes as wfc
from danbao.engines.records import Actor, Conflict, NotFound, RecordService
from danbao.engines.refusals import Refusal
from danbao.engines.routing import allowed_routes
from danbao.engines.transactions import all_or_nothing
from danbao.engines.users import USER_ROLE_TABLE, ROLE_TABLE, USER_TABLE
from danbao.expr import ExprError, row_values
from danbao.expr.evaluate import plain_values
from danbao.meta.expressions import compile_workflow, workflow_key
from danbao.meta.model import Assignees, Label, Meta, StepMeta, WorkflowMeta
from danbao.meta.workflows import workflow_from_dict, workflow_to_dict
from danbao.model.system import WF_ACTION_TABLE, WF_INSTANCE_TABLE, WF_TASK_TABLE, WF_VOTE_TABLE

ACTIONS = ("approve", "reject", "return", "delegate", "add_approver", "comment")
VOTES = ("agree", "disagree", "defer")
#: the action logged for each meeting result (the log's action column holds 16 characters)
MEETING_ACTIONS = {"passed": "meeting_passed", "rejected": "meeting_rejected", "vetoed": "meeting_vetoed",
                   "deferred": "meeting_deferred", "no_quorum": "meeting_noquorum"}
SYSTEM_ACTOR = Actor(user_id=None, username="system")
_EXCLUDED_MESSAGES = {
    wfc.SEPARATED: Label("您已在前面的审批环节签署过意见，不能再处理本环节（审批职责分离）",
                         "You signed an earlier level of this application: you cannot act at this step "
                         "(separation of duties)"),
    wfc.RECUSED: Label("您与该申请有关联，须回避本环节", "You are connected to this application: you are recused "
                                                  "from this step"),
}


#: the pseudo-step of a record returned to its applicant (补充资料); step keys are
#: safe names and cannot start with ``_``, so it never collides with a real step
APPLICANT = "_applicant"
APPLICANT_LABEL = Label("退回申请人补充资料", "Returned to the applicant")
APPLICANT_NAME = Label("申请人（补充资料）", "the applicant")


class Refused(Refusal):
    """The action is not allowed now; ``message`` says why, in both languages,
    and ``code`` (a WF code) what kind of refusal it is. Step actions of the
    business (engines/business.py) raise it without a code: WF032."""

    def __init__(self, message: Label, code: str = wfc.STEP_ACTION, *, field: str | None = None):
        super().__init__(code, message, field=field)


class Shown(dict):
    """A log row or a vote as one viewer may see it (``hidden``: a secret vote
    of an open meeting, its vote and comment blanked); attribute access like a row."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_EVERYONE = object()      # timeline(): no viewer, nothing hidden (the audit view)


@dataclass(frozen=True)
class Outcome:
    """What an action did: the instance's step before and after, and its state."""
    instance_id: int
    step_before: str
    step_after: str
    state: str


class WorkflowEngine:
    def __init__(self, session, models, meta: Meta, *, clock=None):
        self.session = session
        self.models = models
        self.meta = meta
        self.clock = clock or dt.datetime.now
        t = models.system
        self.instances, self.tasks = t[WF_INSTANCE_TABLE], t[WF_TASK_TABLE]
        self.actions, self.votes = t[WF_ACTION_TABLE], t[WF_VOTE_TABLE]

    def _transaction(self):
        """An action changes everything or nothing."""
        return all_or_nothing(self.session)

    # -- which workflow -----------------------------------------------------
    def candidates(self, entity: str, record_id: int) -> list[WorkflowMeta]:
        """Workflows that may start on this record now: per group, the first by
        priority whose ``applies_if`` holds; none for a group already running."""
        values = self.record_values(entity, record_id)
        running = {json.loads(r.definition).get("group", r.workflow) for r in self._running(entity, record_id)}
        allowed = allowed_routes(self.meta, entity, values)     # None: no extension has a say
        chosen: dict[str, WorkflowMeta] = {}
        for wf in sorted((w for w in self.meta.workflows.values() if w.entity == entity and w.active),
                         key=lambda w: (w.priority, w.code)):
            if wf.group in chosen or wf.group in running or (allowed is not None and wf.code not in allowed):
                continue
            cond = self.meta.expressions.get(workflow_key(wf.code, "applies_if"))
            if cond is None or cond.holds(values, today=self.clock().date()):
                chosen[wf.group] = wf
        return list(chosen.values())

    def may_start(self, wf: WorkflowMeta, record_id: int, user_id: int | None) -> bool:
        if not wf.starters:
            return True
        return user_id in self._people(wf.starters, wf.entity, record_id)

    # -- starting ---------------------------------------------------------------
    def start(self, entity: str, record_id: int, code: str, actor: Actor, *, comment: str = "") -> int:
        """Submit the record into workflow ``code``; returns the instance id."""
        self._record(entity, record_id)
        wf = self.meta.workflows.get(code)
        if wf is None or wf not in self.candidates(entity, record_id):
            raise Refused(Label("该流程现在不能发起（条件不满足、不是该产品的审批流程或已在进行中）",
                                "This workflow cannot start now (its condition does not hold, the record's "
                                "product names another route, or it is running)"), wfc.CANNOT_START)
        if not self.may_start(wf, record_id, actor.user_id):
            raise Refused(Label("您不能发起该流程", "You may not start this workflow"), wfc.MAY_NOT_START)
        now = self.clock()
        with self._transaction():
            instance_id = self.session.execute(self.instances.insert().values(
                workflow=wf.code, workflow_version=wf.version[:32], digest=wf.digest,
                definition=json.dumps(workflow_to_dict(wf), ensure_ascii=False), entity=entity, record_id=record_id,
                state="running", step=wf.start, round=0, step_entered_at=now, started_by_id=actor.user_id,
                started_by=actor.username[:256], started_at=now, lock=0).returning(self.instances.c.id)).scalar_one()
            self._log(instance_id, wf, wf.start, 0, "start", actor, comment, now=now)
            self._set_fields(wf, entity, record_id, wf.on_start, actor, now)
            self._enter(instance_id, wf, wf.start, 0, actor, now)
        return instance_id

    # -- acting -----------------------------------------------------------------
    def act(self, task_id: int, action: str, actor: Actor, *, comment: str = "", target_step: str | None = None,
            user_id: int | None = None, until: dt.datetime | None = None) -> Outcome:
        """One action on one task (see ACTIONS). ``target_step`` for return,
        ``user_id`` for delegate/add_approver, ``until`` for delegate."""
        if action not in ACTIONS:
            raise Refused(Label(f"未知操作：{action}", f"unknown action: {action}"), wfc.UNKNOWN_ACTION,
                          field="action")
        comment = (comment or "").strip()
        task, inst, wf = self._my_task(task_id, actor)
        step = wf.step(inst.step)
        if step.kind == "committee" and action in ("approve", "reject"):
            raise Refused(Label("审保会环节请投票", "This is a committee step: vote instead"), wfc.VOTE_INSTEAD)
        if action in ("reject", "return", "comment") and not comment:
            raise Refused(Label("请填写意见", "A comment is required"), wfc.COMMENT_REQUIRED, field="comment")
        now = self.clock()
        with self._transaction():
            if action == "comment":
                self._log(inst.id, wf, inst.step, inst.round, "comment", actor, comment, task_id=task_id, now=now)
                return Outcome(inst.id, inst.step, inst.step, inst.state)
            self._bump(inst)
            after, state = inst.step, inst.state
            if action == "approve":
                self._close_task(task, "approved", now)
                self._log(inst.id, wf, inst.step, inst.round, "approve", actor, comment, task_id=task_id, now=now)
                if self._step_done(inst, step):
                    after, state = self._advance(inst, wf, step, actor, now)
                else:
                    self._open_next_in_sequence(inst, step, now)
            elif action == "reject":
                self._close_task(task, "rejected", now)
                self._log(inst.id, wf, inst.step, inst.round, "reject", actor, comment, task_id=task_id,
                          target=wf.reject_to, now=now)
                after, state = self._move(inst, wf, wf.reject_to, actor, now)
            elif action == "return":
                targets = self.return_targets(inst, wf)
                if target_step not in targets:
                    shown = [APPLICANT_NAME if k == APPLICANT else wf.step(k).label for k in targets]
                    raise Refused(Label(f"只能退回到已经过的环节（{'、'.join(x.zh for x in shown) or '无'}）",
                                        f"You can only return to a step already passed "
                                        f"({', '.join(x.en for x in shown) or '-'})"),
                                  wfc.NOT_A_RETURN_TARGET, field="target_step")
                self._close_task(task, "returned", now)
                self._log(inst.id, wf, inst.step, inst.round, "return", actor, comment, task_id=task_id,
                          target=target_step, now=now)
                if target_step == APPLICANT:
                    after, state = self._to_applicant(inst, wf, actor, now)
                else:
                    after, state = self._move(inst, wf, target_step, actor, now)
            elif action == "delegate":
                self._check_colleague(user_id, inst, task, wf, step)
                self._close_task(task, "delegated", now)
                self._add_task(inst, step.key, user_id, now, delegated_from=actor.user_id, until=until,
                               position=task.position, status="open", due=task.due_at)
                self._log(inst.id, wf, inst.step, inst.round, "delegate", actor, comment, task_id=task_id,
                          target=str(user_id), now=now)
            elif action == "add_approver":
                self._check_colleague(user_id, inst, task, wf, step)
                position = self._max_position(inst) + 1
                self._add_task(inst, step.key, user_id, now, added_by=actor.user_id, position=position,
                               status="waiting" if step.mode == "sequence" else "open")
                self._log(inst.id, wf, inst.step, inst.round, "add_approver", actor, comment, task_id=task_id,
                          target=str(user_id), now=now)
        return Outcome(inst.id, inst.step, after, state)

    def vote(self, task_id: int, vote: str, actor: Actor, *, comment: str) -> Outcome:
        """A committee member's vote, signed with a comment; the meeting is
        decided when every invited member has voted (or ``close_meeting``)."""
        if vote not in VOTES:
            raise Refused(Label(f"表决应为：{', '.join(VOTES)}", f"vote must be one of {', '.join(VOTES)}"),
                          wfc.BAD_VOTE, field="vote")
        comment = (comment or "").strip()
        if not comment:
            raise Refused(Label("表决须签署意见", "A vote must carry a signed comment"), wfc.COMMENT_REQUIRED,
                          field="comment")
        _check_text(comment)
        task, inst, wf = self._my_task(task_id, actor)
        step = wf.step(inst.step)
        if step.kind != "committee":
            raise Refused(Label("该环节不是审保会", "This step is not a committee"), wfc.NOT_A_COMMITTEE)
        now = self.clock()
        with self._transaction():
            self._bump(inst)
            self._close_task(task, "voted", now)
            chair = actor.user_id in self._chairmen(wf, step, inst)
            self.session.execute(self.votes.insert().values(
                instance_id=inst.id, task_id=task_id, step=inst.step, round=inst.round, user_id=actor.user_id,
                username=actor.username[:256], vote=vote, chairman=chair, comment=comment[:4000], at=now))
            self._log(inst.id, wf, inst.step, inst.round, "vote", actor, comment, task_id=task_id, target=vote,
                      now=now)
            after, state = inst.step, inst.state
            if not self._open_tasks(inst):
                after, state = self._decide_meeting(inst, wf, step, actor, now)
        return Outcome(inst.id, inst.step, after, state)

    def close_meeting(self, instance_id: int, actor: Actor, *, comment: str = "") -> Outcome:
        """The chairman closes the meeting with the votes cast so far."""
        inst, wf = self._instance(instance_id)
        if inst.state != "running" or not wf.has_step(inst.step) or wf.step(inst.step).kind != "committee":
            raise Refused(Label("当前没有进行中的审保会", "No committee meeting is open"), wfc.NOT_A_COMMITTEE)
        step = wf.step(inst.step)
        if actor.user_id not in self._chairmen(wf, step, inst):
            raise Refused(Label("只有主任委员可以结束会议", "Only the chairman can close the meeting"),
                          wfc.ONLY_CHAIRMAN)
        now = self.clock()
        with self._transaction():
            self._bump(inst)
            self._log(inst.id, wf, inst.step, inst.round, "close_meeting", actor, comment, now=now)
            after, state = self._decide_meeting(inst, wf, step, actor, now)
        return Outcome(inst.id, inst.step, after, state)

    def withdraw(self, instance_id: int, actor: Actor, *, comment: str = "") -> Outcome:
        """The applicant takes the record back, before anyone has acted on it
        (or while it is returned to them: instead of resubmitting)."""
        inst, wf = self._instance(instance_id)
        if inst.state != "running":
            raise Refused(Label("流程已结束", "The workflow has finished"), wfc.FINISHED)
        if inst.started_by_id != actor.user_id:
            raise Refused(Label("只有发起人可以撤回", "Only the applicant can withdraw"), wfc.ONLY_APPLICANT)
        if not wf.withdraw_to:          # a finished instance always rests on an end step
            raise Refused(Label("该流程不能撤回", "This workflow cannot be withdrawn (it declares no withdraw_to)"),
                          wfc.NO_WITHDRAW)
        acted = self.session.execute(sa.select(sa.func.count()).select_from(self.actions).where(
            self.actions.c.instance_id == inst.id,
            self.actions.c.action.notin_(("start", "comment", "remind", "escalate")))).scalar_one()
        if acted and inst.step != APPLICANT:
            raise Refused(Label("已有人处理，不能撤回", "Someone has already acted: it can no longer be withdrawn"),
                          wfc.NO_WITHDRAW)
        now = self.clock()
        with self._transaction():
            self._bump(inst)
            self._log(inst.id, wf, inst.step, inst.round, "withdraw", actor, comment, target=wf.withdraw_to, now=now)
            after, _ = self._move(inst, wf, wf.withdraw_to, actor, now, state="withdrawn")
        return Outcome(inst.id, inst.step, after, "withdrawn")

    def resubmit(self, instance_id: int, actor: Actor, *, comment: str = "") -> Outcome:
        """The applicant sends a returned record back in: ``on_start`` is written
        again and the route resumes at the step that returned it
        (``resume: where_left``) or at ``start`` (``resume: restart``)."""
        inst, wf = self._instance(instance_id)
        if inst.state != "running":
            raise Refused(Label("流程已结束", "The workflow has finished"), wfc.FINISHED)
        if inst.started_by_id != actor.user_id:
            raise Refused(Label("只有申请人可以重新提交", "Only the applicant can resubmit"), wfc.ONLY_APPLICANT)
        if inst.step != APPLICANT:
            raise Refused(Label("该申请没有退回申请人，无需重新提交",
                                "The application is not returned to the applicant: nothing to resubmit"),
                          wfc.NOT_WITH_APPLICANT)
        target = wf.start
        if wf.resume == "where_left":
            target = self.session.execute(sa.select(self.actions.c.step).where(
                self.actions.c.instance_id == inst.id, self.actions.c.action == "return",
                self.actions.c.target_step == APPLICANT).order_by(self.actions.c.id.desc()).limit(1)).scalar()
            target = target if target and wf.has_step(target) else wf.start
        now = self.clock()
        with self._transaction():
            self._bump(inst)
            self._log(inst.id, wf, APPLICANT, inst.round, "resubmit", actor, comment, target=target, now=now)
            self._set_fields(wf, inst.entity, inst.record_id, wf.on_start, actor, now)
            self._enter(inst.id, wf, target, inst.round + 1, actor, now)
        return Outcome(inst.id, APPLICANT, target, "running")

    def return_targets(self, inst, wf: WorkflowMeta | None = None) -> list[str]:
        """Where a return from the current step may go: the applicant (when the
        workflow declares ``on_return_to_applicant``), then the steps passed on
        the path that led here, oldest first — never the current step, one
        ahead, or one a return left behind."""
        wf = wf or self.workflow_of(inst)
        if inst.state != "running" or not wf.has_step(inst.step):
            return []
        visited = self._visited(inst.id)
        path = visited[:visited.index(inst.step)] if inst.step in visited else visited
        steps = [k for k in path if wf.has_step(k) and not wf.step(k).is_end]
        return ([APPLICANT] if wf.on_return_to_applicant is not None else []) + steps

    def _to_applicant(self, inst, wf: WorkflowMeta, actor, now):
        """Back to the applicant to complete the file: no task for anyone, the
        record's ``on_return_to_applicant`` values written (its application state)."""
        self.session.execute(self.tasks.update().where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
            self.tasks.c.status.in_(("open", "waiting"))).values(status="closed", acted_at=now))
        self._set_fields(wf, inst.entity, inst.record_id, wf.on_return_to_applicant, actor, now)
        self.session.execute(self.instances.update().where(self.instances.c.id == inst.id).values(
            step=APPLICANT, round=inst.round + 1, step_entered_at=now))
        return APPLICANT, "running"

    # -- time limits ---------------------------------------------------------------
    def process_timeouts(self) -> int:
        """Remind, escalate or decide every overdue step; expired delegations go
        back to the delegator. Returns how many tasks were handled."""
        now = self.clock()
        handled = 0
        rows = self.session.execute(sa.select(self.tasks, self.instances.c.lock).join(
            self.instances, self.instances.c.id == self.tasks.c.instance_id).where(
            self.tasks.c.status == "open", self.instances.c.state == "running",
            sa.or_(sa.and_(self.tasks.c.due_at < now, self.tasks.c.reminded_at.is_(None)),
                   self.tasks.c.delegated_until < now))).all()
        for row in rows:
            task = self.session.execute(sa.select(self.tasks).where(self.tasks.c.id == row.id)).first()
            inst, wf = self._instance(task.instance_id)
            if inst.round != task.round or inst.state != "running" or task.status != "open":
                continue
            step = wf.step(inst.step)
            try:
                handled += self._timeout(task, inst, wf, step, now)
                self.session.commit()
            except (Conflict, Refused):
                self.session.rollback()
        return handled

    def _timeout(self, task, inst, wf, step, now) -> int:
        if task.delegated_until is not None and task.delegated_until < now and task.delegated_from_id:
            self._bump(inst)
            self._close_task(task, "closed", now)
            # the delegator's own task, which may itself be held on someone's behalf
            held = self.session.execute(sa.select(self.tasks).where(
                self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
                self.tasks.c.user_id == task.delegated_from_id, self.tasks.c.status == "delegated")
                .order_by(self.tasks.c.id.desc()).limit(1)).first()
            if task.delegated_from_id not in {t.user_id for t in self._open_tasks(inst)}:   # not asked again meanwhile
                self._add_task(inst, step.key, task.delegated_from_id, now, position=task.position, status="open",
                               due=task.due_at, delegated_from=held.delegated_from_id if held else None,
                               until=held.delegated_until if held else None,
                               added_by=held.added_by_id if held else None)
            self._log(inst.id, wf, inst.step, inst.round, "delegation_ended", SYSTEM_ACTOR, "", task_id=task.id, now=now)
            return 1
        self.session.execute(self.tasks.update().where(self.tasks.c.id == task.id).values(reminded_at=now))
        rule = step.on_timeout or "remind"
        if rule == "remind":
            self._log(inst.id, wf, inst.step, inst.round, "remind", SYSTEM_ACTOR, "", task_id=task.id, now=now)
        elif rule == "escalate" and not task.escalated:
            self._bump(inst)
            self.session.execute(self.tasks.update().where(self.tasks.c.instance_id == inst.id,
                                                           self.tasks.c.round == inst.round).values(escalated=True))
            position = self._max_position(inst)
            asked = {t.user_id for t in self._open_tasks(inst)}
            for uid in sorted(self._people(step.escalate_to, wf.entity, inst.record_id)
                              - {inst.started_by_id} - asked - set(self._excluded(inst, wf, step))):
                position += 1
                self._add_task(inst, step.key, uid, now, position=position, status="open")
            self._log(inst.id, wf, inst.step, inst.round, "escalate", SYSTEM_ACTOR, "", task_id=task.id, now=now)
        elif rule in ("approve", "reject"):
            self._bump(inst)
            self._log(inst.id, wf, inst.step, inst.round, f"auto_{rule}", SYSTEM_ACTOR, "", task_id=task.id, now=now)
            if rule == "approve":
                self._advance(inst, wf, step, SYSTEM_ACTOR, now)
            else:
                self._move(inst, wf, wf.reject_to, SYSTEM_ACTOR, now)
        return 1

    # -- reading ---------------------------------------------------------------------
    def instance_of(self, entity: str, record_id: int):
        """The record's latest instances, newest first (rows)."""
        return self.session.execute(sa.select(self.instances).where(
            self.instances.c.entity == entity, self.instances.c.record_id == record_id)
            .order_by(self.instances.c.id.desc())).all()

    def workflow_of(self, inst) -> WorkflowMeta:
        return _pinned(inst.definition, inst.digest)

    def open_tasks(self, user_id: int):
        """(task, instance) rows of the user's open tasks, oldest first."""
        return self.session.execute(sa.select(self.tasks, self.instances.c.workflow, self.instances.c.entity,
                                              self.instances.c.record_id, self.instances.c.definition,
                                              self.instances.c.digest)
                                    .join(self.instances, self.instances.c.id == self.tasks.c.instance_id)
                                    .where(self.tasks.c.user_id == user_id, self.tasks.c.status == "open",
                                           self.instances.c.state == "running")
                                    .order_by(self.tasks.c.created_at, self.tasks.c.id)).all()

    def done_by(self, user_id: int, limit: int = 200):
        return self.session.execute(sa.select(self.actions, self.instances.c.entity, self.instances.c.record_id,
                                              self.instances.c.workflow, self.instances.c.definition,
                                              self.instances.c.digest)
                                    .join(self.instances, self.instances.c.id == self.actions.c.instance_id)
                                    .where(self.actions.c.user_id == user_id,
                                           self.actions.c.action.notin_(("start",)))
                                    .order_by(self.actions.c.id.desc()).limit(limit)).all()

    def timeline(self, instance_id: int, viewer_id=_EVERYONE) -> list[Shown]:
        """The action log in order, as ``viewer_id`` may see it: while a secret
        meeting is open, other members' votes have no vote (``target_step``) and
        no comment, and ``hidden`` is true. Without a viewer nothing is hidden
        (the audit's view). The one place the secret-ballot rule is applied."""
        rows = self.session.execute(sa.select(self.actions).where(self.actions.c.instance_id == instance_id)
                                    .order_by(self.actions.c.id)).all()
        secret = self._secrecy(instance_id) if viewer_id is not _EVERYONE else None
        out = []
        for a in rows:
            entry = Shown(a._mapping, hidden=False)
            if secret and a.action == "vote" and secret(a.step, a.round) and a.user_id != viewer_id:
                entry.update(comment=None, target_step=None, hidden=True)
            out.append(entry)
        return out

    def meeting_votes(self, instance_id: int, viewer_id: int | None = None) -> list[Shown]:
        """Votes of the instance's meetings as ``viewer_id`` may see them: while
        a secret meeting is open a viewer sees only their own vote; the others
        have ``hidden`` true and no vote or comment."""
        secret = self._secrecy(instance_id)
        rows = self.session.execute(sa.select(self.votes).where(self.votes.c.instance_id == instance_id)
                                    .order_by(self.votes.c.id)).all()
        out = []
        for v in rows:
            entry = Shown(v._mapping, hidden=False)
            if secret(v.step, v.round) and v.user_id != viewer_id:
                entry.update(vote=None, comment=None, hidden=True)
            out.append(entry)
        return out

    def _secrecy(self, instance_id: int):
        """(step, round) -> whether that meeting is secret and still open."""
        inst, wf = self._instance(instance_id)

        def secret(step_key: str, round_: int) -> bool:
            step = wf.step(step_key) if wf.has_step(step_key) else None
            return (step is not None and step.committee is not None and step.committee.secret
                    and inst.state == "running" and inst.step == step_key and inst.round == round_)
        return secret

    def tasks_of(self, instance_id: int, round_: int | None = None):
        query = sa.select(self.tasks).where(self.tasks.c.instance_id == instance_id)
        if round_ is not None:
            query = query.where(self.tasks.c.round == round_)
        return self.session.execute(query.order_by(self.tasks.c.round, self.tasks.c.position, self.tasks.c.id)).all()

    def path_ahead(self, inst) -> list[str]:
        """Step keys the record would pass from its current step if every
        transition condition is read as it holds now (first match wins)."""
        wf = self.workflow_of(inst)
        values = self.record_values(inst.entity, inst.record_id)
        path, key, seen = [], inst.step, set()
        while key and key not in seen and wf.has_step(key):
            seen.add(key)
            step = wf.step(key)
            if step.is_end:
                break
            key = self._route(wf, step, values)
            if key:
                path.append(key)
        return path

    def record_values(self, entity: str, record_id: int) -> dict:
        """Plain values of the record and, as ``ref__field``, of the records its references point at."""
        em = self.meta.entity(entity)
        row = self._record(entity, record_id)
        values = row_values(em, row)
        for f in em.column_fields:
            if f.type == "reference" and row[f.column_name] is not None:
                target = self.meta.entity(f.target)
                table = self.models.table(f.target)
                ref = self.session.execute(sa.select(table).where(table.c.id == row[f.column_name])).mappings().first()
                if ref is not None:
                    values.update(row_values(target, ref, prefix=f.name))
        return plain_values(values)

    # -- internals ---------------------------------------------------------------------
    def _record(self, entity: str, record_id):
        table = self.models.table(entity)
        if type(record_id) is not int or not 0 < record_id <= 2**31 - 1:
            raise NotFound(entity, record_id)
        row = self.session.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
        if row is None:
            raise NotFound(entity, record_id)
        return row

    def _running(self, entity, record_id):
        return self.session.execute(sa.select(self.instances).where(
            self.instances.c.entity == entity, self.instances.c.record_id == record_id,
            self.instances.c.state == "running")).all()

    def _instance(self, instance_id):
        if type(instance_id) is not int or not 0 < instance_id <= 2**31 - 1:
            raise NotFound("workflow", instance_id)
        inst = self.session.execute(sa.select(self.instances).where(self.instances.c.id == instance_id)).first()
        if inst is None:
            raise NotFound("workflow", instance_id)
        return inst, _pinned(inst.definition, inst.digest)

    def _my_task(self, task_id, actor: Actor):
        task = self.session.execute(sa.select(self.tasks).where(self.tasks.c.id == task_id)).first() \
            if type(task_id) is int and 0 < task_id <= 2**31 - 1 else None
        if task is None:
            raise NotFound("task", task_id)
        inst, wf = self._instance(task.instance_id)
        if task.user_id != actor.user_id:
            raise Refused(Label("这不是您的待办", "This task is not yours"), wfc.NOT_YOUR_TASK)
        if actor.user_id is not None and actor.user_id == inst.started_by_id:
            raise Refused(Label("不能审批自己发起的申请", "You cannot approve your own application"),
                          wfc.OWN_APPLICATION)
        if inst.state != "running" or task.status != "open" or task.step != inst.step or task.round != inst.round:
            raise Refused(Label("该待办已处理或流程已前进", "This task is done or the workflow has moved on"),
                          wfc.MOVED_ON)
        why = self._excluded(inst, wf, wf.step(inst.step)).get(actor.user_id)
        if why is not None:
            raise Refused(_EXCLUDED_MESSAGES[why], why)
        return task, inst, wf

    def _bump(self, inst) -> None:
        """Compare-and-set on the instance: the one guard that makes concurrent actions safe."""
        done = self.session.execute(self.instances.update().where(
            self.instances.c.id == inst.id, self.instances.c.lock == inst.lock).values(lock=inst.lock + 1))
        if done.rowcount != 1:
            raise Conflict(Label("其他人刚刚处理了该流程，请刷新后再试", "Someone else has just acted on this workflow: reload and try again"))

    def _close_task(self, task, status: str, now) -> None:
        self.session.execute(self.tasks.update().where(self.tasks.c.id == task.id).values(status=status, acted_at=now))

    def _open_tasks(self, inst) -> list:
        return self.session.execute(sa.select(self.tasks).where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
            self.tasks.c.status.in_(("open", "waiting")))).all()

    def _step_done(self, inst, step: StepMeta) -> bool:
        rows = self.session.execute(sa.select(self.tasks.c.status).where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
            self.tasks.c.status.notin_(("delegated", "closed")))).all()
        approved = sum(r.status == "approved" for r in rows)
        total = len(rows)
        if step.mode == "any":
            return approved >= 1
        if step.mode == "ratio":
            return total > 0 and share(approved, total) >= step.ratio
        return approved == total                     # all, sequence

    def _open_next_in_sequence(self, inst, step: StepMeta, now) -> None:
        if step.mode != "sequence":
            return
        nxt = self.session.execute(sa.select(self.tasks.c.id).where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
            self.tasks.c.status == "waiting").order_by(self.tasks.c.position, self.tasks.c.id).limit(1)).scalar()
        if nxt is not None:
            self.session.execute(self.tasks.update().where(self.tasks.c.id == nxt).values(status="open", created_at=now))

    def _advance(self, inst, wf: WorkflowMeta, step: StepMeta, actor, now):
        """Leave ``step`` forward: check what it requires, take the first transition that holds."""
        values = self.record_values(wf.entity, inst.record_id)
        if step.requires:
            cond = _conditions(wf, self.meta).get(workflow_key(wf.code, f"{step.key}.requires"))
            if cond is not None and not cond.holds(values, today=now.date()):
                raise Refused(step.requires_message or Label(f"条件未满足：{step.requires}",
                                                             f"Not yet: {step.requires} does not hold"), wfc.REQUIRES)
        target = self._route(wf, step, values)
        if target is None:
            raise Refused(Label("没有可走的下一环节（所有流转条件都不成立）",
                                "No next step applies (every transition condition is false)"), wfc.NO_ROUTE)
        return self._move(inst, wf, target, actor, now)

    def _route(self, wf: WorkflowMeta, step: StepMeta, values) -> str | None:
        conditions = _conditions(wf, self.meta)
        for i, t in enumerate(step.next):
            cond = conditions.get(workflow_key(wf.code, f"{step.key}.next{i}"))
            try:
                if cond is None or cond.holds(values, today=self.clock().date()):
                    return t.to
            except ExprError:
                continue
        return None

    def _move(self, inst, wf: WorkflowMeta, target: str, actor, now, state: str | None = None):
        """Close this step's tasks and enter ``target`` (an end finishes the instance)."""
        self.session.execute(self.tasks.update().where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
            self.tasks.c.status.in_(("open", "waiting"))).values(status="closed", acted_at=now))
        new_round = inst.round + 1
        self._enter(inst.id, wf, target, new_round, actor, now, state=state)
        step = wf.step(target)
        return target, (state or step.outcome) if step.is_end else "running"

    def _enter(self, instance_id: int, wf: WorkflowMeta, key: str, round_: int, actor, now, state=None) -> None:
        step = wf.step(key)
        inst = self.session.execute(sa.select(self.instances).where(self.instances.c.id == instance_id)).first()
        self._set_fields(wf, inst.entity, inst.record_id, step.set, actor, now)
        if step.actions:
            run_actions(step.actions, ActionContext(
                RecordService(self.models, self.session, actor, clock=lambda: now),
                inst.entity, inst.record_id, actor, now))
        if step.is_end:
            self._finish(inst, state or step.outcome, key, now, round_=round_)
            return
        people = self._people(step.assignees, wf.entity, inst.record_id)
        if step.kind == "committee" and step.committee and step.committee.chairman:
            people |= self._people(step.committee.chairman, wf.entity, inst.record_id)
        people.discard(inst.started_by_id)           # nobody approves their own application
        if not people:
            raise Refused(Label(f"环节“{step.label.zh}”没有可以处理的人员，请先为相应角色分配用户",
                                f"Nobody can act at step '{step.label.en}': give its role to a user first"),
                          wfc.NOBODY)
        excluded = self._excluded(inst, wf, step)
        if not people - set(excluded):
            raise Refused(Label(f"环节“{step.label.zh}”没有可以处理的人员：能处理的人都已在前面环节签过意见或需回避，"
                                f"请为相应角色增加人员",
                                f"Nobody is left to act at step '{step.label.en}': everyone who could has signed "
                                f"an earlier level (separate_from) or is recused; give its role to another user"),
                          wfc.NOBODY_LEFT)
        people -= set(excluded)
        due = now + dt.timedelta(hours=step.time_limit_hours) if step.time_limit_hours else None
        for position, uid in enumerate(sorted(people)):
            status = "waiting" if step.mode == "sequence" and position > 0 else "open"
            self._add_task(inst, key, uid, now, position=position, status=status, due=due, round_=round_)
        self.session.execute(self.instances.update().where(self.instances.c.id == instance_id).values(
            step=key, round=round_, step_entered_at=now))

    def _finish(self, inst, state: str, key: str, now, round_=None) -> None:
        self.session.execute(self.instances.update().where(self.instances.c.id == inst.id).values(
            state=state, step=key, round=round_ if round_ is not None else inst.round + 1,
            step_entered_at=now, finished_at=now))
        self.session.execute(self.tasks.update().where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.status.in_(("open", "waiting")))
            .values(status="closed", acted_at=now))

    def _decide_meeting(self, inst, wf: WorkflowMeta, step: StepMeta, actor, now):
        rule = step.committee
        votes = self.session.execute(sa.select(self.votes).where(
            self.votes.c.instance_id == inst.id, self.votes.c.round == inst.round)).all()
        invited = self.session.execute(sa.select(sa.func.count(sa.distinct(self.tasks.c.user_id))).where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round,
            self.tasks.c.status.notin_(("delegated", "closed")))).scalar_one()
        result = meeting_result(rule, invited, [(v.vote, v.chairman) for v in votes])
        self._log(inst.id, wf, inst.step, inst.round, MEETING_ACTIONS[result], SYSTEM_ACTOR,
                  f"invited {invited}, votes {len(votes)}", now=now)
        if result == "passed":
            return self._advance(inst, wf, step, actor, now)
        if result in ("deferred", "no_quorum"):
            return self._move(inst, wf, step.key, actor, now)       # a later meeting: a new round
        return self._move(inst, wf, wf.reject_to, actor, now)

    def _visited(self, instance_id: int) -> list[str]:
        """The steps passed on the way to the current one: the entries into
        steps (rounds) in order, cut back when a step is entered again (a
        return, a new meeting), so a step a return left behind is not a
        target any more (that would skip the steps in between)."""
        rows = self.session.execute(sa.select(self.tasks.c.round, self.tasks.c.step).distinct()
                                    .where(self.tasks.c.instance_id == instance_id)
                                    .order_by(self.tasks.c.round)).all()
        out: list[str] = []
        for r in rows:
            if r.step in out:
                del out[out.index(r.step) + 1:]
            else:
                out.append(r.step)
        return out

    def _max_position(self, inst) -> int:
        return self.session.execute(sa.select(sa.func.coalesce(sa.func.max(self.tasks.c.position), 0)).where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round)).scalar_one()

    def _path_users(self, entity: str, rows, parts: list[str]) -> set[int]:
        """The users a recusal path names from ``rows``: through reference and
        children fields (each hop one query) to a user field; an unknown name
        (an older version's path) names nobody."""
        em = self.meta.entities.get(entity)
        if em is None or not parts or not em.has_field(parts[0]) or not rows:
            return set()
        f = em.field(parts[0])
        if f.type == "user" and len(parts) == 1:
            return {r[f.column_name] for r in rows if r[f.column_name] is not None}
        if f.type not in ("reference", "children") or f.target not in self.meta.entities:
            return set()
        table = self.models.table(f.target)
        if f.type == "reference":
            ids = {r[f.column_name] for r in rows if r[f.column_name] is not None}
            where = table.c.id.in_(ids)
        else:
            ids = {r["id"] for r in rows}
            where = table.c.parent_id.in_(ids)
        if not ids:
            return set()
        found = self.session.execute(sa.select(table).where(where)).mappings().all()
        return self._path_users(f.target, found, parts[1:])

    def _check_colleague(self, user_id, inst, task, wf: WorkflowMeta, step: StepMeta) -> None:
        def refuse(zh, en):
            raise Refused(Label(zh, en), wfc.BAD_COLLEAGUE, field="user_id")
        if type(user_id) is not int or user_id == task.user_id:
            refuse("请选择另一位同事", "Choose another colleague")
        if user_id == inst.started_by_id:
            refuse("不能交给申请人本人", "The applicant cannot approve their own application")
        exists = self.session.execute(sa.select(USER_TABLE.c.id).where(USER_TABLE.c.id == user_id,
                                                                       USER_TABLE.c.active.is_(True))).first()
        if exists is None:
            refuse("用户不存在或已停用", "No such active user")
        why = self._excluded(inst, wf, step).get(user_id)
        if why is not None:
            refuse("该同事已在前面环节签过意见或需回避，不能处理本环节",
                   "That colleague signed an earlier level or is recused: they cannot act at this step")
        busy = self.session.execute(sa.select(self.tasks.c.id).where(
            self.tasks.c.instance_id == inst.id, self.tasks.c.round == inst.round, self.tasks.c.user_id == user_id,
            self.tasks.c.status.in_(("open", "waiting")))).first()
        if busy is not None:
            refuse("该同事已在本环节", "That colleague is already asked at this step")

    def _add_task(self, inst, step: str, user_id: int, now, *, position: int, status: str, due=None,
                  delegated_from=None, until=None, added_by=None, round_=None) -> None:
        self.session.execute(self.tasks.insert().values(
            instance_id=inst.id, step=step, round=inst.round if round_ is None else round_, position=position,
            user_id=user_id, status=status, created_at=now, due_at=due, escalated=False,
            delegated_from_id=delegated_from, delegated_until=until, added_by_id=added_by))

    def _people(self, who: Assignees | None, entity: str, record_id: int) -> set[int]:
        """Active users holding one of the roles, and the users named in the record's user fields."""
        if not who:
            return set()
        ids: set[int] = set()
        if who.roles:
            query = (sa.select(USER_ROLE_TABLE.c.user_id)
                     .select_from(USER_ROLE_TABLE.join(ROLE_TABLE, ROLE_TABLE.c.id == USER_ROLE_TABLE.c.role_id)
                                  .join(USER_TABLE, USER_TABLE.c.id == USER_ROLE_TABLE.c.user_id))
                     .where(ROLE_TABLE.c.name.in_(who.roles), USER_TABLE.c.active.is_(True)))
            ids |= {r[0] for r in self.session.execute(query)}
        if who.fields:
            row = self._record(entity, record_id)
            em = self.meta.entity(entity)
            ids |= {row[em.field(f).column_name] for f in who.fields
                    if em.has_field(f) and row[em.field(f).column_name] is not None}
        return ids

    def _chairmen(self, wf, step: StepMeta, inst) -> set[int]:
        if step.committee is None or step.committee.chairman is None:
            return set()
        return self._people(step.committee.chairman, wf.entity, inst.record_id) - set(self._excluded(inst, wf, step))

    def _excluded(self, inst, wf: WorkflowMeta, step: StepMeta) -> dict[int, str]:
        """user id -> why they may not act at ``step`` of this instance (a WF code):
        they approved or voted at a step it is ``separate_from`` (anywhere in the
        instance's history, so a return or a restart does not wash it out), or a
        ``recuse`` user field of the record names them."""
        out: dict[int, str] = {}
        if step.recuse or step.recuse_paths:
            row = self._record(wf.entity, inst.record_id)
            for path in (*step.recuse, *step.recuse_paths):
                for uid in self._path_users(wf.entity, [row], path.split(".")):
                    out[uid] = wfc.RECUSED
        if step.separate_from:
            acted = self.session.execute(sa.select(self.actions.c.user_id).distinct().where(
                self.actions.c.instance_id == inst.id, self.actions.c.step.in_(step.separate_from),
                self.actions.c.action.in_(("approve", "vote")), self.actions.c.user_id.is_not(None))).scalars()
            for uid in acted:
                out[uid] = wfc.SEPARATED
        return out

    def _set_fields(self, wf: WorkflowMeta, entity: str, record_id: int, values, actor, now) -> None:
        if values:
            RecordService(self.models, self.session, actor, clock=lambda: now).assign(entity, record_id, dict(values))

    def _log(self, instance_id, wf: WorkflowMeta, step: str, round_: int, action: str, actor: Actor, comment: str,
             *, task_id=None, target=None, now) -> None:
        _check_text(comment)
        self.session.execute(self.actions.insert().values(
            instance_id=instance_id, task_id=task_id, step=step, round=round_, action=action, target_step=target,
            user_id=actor.user_id, username=actor.username[:256], comment=(comment or "")[:4000] or None, at=now,
            workflow_version=wf.version[:32], digest=wf.digest))


def _check_text(comment: str | None) -> None:
    """Comments are stored as text: control characters (NUL breaks PostgreSQL) are refused."""
    if comment and CONTROL_CHARS.search(comment):
        raise Refused(Label("意见含有控制字符", "The comment contains control characters"), wfc.COMMENT_REQUIRED,
                      field="comment")


def meeting_result(rule, invited: int, votes: list[tuple[str, bool]]) -> str:
    """passed | rejected | vetoed | deferred | no_quorum, from the votes cast.

    Quorum: votes cast ÷ invited ≥ quorum. Present = agree + disagree (+ defer
    when defer counts as present). Passed: agree ÷ present ≥ pass_share.
    Otherwise deferred when defer ÷ votes cast ≥ defer_share, else rejected.
    A chairman's disagree with ``veto`` rejects whatever the count. Shares
    are compared at 4 decimal places (see ``share``)."""
    cast = len(votes)
    if invited == 0 or cast == 0 or share(cast, invited) < rule.quorum:
        return "no_quorum"
    if rule.veto and any(vote == "disagree" and chair for vote, chair in votes):
        return "vetoed"
    agree = sum(v == "agree" for v, _ in votes)
    defer = sum(v == "defer" for v, _ in votes)
    present = cast if rule.defer_counts_present else cast - defer
    if present and share(agree, present) >= rule.pass_share:
        return "passed"
    if share(defer, cast) >= rule.defer_share:
        return "deferred"
    return "rejected"


SHARE_PLACES = Decimal("0.0001")


def share(part: int, whole: int) -> Decimal:
    """``part ÷ whole`` rounded half-up to 4 places, as thresholds are written:
    a pass share of 0.6667 means two thirds, so 2 of 3 (0.666…) reaches it.
    (No share of a body under 100 people lies within 0.00005 below another
    threshold, so rounding never lets a real minority through.)"""
    return (Decimal(part) / Decimal(whole)).quantize(SHARE_PLACES, rounding=ROUND_HALF_UP)


@functools.lru_cache(maxsize=256)
def _pinned(definition: str, digest: str) -> WorkflowMeta:
    return workflow_from_dict(json.loads(definition), digest)


_COMPILED: dict[tuple[str, str], dict] = {}


def _conditions(wf: WorkflowMeta, meta: Meta) -> dict:
    """The compiled conditions of this workflow version: the loaded ones when
    the version is current, else compiled once from the stored definition."""
    current = meta.workflows.get(wf.code)
    if current is not None and current.digest == wf.digest:
        return meta.expressions
    key = (wf.digest, meta.digest)
    if key not in _COMPILED:
        compiled, errors = compile_workflow(meta, wf)
        if errors:
            raise Refused(Label(f"流程旧版本的条件已不适用于当前数据结构：{errors[0].message}",
                                f"A condition of this older workflow version no longer fits the data: {errors[0].message}"),
                          wfc.OLD_VERSION)
        _COMPILED[key] = compiled
    return _COMPILED[key]
