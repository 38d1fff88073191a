"""REST for approvals, on the one API blueprint (``web/api.py``).

``GET  /api/v1/tasks/``                         — the caller's open tasks;
``GET  /api/v1/tasks/done``                     — what the caller did, newest first (``?limit=``);
``GET  /api/v1/<entity>/<id>/workflow``         — the record's approvals (read permission);
``POST /api/v1/<entity>/<id>/workflow``         — start one ``{"workflow", "comment"}`` (write permission);
``POST /api/v1/tasks/<id>/actions``             — approve / reject / return / delegate / add_approver / comment;
``POST /api/v1/tasks/<id>/vote``                — a committee vote, signed with a comment;
``POST /api/v1/workflow-instances/<id>/withdraw``, ``…/resubmit`` and ``…/close-meeting`` — ``{"comment"}``.

Every rule is the engine's (``engines/workflow.py``); this layer checks the
shape of the body (types and lengths: 422 per field, code RC001), runs one
engine call and answers its refusal by the refusal's code — never by its
words: the code's kind gives the status (forbidden 403, invalid 422 with
``errors: {field: message}``, conflict 409, not found 404) and the JSON
carries ``code``. The session is rolled back on every refusal. Secret votes
come from the engine already hidden for the caller (``timeline`` and
``meeting_votes`` with the viewer): they read ``{"hidden": true}``.
Described in the OpenAPI document by ``web/workflow_spec.py``.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import jsonify, request

from danbao.engines.coerce import CONTROL_CHARS
from danbao.engines.query import record_titles
from danbao.engines.records import Actor, NotFound, ValidationFailed
from danbao.engines.refusals import Refusal
from danbao.engines.users import user_names
from danbao.engines.refusals import Refusal
from danbao.engines.workflow import APPLICANT, APPLICANT_LABEL, Refused, WorkflowEngine
from danbao.expr import ExprError
from danbao.meta.model import Label
from danbao.web.access import can
from danbao.web.api import (_body, _error, _guard, _invalid, _lang, _record_id, _runtime, _service, _user, bp,
                            refusal_response, scope_refusal)

MAX_ID = 2**31 - 1
MAX_COMMENT = 4000
MAX_STEP = 64
DONE_LIMIT, MAX_DONE_LIMIT = 50, 200

_UNAUTHENTICATED = ("未登录或令牌无效", "not authenticated: send a valid bearer token")



# -- helpers -----------------------------------------------------------------------------
def _engine() -> WorkflowEngine:
    rt = _runtime()
    return WorkflowEngine(rt.session, rt.models, rt.meta)


def _actor(user) -> Actor:
    return Actor(user_id=user.id, username=user.username, lang=_lang())


def _path_id(raw: str):
    """A positive 32-bit id from the path, else None (answered 404)."""
    value = _record_id(raw)
    return value if isinstance(value, int) and 0 < value <= MAX_ID else None


def _iso(value):
    return value.isoformat() if value is not None else None


def _label(wf, key, lang):
    if key == APPLICANT:
        return APPLICANT_LABEL.get(lang)
    return wf.step(key).label.get(lang) if key and wf is not None and wf.has_step(key) else key


def _workflows_of(entity: str):
    return [w for w in _runtime().meta.workflows.values() if w.entity == entity]


def _no_workflow(entity: str):
    return _error(404, f"{entity} 没有审批流程", f"{entity} has no workflow")


def _not_found(kind_zh: str, kind_en: str, raw: str):
    return _error(404, f"没有此{kind_zh}：#{raw}", f"no such {kind_en}: #{raw}")


def _run(call, *, status: int = 200):
    """One engine call: its result as JSON, or the refusal mapped to its status (session rolled back)."""
    session = _runtime().session
    try:
        result = call()
    except Refused as exc:
        return _refused(exc)
    except Refusal as exc:                              # the record service's: RC codes
        return refusal_response(exc)                    # rolls back
    except ExprError as exc:
        session.rollback()
        return _error(409, f"流程条件无法计算：{exc.message}", f"a workflow condition cannot be evaluated: {exc.message}")
    return jsonify(result), status


def _refused(exc: Refused):
    """The engine's refusal by its code: an invalid one answers 422 on its field, the rest their kind's status."""
    if exc.kind == "invalid" and exc.field:
        _runtime().session.rollback()
        lang = _lang()
        return jsonify(message="数据有误" if lang == "zh" else "invalid data", code=exc.code,
                       errors={exc.field: exc.message.get(lang)}), exc.status
    return refusal_response(exc)


def _encodable(value: str) -> bool:
    """False for lone surrogates (a JSON ``\\ud800``), which no database column can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Fields:
    """Checks a JSON body field by field; ``errors`` ends up field -> Label."""

    def __init__(self, data: dict, allowed: set[str]):
        self.data = data
        self.errors: dict[str, Label] = {k: Label("未知字段", "unknown field") for k in sorted(set(data) - allowed)}

    def text(self, key: str, *, required: bool = False, max_length: int = MAX_COMMENT,
             missing: Label = Label("请填写意见", "a comment is required")) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.errors[key] = missing
            return None
        if not isinstance(value, str):
            self.errors[key] = Label("应为文本", "must be a string")
            return None
        if len(value) > max_length:
            self.errors[key] = Label(f"不能超过 {max_length} 个字", f"at most {max_length} characters")
            return None
        if CONTROL_CHARS.search(value) or not _encodable(value):
            self.errors[key] = Label("含有不可见的控制字符", "contains control characters")
            return None
        if required and not value.strip():
            self.errors[key] = missing
            return None
        return value

    def choice(self, key: str, options) -> str | None:
        value = self.data.get(key)
        if not isinstance(value, str) or value not in options:
            self.errors[key] = Label(f"应为：{', '.join(options)}", f"must be one of: {', '.join(options)}")
            return None
        return value

    def user_id(self, key: str) -> int | None:
        value = self.data.get(key)
        if type(value) is not int or not 0 < value <= MAX_ID:
            self.errors[key] = Label("请选择一位同事（用户 id）", "must be the id of a user")
            return None
        return value

    def moment(self, key: str, now: dt.datetime) -> dt.datetime | None:
        """An ISO date-time in the future, as the server's local time (what the engine's clock reads)."""
        value = self.data.get(key)
        if value is None:
            return None
        parsed = None
        if isinstance(value, str) and len(value) <= 40:
            try:
                parsed = dt.datetime.fromisoformat(value)
                if parsed.tzinfo is not None:
                    parsed = parsed.astimezone().replace(tzinfo=None)
            except (ValueError, OverflowError, OSError):
                parsed = None
        if parsed is None:
            self.errors[key] = Label("时间格式应为 ISO 8601（如 2026-12-31T18:00）",
                                     "must be an ISO 8601 date-time (e.g. 2026-12-31T18:00)")
            return None
        if parsed <= now:
            self.errors[key] = Label("应晚于现在", "must be in the future")
            return None
        return parsed

    def only_with(self, key: str, what: Label) -> None:
        if self.data.get(key) is not None:
            self.errors[key] = Label(f"仅用于{what.zh}", f"only with {what.en}")


