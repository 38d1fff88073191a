"""Approval screens: my tasks (我的待办) and done by me, the workflow panel on a
record's page (current step, action buttons, votes, timeline, path ahead,
diagram), the workflow diagrams, and the form posts that drive the engine.

Thin: every decision is the engine's (engines/workflow.py); refusals come
back as flashed messages in the user's language and the page is shown again.
"""
from __future__ import annotations

import datetime as dt

from flask import abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from danbao.engines.records import NotFound, ValidationFailed
from danbao.engines.refusals import Refusal
from danbao.engines.users import active_users, user_names
from danbao.engines.refusals import Refusal
from danbao.engines.workflow import APPLICANT, APPLICANT_LABEL, Refused, WorkflowEngine
from danbao.meta.model import Label, StepMeta
from danbao.web.scope import access_for
from danbao.web.access import can, login_redirect
from danbao.web.diagram import render_svg
from danbao.web.i18n import current_lang
from danbao.web.views import actor, runtime

MENU_LABEL = Label("我的待办", "My tasks")
TEXT = {
    "my_tasks": ("我的待办", "My tasks"), "done_by_me": ("我的已办", "Done by me"),
    "workflows": ("审批流程", "Workflows"), "workflow": ("流程", "Workflow"), "step": ("环节", "Step"),
    "record": ("记录", "Record"), "received": ("到达时间", "Received"), "due": ("时限", "Due"),
    "overdue": ("已超时", "overdue"), "no_tasks": ("暂无待办", "Nothing to do"), "action": ("操作", "Action"),
    "comment": ("意见", "Comment"), "when": ("时间", "When"), "who": ("处理人", "Who"),
    "approval": ("审批", "Approval"), "current_step": ("当前环节", "Current step"), "state": ("状态", "State"),
    "running": ("审批中", "In progress"), "approved": ("已通过", "Approved"), "rejected": ("已否决", "Rejected"),
    "withdrawn": ("已撤回", "Withdrawn"), "path_ahead": ("后续环节", "Steps ahead"),
    "timeline": ("审批记录", "Timeline"), "start": ("提交审批", "Submit"), "approve": ("同意", "Approve"),
    "reject": ("否决", "Reject"), "return": ("退回", "Return"), "return_to": ("退回到", "Return to"),
    "delegate": ("转办", "Delegate"), "add_approver": ("加签", "Add approver"), "colleague": ("同事", "Colleague"),
    "until": ("委托至", "Until"), "vote": ("表决", "Vote"), "agree": ("同意", "Agree"),
    "disagree": ("不同意", "Disagree"), "defer": ("续议", "Defer"), "votes": ("表决情况", "Votes"),
    "hidden": ("（保密，会议结束后公开）", "(secret until the meeting closes)"), "chairman": ("主任委员", "Chairman"),
    "close_meeting": ("结束会议并计票", "Close the meeting and count"), "withdraw": ("撤回申请", "Withdraw"),
    "waiting_for": ("待处理人", "Waiting for"), "task_status": ("状态", "Status"), "done": ("已提交", "Done"),
    "comment_required": ("意见（否决、退回、表决时必填）", "Comment (required to reject, return or vote)"),
    "diagram": ("流程图", "Diagram"), "version": ("版本", "Version"), "started_by": ("发起人", "Submitted by"),
    "st_open": ("待处理", "open"), "st_waiting": ("排队中", "waiting"), "st_approved": ("已同意", "approved"),
    "st_rejected": ("已否决", "rejected"), "st_returned": ("已退回", "returned"), "st_voted": ("已表决", "voted"),
    "st_delegated": ("已转办", "delegated"), "st_closed": ("已关闭", "closed"),
    "act_start": ("提交", "submitted"), "act_approve": ("同意", "approved"), "act_reject": ("否决", "rejected"),
    "act_return": ("退回", "returned"), "act_delegate": ("转办", "delegated"), "act_add_approver": ("加签", "added an approver"),
    "act_comment": ("意见", "commented"), "act_vote": ("表决", "voted"), "act_withdraw": ("撤回", "withdrew"),
    "act_close_meeting": ("结束会议", "closed the meeting"), "act_meeting_passed": ("会议通过", "meeting passed"),
    "act_meeting_rejected": ("会议未通过", "meeting rejected"), "act_meeting_vetoed": ("主任委员否决", "vetoed by the chairman"),
    "act_meeting_deferred": ("续议，提交下次会议", "deferred to a later meeting"),
    "act_meeting_noquorum": ("未达法定人数，下次再议", "no quorum: to a later meeting"),
    "act_remind": ("超时提醒", "reminded (overdue)"), "act_escalate": ("超时上报", "escalated (overdue)"),
    "act_auto_approve": ("超时自动通过", "approved automatically (overdue)"),
    "act_auto_reject": ("超时自动否决", "rejected automatically (overdue)"),
    "act_delegation_ended": ("委托到期收回", "delegation ended"), "saved": ("已提交", "Done"),
    "resubmit": ("补充完毕，重新提交", "Resubmit"), "act_resubmit": ("补充资料后重新提交", "resubmitted"),
    "with_applicant_short": ("申请人补充资料", "the applicant"),
    "with_applicant": ("已退回申请人补充资料，补充后请重新提交", "Returned to the applicant to complete the file: resubmit when done"),
}