def _titles(refs) -> dict[tuple[str, int], str]:
    """(entity, id) -> the record's title (its title field, else #id)."""
    rt = _runtime()
    return record_titles(rt.session, rt.models, rt.meta, refs)


def _entity_label(entity: str, lang: str) -> str:
    em = _runtime().meta.entities.get(entity)
    return em.label.get(lang) if em else entity


def _outcome(engine: WorkflowEngine, out) -> dict:
    inst = engine.session.execute(sa.select(engine.instances).where(engine.instances.c.id == out.instance_id)).first()
    wf = engine.workflow_of(inst) if inst is not None else None
    lang = _lang()
    return {"instance_id": out.instance_id, "state": out.state, "step_before": out.step_before,
            "step_after": out.step_after, "step_after_label": _label(wf, out.step_after, lang)}


# -- my tasks ------------------------------------------------------------------------------
@bp.get("/tasks/")
def my_tasks():
    user = _user()
    if user is None:
        return _error(401, *_UNAUTHENTICATED)
    engine, lang = _engine(), _lang()
    rows = engine.open_tasks(user.id)
    titles = _titles((r.entity, r.record_id) for r in rows)
    names = user_names(engine.session, {r.delegated_from_id for r in rows})
    now = engine.clock()
    result = []
    for r in rows:
        wf = engine.workflow_of(r)
        step = wf.step(r.step) if wf.has_step(r.step) else None
        result.append({
            "id": r.id, "instance_id": r.instance_id, "workflow": r.workflow, "workflow_label": wf.label.get(lang),
            "step": r.step, "step_label": step.label.get(lang) if step else r.step,
            "kind": "committee" if step is not None and step.kind == "committee" else "approval",
            "entity": r.entity, "entity_label": _entity_label(r.entity, lang), "record_id": r.record_id,
            "record_title": titles.get((r.entity, r.record_id)), "link": f"/e/{r.entity}/{r.record_id}",
            "created_at": _iso(r.created_at), "due_at": _iso(r.due_at),
            "overdue": r.due_at is not None and r.due_at < now,
            "delegated_from_id": r.delegated_from_id,
            "delegated_from": names.get(r.delegated_from_id) if r.delegated_from_id else None,
            "delegated_until": _iso(r.delegated_until)})
    engine.session.rollback()
    return jsonify(count=len(result), result=result)


@bp.get("/tasks/done")
def my_done():
    user = _user()
    if user is None:
        return _error(401, *_UNAUTHENTICATED)
    lang = _lang()
    raw = request.args.get("limit")
    limit = DONE_LIMIT
    if raw is not None:
        limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
        if not 0 < limit <= MAX_DONE_LIMIT:
            return jsonify(message="查询参数有误" if lang == "zh" else "invalid query parameters",
                           errors={"limit": f"应为 1 到 {MAX_DONE_LIMIT} 的整数" if lang == "zh"
                                   else f"must be an integer from 1 to {MAX_DONE_LIMIT}"}), 400
    engine = _engine()
    rows = engine.done_by(user.id, limit=limit)
    titles = _titles((r.entity, r.record_id) for r in rows)
    result = []
    for r in rows:
        wf = engine.workflow_of(r)
        result.append({
            "id": r.id, "instance_id": r.instance_id, "task_id": r.task_id, "workflow": r.workflow,
            "workflow_label": wf.label.get(lang), "step": r.step, "step_label": _label(wf, r.step, lang),
            "action": r.action, "target": r.target_step,
            "target_label": _label(wf, r.target_step, lang) if wf.has_step(r.target_step or "") else None,
            "comment": r.comment, "at": _iso(r.at), "entity": r.entity, "entity_label": _entity_label(r.entity, lang),
            "record_id": r.record_id, "record_title": titles.get((r.entity, r.record_id)),
            "link": f"/e/{r.entity}/{r.record_id}"})
    engine.session.rollback()
    return jsonify(count=len(result), result=result)


# -- a record's approvals --------------------------------------------------------------------
def _path_ahead(engine: WorkflowEngine, inst, wf, lang) -> list[dict]:
    try:
        keys = engine.path_ahead(inst)
    except (Refused, ExprError, NotFound):
        keys = []
    return [{"step": k, "label": _label(wf, k, lang)} for k in keys]