#: what the panel shows as the current step of a record returned to its applicant
_APPLICANT_STEP = StepMeta(key=APPLICANT, label=APPLICANT_LABEL)


def tr(key: str) -> str:
    zh, en = TEXT.get(key, (key, key))
    return en if current_lang() == "en" else zh


def engine() -> WorkflowEngine:
    rt = runtime()
    return WorkflowEngine(rt.session, rt.models, rt.meta)


def task_count() -> int:
    """Open tasks of the signed-in user, for the menu bar (one count query)."""
    if not current_user.is_authenticated:
        return 0
    import sqlalchemy as sa
    rt = current_app.extensions["danbao"]
    eng = WorkflowEngine(rt.session, rt.models, rt.meta)
    try:
        return rt.session.execute(sa.select(sa.func.count()).select_from(eng.tasks.join(
            eng.instances, eng.instances.c.id == eng.tasks.c.instance_id)).where(
            eng.tasks.c.user_id == current_user.id, eng.tasks.c.status == "open",
            eng.instances.c.state == "running")).scalar_one()
    except Exception:      # a badge must never break a page
        rt.session.rollback()
        return 0


def register_badge(app) -> None:
    app.context_processor(lambda: {"danbao_task_badge": task_count, "danbao_wf_tr": tr})


def _record_link(rt, entity: str, record_id: int) -> tuple[str, str]:
    em = rt.meta.entities.get(entity)
    if em is None:
        return f"{entity} #{record_id}", "#"
    obj = rt.session.get(rt.models.cls(entity), record_id)
    title = str(obj) if obj is not None else f"#{record_id}"
    return f"{em.label.get(current_lang())} · {title}", url_for("EntityView.show", entity=entity, record_id=record_id)


def _back(entity: str, record_id: int):
    return redirect(url_for("EntityView.show", entity=entity, record_id=record_id) + "#workflow")


def workflow_panel(entity: str, record_id: int) -> dict | None:
    """What the record page shows about approvals, or None when no workflow is bound to the entity."""
    rt = runtime()
    if not any(w.entity == entity for w in rt.meta.workflows.values()):
        return None
    eng = engine()
    lang = current_lang()
    user_id = current_user.id
    instances = []
    for inst in eng.instance_of(entity, record_id)[:5]:
        wf = eng.workflow_of(inst)
        tasks = eng.tasks_of(inst.id, inst.round)
        mine = next((t for t in tasks if t.user_id == user_id and t.status == "open"), None) \
            if inst.state == "running" else None
        step = wf.step(inst.step) if wf.has_step(inst.step) else _APPLICANT_STEP
        # the engine's targets: steps passed on the path that led here, and the applicant — never one ahead
        targets = [(k, APPLICANT_LABEL if k == APPLICANT else wf.step(k).label)
                   for k in eng.return_targets(inst, wf)] if mine is not None else []
        passed = {t.step for t in eng.tasks_of(inst.id) if t.step != inst.step}
        chair = inst.state == "running" and step.kind == "committee" and user_id in eng._chairmen(wf, step, inst)
        with_applicant = inst.state == "running" and inst.step == APPLICANT
        instances.append({
            "row": inst, "wf": wf, "step": step, "tasks": tasks, "mine": mine, "targets": targets,
            "chair": chair, "path": eng.path_ahead(inst) if inst.state == "running" else [],
            "timeline": eng.timeline(inst.id, user_id), "votes": eng.meeting_votes(inst.id, user_id),
            "with_applicant": with_applicant,
            "can_resubmit": with_applicant and inst.started_by_id == user_id,
            "can_withdraw": inst.state == "running" and inst.started_by_id == user_id,
            "svg": Markup(render_svg(wf, lang, current=inst.step, passed=passed, finished=inst.state != "running")),
        })
    startable = []
    if can("write", entity):
        startable = [w for w in eng.candidates(entity, record_id) if eng.may_start(w, record_id, user_id)]
    names = user_names(rt.session)
    return {"instances": instances, "startable": startable, "names": names,
            "colleagues": [(uid, name) for uid, name in active_users(rt.session) if uid != user_id],
            "tr": tr, "csrf_token": generate_csrf, "entity": entity, "record_id": record_id}


class WorkflowView(BaseView):
    route_base = "/workflows"
    default_view = "tasks"
    base_permissions = []

    def _page(self, template, **kw):
        lang = current_lang()
        return self.render_template(template, tr=tr, lang=lang, label=lambda x: x.get(lang) if x else "",
                                    base_template=current_app.appbuilder.base_template,
                                    appbuilder=current_app.appbuilder, **kw)

    # -- lists ----------------------------------------------------------------
    @expose("/tasks/")
    def tasks(self):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        rt = runtime()
        eng = engine()
        now = dt.datetime.now()
        rows = []
        for t in eng.open_tasks(current_user.id):
            wf = eng.workflow_of(t)
            title, link = _record_link(rt, t.entity, t.record_id)
            rows.append({"task": t, "wf": wf, "step": wf.step(t.step) if wf.has_step(t.step) else None,
                         "title": title, "link": link, "overdue": t.due_at is not None and t.due_at < now})
        done = []
        for a in eng.done_by(current_user.id, limit=100):
            wf = eng.workflow_of(a)
            title, link = _record_link(rt, a.entity, a.record_id)
            done.append({"a": a, "wf": wf, "step": wf.step(a.step) if wf.has_step(a.step)
                         else (_APPLICANT_STEP if a.step == APPLICANT else None),
                         "title": title, "link": link})
        return self._page("danbao/tasks.html", rows=rows, done=done, tab=request.args.get("tab", "open"))

    @expose("/")
    def index(self):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        lang = current_lang()
        wfs = [(w, Markup(render_svg(w, lang))) for w in runtime().meta.workflows.values()
               if can("read", w.entity)]
        return self._page("danbao/workflows.html", workflows=wfs)

    # -- actions ----------------------------------------------------------------
    def _run(self, entity: str, record_id: int, call):
        try:
            call()
        except ValidationFailed as exc:
            runtime().session.rollback()
            flash("; ".join(exc.messages(current_lang()).values()), "danger")
        except NotFound:
            runtime().session.rollback()
            abort(404)
        except Refusal as exc:                 # the engine's coded refusal (or what a step requires), in the user's language
            runtime().session.rollback()
            flash(exc.message.get(current_lang()), "danger")
        else:
            flash(tr("saved"), "success")
        return _back(entity, record_id)

    def _signed_in_record(self, entity: str, record_id: int, action: str = "read"):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        if entity not in runtime().meta.entities:
            abort(404)
        if not can(action, entity):
            abort(403)
        access = access_for(current_user)       # data permissions: out of read scope, no such record
        if access is not None and not access.allows(entity, record_id, "read"):
            abort(404)
        if access is not None and action != "read" and not access.allows(entity, record_id, action):
            abort(403)
        return None

    @expose("/start/<entity>/<int:record_id>", methods=["POST"])
    def start(self, entity, record_id):
        resp = self._signed_in_record(entity, record_id, "write")
        if resp:
            return resp
        code = request.form.get("workflow", "")
        return self._run(entity, record_id, lambda: engine().start(entity, record_id, code, actor(),
                                                                   comment=request.form.get("comment", "")))

    @expose("/task/<int:task_id>", methods=["POST"])
    def act(self, task_id):
        if not current_user.is_authenticated:
            return login_redirect()
        eng = engine()
        inst = self._instance_of_task(eng, task_id)
        form = request.form
        action = form.get("action", "")
        until = None
        if form.get("until"):
            try:
                until = dt.datetime.fromisoformat(form["until"]).replace(tzinfo=None)
            except ValueError:
                until = None
        user_id = int(form["user_id"]) if form.get("user_id", "").isdigit() else None

        def call():
            if action in ("agree", "disagree", "defer"):
                eng.vote(task_id, action, actor(), comment=form.get("comment", ""))
            else:
                eng.act(task_id, action, actor(), comment=form.get("comment", ""),
                        target_step=form.get("target_step") or None, user_id=user_id, until=until)
        return self._run(inst.entity, inst.record_id, call)

    @expose("/instance/<int:instance_id>/<what>", methods=["POST"])
    def instance(self, instance_id, what):
        if not current_user.is_authenticated:
            return login_redirect()
        eng = engine()
        try:
            inst, _wf = eng._instance(instance_id)
        except NotFound:
            abort(404)
        comment = request.form.get("comment", "")
        if what == "withdraw":
            return self._run(inst.entity, inst.record_id, lambda: eng.withdraw(instance_id, actor(), comment=comment))
        if what == "resubmit":
            return self._run(inst.entity, inst.record_id, lambda: eng.resubmit(instance_id, actor(), comment=comment))
        if what == "close":
            return self._run(inst.entity, inst.record_id,
                             lambda: eng.close_meeting(instance_id, actor(), comment=comment))
        abort(404)

    def _instance_of_task(self, eng, task_id):
        import sqlalchemy as sa
        row = eng.session.execute(sa.select(eng.instances.c.entity, eng.instances.c.record_id).join(
            eng.tasks, eng.tasks.c.instance_id == eng.instances.c.id).where(eng.tasks.c.id == task_id)).first()
        if row is None:
            abort(404)
        return row