def instance_view(engine: WorkflowEngine, inst, viewer_id: int | None, lang: str) -> dict:
    """One instance as the API shows it to ``viewer_id`` (secret votes of an open meeting hidden)."""
    wf = engine.workflow_of(inst)
    step = wf.step(inst.step) if wf.has_step(inst.step) else None
    tasks = engine.tasks_of(inst.id, inst.round)
    actions = engine.timeline(inst.id, viewer_id)
    votes = engine.meeting_votes(inst.id, viewer_id)
    people = {inst.started_by_id} | {t.user_id for t in tasks} | {a.user_id for a in actions}
    people |= {t.delegated_from_id for t in tasks} | {v.user_id for v in votes if not v.hidden}
    people |= {int(a.target_step) for a in actions
               if a.action in ("delegate", "add_approver") and (a.target_step or "").isdigit()}
    names = user_names(engine.session, people)
    now = engine.clock()
    running = inst.state == "running"

    def entry(a) -> dict:
        target = a.target_step
        if target and a.action in ("delegate", "add_approver") and target.isdigit():
            target_label = names.get(int(target), f"#{target}")
        elif target and (wf.has_step(target) or target == APPLICANT):
            target_label = _label(wf, target, lang)
        else:
            target_label = None
        return {"id": a.id, "at": _iso(a.at), "user_id": a.user_id, "user": names.get(a.user_id, a.username),
                "step": a.step, "step_label": _label(wf, a.step, lang), "round": a.round, "action": a.action,
                "comment": a.comment, "target": target, "target_label": target_label, "hidden": a.hidden}

    def vote(v) -> dict:
        if v.hidden:
            return {"hidden": True}
        return {"id": v.id, "step": v.step, "step_label": _label(wf, v.step, lang), "round": v.round,
                "user_id": v.user_id, "user": names.get(v.user_id, v.username), "vote": v.vote,
                "chairman": bool(v.chairman), "comment": v.comment, "at": _iso(v.at), "hidden": False}

    return {
        "id": inst.id, "workflow": inst.workflow, "workflow_label": wf.label.get(lang),
        "workflow_version": inst.workflow_version, "state": inst.state, "step": inst.step,
        "step_label": _label(wf, inst.step, lang),
        "step_kind": step.kind if step is not None else ("applicant" if inst.step == APPLICANT else "end"),
        "round": inst.round,
        "started_by_id": inst.started_by_id, "started_by": names.get(inst.started_by_id, inst.started_by),
        "started_at": _iso(inst.started_at), "step_entered_at": _iso(inst.step_entered_at),
        "finished_at": _iso(inst.finished_at),
        "path_ahead": _path_ahead(engine, inst, wf, lang) if running else [],
        "return_targets": [{"step": k, "label": _label(wf, k, lang)} for k in engine.return_targets(inst, wf)],
        "with_applicant": running and inst.step == APPLICANT,
        "tasks": [{"id": t.id, "user_id": t.user_id, "user": names.get(t.user_id, f"#{t.user_id}"),
                   "status": t.status, "position": t.position, "created_at": _iso(t.created_at),
                   "due_at": _iso(t.due_at), "acted_at": _iso(t.acted_at),
                   "overdue": t.status == "open" and t.due_at is not None and t.due_at < now,
                   "delegated_from_id": t.delegated_from_id, "delegated_until": _iso(t.delegated_until),
                   "added_by_id": t.added_by_id} for t in tasks],
        "timeline": [entry(a) for a in actions],
        "votes": [vote(v) for v in votes],
    }


def _record_view(engine: WorkflowEngine, entity: str, record_id: int, user) -> dict:
    lang = _lang()
    _service(user).get(entity, record_id)               # NotFound -> 404
    instances = [instance_view(engine, inst, user.id, lang) for inst in engine.instance_of(entity, record_id)]
    startable = []
    if can("write", entity):
        try:
            candidates = engine.candidates(entity, record_id)
        except ExprError:                                # a condition that cannot be evaluated: nothing to start
            candidates = []
        startable = [{"code": wf.code, "label": wf.label.get(lang)} for wf in candidates
                     if engine.may_start(wf, record_id, user.id)]
    title = _titles([(entity, record_id)]).get((entity, record_id))
    return {"entity": entity, "record_id": record_id, "record_title": title, "instances": instances,
            "can_start": startable}


@bp.get("/<entity>/<record_id>/workflow")
def record_workflow(entity, record_id):
    ok, resp = _guard(entity, "read")
    if resp:
        return resp
    _em, user = ok
    if not _workflows_of(entity):
        return _no_workflow(entity)
    rid = _path_id(record_id)
    if rid is None:
        return _error(404, f"记录不存在：{entity} #{record_id}", f"No such record: {entity} #{record_id}")
    engine = _engine()

    def view():
        out = _record_view(engine, entity, rid, user)
        engine.session.rollback()
        return out
    return _run(view)


@bp.post("/<entity>/<record_id>/workflow")
def start_workflow(entity, record_id):
    ok, resp = _guard(entity, "write")
    if resp:
        return resp
    _em, user = ok
    codes = [w.code for w in _workflows_of(entity)]
    if not codes:
        return _no_workflow(entity)
    rid = _path_id(record_id)
    if rid is None:
        return _error(404, f"记录不存在：{entity} #{record_id}", f"No such record: {entity} #{record_id}")
    data, resp = _body()
    if resp:
        return resp
    refused = scope_refusal(user, entity, rid, "write")     # data permissions (record_rules.py)
    if refused:
        return refused
    fields = _Fields(data, {"workflow", "comment"})
    code = fields.choice("workflow", codes)
    comment = fields.text("comment")
    if fields.errors:
        return _invalid(ValidationFailed(fields.errors))
    engine = _engine()

    def start():
        iid = engine.start(entity, rid, code, _actor(user), comment=comment or "")
        inst = engine.session.execute(sa.select(engine.instances).where(engine.instances.c.id == iid)).first()
        return {"instance_id": iid, "result": instance_view(engine, inst, user.id, _lang())}
    return _run(start, status=201)


# -- acting ------------------------------------------------------------------------------------
def _authenticated_body(raw_id: str, kind: Label):
    """(user, id, data, None) or (None, None, None, error response)."""
    user = _user()
    if user is None:
        return None, None, None, _error(401, *_UNAUTHENTICATED)
    oid = _path_id(raw_id)
    if oid is None:
        return None, None, None, _not_found(kind.zh, kind.en, raw_id)
    data, resp = _body()
    if resp:
        return None, None, None, resp
    return user, oid, data, None


@bp.post("/tasks/<task_id>/actions")
def act_on_task(task_id):
    user, tid, data, resp = _authenticated_body(task_id, Label("待办", "task"))
    if resp:
        return resp
    engine = _engine()
    fields = _Fields(data, {"action", "comment", "target_step", "user_id", "until"})
    # the engine judges the action's name and whether it needs a comment (WF010, WF011)
    action = fields.text("action", required=True, max_length=32, missing=Label("请选择操作", "the action is required"))
    comment = fields.text("comment")
    target = user_id = until = None
    if action == "return":
        target = fields.text("target_step", required=True, max_length=MAX_STEP,
                             missing=Label("请选择退回到的环节", "the step to return to is required"))
    else:
        fields.only_with("target_step", Label("退回", "return"))
    if action in ("delegate", "add_approver"):
        user_id = fields.user_id("user_id")
    else:
        fields.only_with("user_id", Label("转办或加签", "delegate or add_approver"))
    if action == "delegate":
        until = fields.moment("until", engine.clock())
    else:
        fields.only_with("until", Label("转办", "delegate"))
    if fields.errors:
        return _invalid(ValidationFailed(fields.errors))
    return _run(lambda: _outcome(engine, engine.act(tid, action, _actor(user), comment=comment or "",
                                                    target_step=target, user_id=user_id, until=until)))


@bp.post("/tasks/<task_id>/vote")
def vote_on_task(task_id):
    user, tid, data, resp = _authenticated_body(task_id, Label("待办", "task"))
    if resp:
        return resp
    fields = _Fields(data, {"vote", "comment"})
    # the engine judges the vote and its signed comment (WF012, WF011)
    choice = fields.text("vote", required=True, max_length=32, missing=Label("请选择表决意见", "the vote is required"))
    comment = fields.text("comment")
    if fields.errors:
        return _invalid(ValidationFailed(fields.errors))
    engine = _engine()
    return _run(lambda: _outcome(engine, engine.vote(tid, choice, _actor(user), comment=comment or "")))


def _on_instance(instance_id: str, call):
    user, iid, data, resp = _authenticated_body(instance_id, Label("流程", "workflow instance"))
    if resp:
        return resp
    fields = _Fields(data, {"comment"})
    comment = fields.text("comment")
    if fields.errors:
        return _invalid(ValidationFailed(fields.errors))
    engine = _engine()
    return _run(lambda: _outcome(engine, call(engine)(iid, _actor(user), comment=comment or "")))


@bp.post("/workflow-instances/<instance_id>/withdraw")
def withdraw_instance(instance_id):
    return _on_instance(instance_id, lambda engine: engine.withdraw)


@bp.post("/workflow-instances/<instance_id>/resubmit")
def resubmit_instance(instance_id):
    return _on_instance(instance_id, lambda engine: engine.resubmit)


@bp.post("/workflow-instances/<instance_id>/close-meeting")
def close_meeting(instance_id):
    return _on_instance(instance_id, lambda engine: engine.close_meeting)
