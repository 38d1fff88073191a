"""OpenAPI for the approval endpoints (``web/workflow_api.py``); pure, no Flask."""
from __future__ import annotations

from danbao.engines.workflow import VOTES
from danbao.meta.model import Meta

MAX_ID = 2**31 - 1
MAX_COMMENT = 4000
MAX_STEP = 64
MAX_DONE_LIMIT = 200
#: text without C0 control characters (tab and newlines allowed), as the API checks it
_CLEAN = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
CLEAN_TEXT = rf"^{_CLEAN}*$"
#: the same with at least one character that is not white space (a signed comment)
SIGNED_TEXT = rf"^{_CLEAN}*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]{_CLEAN}*$"

_ERROR = {"$ref": "#/components/schemas/Error"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}
_TEXTS = {"400": "bad request (not JSON, or a bad query parameter)", "401": "not authenticated",
          "403": "not yours: someone else's task, application or meeting, or no permission on the entity",
          "404": "no such record, task or workflow instance", "409": "not allowed now (the workflow's state)",
          "413": "body too large", "422": "invalid data (per field)"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(ok_code: str, ok: dict, *codes: str) -> dict:
    out = {ok_code: {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in codes:
        out[code] = {"description": _TEXTS[code],
                     "content": {"application/json": {"schema": _VALIDATION if code in ("400", "422") else _ERROR}}}
    return out


def _id_param(name: str) -> list[dict]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}]


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def workflow_schemas() -> dict:
    text = {"type": "string"}
    maybe = {"type": "string", "nullable": True}
    num = {"type": "integer"}
    maybe_num = {"type": "integer", "nullable": True}
    task = {"type": "object", "title": "WorkflowTask", "required": [
        "id", "instance_id", "workflow", "workflow_label", "step", "step_label", "kind", "entity", "record_id",
        "created_at", "overdue"], "properties": {
        "id": num, "instance_id": num, "workflow": text, "workflow_label": text, "step": text, "step_label": text,
        "kind": {"type": "string", "enum": ["approval", "committee"]}, "entity": text, "entity_label": text,
        "record_id": num, "record_title": maybe, "link": text, "created_at": text, "due_at": maybe,
        "overdue": {"type": "boolean"}, "delegated_from_id": maybe_num, "delegated_from": maybe,
        "delegated_until": maybe}}
    done = {"type": "object", "title": "WorkflowDone", "required": [
        "id", "instance_id", "workflow", "step", "action", "at", "entity", "record_id"], "properties": {
        "id": num, "instance_id": num, "task_id": maybe_num, "workflow": text, "workflow_label": text,
        "step": text, "step_label": text, "action": text, "target": maybe, "target_label": maybe,
        "comment": maybe, "at": text, "entity": text, "entity_label": text, "record_id": num,
        "record_title": maybe, "link": text}}
    entry = {"type": "object", "title": "WorkflowAction", "required": ["id", "at", "step", "action", "hidden"],
             "description": "one line of the action log; a vote of a secret meeting still open reads "
                            "hidden: true, without its vote (target) and comment",
             "properties": {
                 "id": num, "at": text, "user_id": maybe_num, "user": text, "step": text, "step_label": text,
                 "round": num, "action": text, "comment": maybe,
                 "target": dict(maybe, description="the step (reject, return), the user id (delegate, "
                                                   "add_approver) or the vote"),
                 "target_label": maybe, "hidden": {"type": "boolean"}}}
    vote = {"type": "object", "title": "WorkflowVote",
            "description": "a committee vote, or only {\"hidden\": true} while a secret meeting is open "
                           "(every vote but the viewer's own)",
            "required": ["hidden"], "properties": {
                "hidden": {"type": "boolean"}, "id": num, "step": text, "step_label": text, "round": num,
                "user_id": num, "user": text, "vote": {"type": "string", "enum": list(VOTES)},
                "chairman": {"type": "boolean"}, "comment": text, "at": text}}
    instance_task = {"type": "object", "required": ["id", "user_id", "status"], "properties": {
        "id": num, "user_id": num, "user": text,
        "status": {"type": "string", "enum": ["open", "waiting", "approved", "rejected", "returned", "voted",
                                              "delegated", "closed"]},
        "position": num, "created_at": text, "due_at": maybe, "acted_at": maybe, "overdue": {"type": "boolean"},
        "delegated_from_id": maybe_num, "delegated_until": maybe, "added_by_id": maybe_num}}
    step_ref = {"type": "object", "required": ["step", "label"], "properties": {"step": text, "label": text}}
    instance = {"type": "object", "title": "WorkflowInstance", "required": [
        "id", "workflow", "state", "step", "round", "path_ahead", "tasks", "timeline", "votes"], "properties": {
        "id": num, "workflow": text, "workflow_label": text, "workflow_version": text,
        "state": {"type": "string", "enum": ["running", "approved", "rejected", "withdrawn"]},
        "step": text, "step_label": text, "step_kind": {"type": "string", "enum": ["approval", "committee", "applicant", "end"]},
        "round": num, "started_by_id": maybe_num, "started_by": text, "started_at": text,
        "step_entered_at": text, "finished_at": maybe,
        "path_ahead": {"type": "array", "items": step_ref,
                       "description": "the steps ahead if every condition is read as it holds now"},
        "return_targets": {"type": "array", "items": step_ref,
                           "description": "where a return may go now: _applicant (补充资料) where the workflow "
                                          "allows it, and the steps passed on the path that led here"},
        "with_applicant": {"type": "boolean", "description": "returned to the applicant: they resubmit"},
        "tasks": {"type": "array", "items": instance_task, "description": "the current round's tasks"},
        "timeline": {"type": "array", "items": _ref("WorkflowAction")},
        "votes": {"type": "array", "items": _ref("WorkflowVote")}}}
    record = {"type": "object", "title": "RecordWorkflow", "required": [
        "entity", "record_id", "instances", "can_start"], "properties": {
        "entity": text, "record_id": num, "record_title": maybe,
        "instances": {"type": "array", "items": _ref("WorkflowInstance"), "description": "newest first"},
        "can_start": {"type": "array", "description": "workflows the caller may start on the record now",
                      "items": {"type": "object", "required": ["code", "label"],
                                "properties": {"code": text, "label": text}}}}}
    outcome = {"type": "object", "title": "WorkflowOutcome", "required": [
        "instance_id", "state", "step_before", "step_after"], "properties": {
        "instance_id": num, "state": {"type": "string", "enum": ["running", "approved", "rejected", "withdrawn"]},
        "step_before": text, "step_after": text, "step_after_label": maybe}}
    return {"WorkflowTask": task, "WorkflowDone": done, "WorkflowAction": entry, "WorkflowVote": vote,
            "WorkflowInstance": instance, "RecordWorkflow": record, "WorkflowOutcome": outcome}


def add_workflow_paths(paths: dict, schemas: dict, meta: Meta) -> None:
    """The approval endpoints: the caller's tasks, each workflow entity's record view and start,
    actions and votes on tasks, withdrawing and closing a meeting."""
    schemas.update(workflow_schemas())
    tag = ["Approvals"]
    comment = {"type": "string", "maxLength": MAX_COMMENT, "nullable": True, "pattern": CLEAN_TEXT}
    signed = {"type": "string", "minLength": 1, "maxLength": MAX_COMMENT, "pattern": SIGNED_TEXT}
    many = lambda item: {"type": "object", "required": ["count", "result"], "properties": {  # noqa: E731
        "count": {"type": "integer"}, "result": {"type": "array", "items": _ref(item)}}}
    paths["/api/v1/tasks/"] = {"get": {
        "tags": tag, "summary": "My open tasks (oldest first)",
        "responses": _responses("200", many("WorkflowTask"), "401")}}
    paths["/api/v1/tasks/done"] = {"get": {
        "tags": tag, "summary": "What I did (actions and votes, newest first)",
        "parameters": [{"name": "limit", "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DONE_LIMIT, "default": 50}}],
        "responses": _responses("200", many("WorkflowDone"), "400", "401")}}
    colleague = {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": "the colleague (a user id)"}

    def act(actions, required=(), **props):
        return {"type": "object", "required": ["action", *required], "additionalProperties": False,
                "properties": {"action": {"type": "string", "enum": list(actions)}, **props}}
    acts = {"oneOf": [
        act(("approve",), comment=comment),
        act(("reject", "comment"), ("comment",), comment=signed),
        act(("return",), ("comment", "target_step"), comment=signed, target_step={
            "type": "string", "minLength": 1, "maxLength": MAX_STEP, "pattern": SIGNED_TEXT,
            "description": "a step already passed on the current path, or _applicant"}),
        act(("delegate",), ("user_id",), comment=comment, user_id=colleague, until={
            "type": "string", "format": "date-time", "nullable": True,
            "description": "when the task goes back to you (in the future; default: never)"}),
        act(("add_approver",), ("user_id",), comment=comment, user_id=colleague)],
        "description": "one action; each takes its own fields (a field of another action is refused)"}
    action_codes = ("400", "401", "403", "404", "409", "413", "422")
    paths["/api/v1/tasks/{task_id}/actions"] = {"post": {
        "tags": tag, "summary": "Act on one of my tasks: approve, reject, return, delegate, add_approver, comment",
        "parameters": _id_param("task_id"), "requestBody": _body(acts),
        "responses": _responses("200", _ref("WorkflowOutcome"), *action_codes)}}
    vote = {"type": "object", "required": ["vote", "comment"], "additionalProperties": False, "properties": {
        "vote": {"type": "string", "enum": list(VOTES)}, "comment": signed}}
    paths["/api/v1/tasks/{task_id}/vote"] = {"post": {
        "tags": tag, "summary": "Vote at a committee meeting (signed with a comment)",
        "parameters": _id_param("task_id"), "requestBody": _body(vote),
        "responses": _responses("200", _ref("WorkflowOutcome"), *action_codes)}}
    just_comment = {"type": "object", "additionalProperties": False, "properties": {"comment": comment}}
    for path, summary in (("withdraw", "Withdraw my application before anyone acted on it (or while it is "
                                       "returned to me)"),
                          ("resubmit", "Resubmit my application after it was returned to me (补充资料)"),
                          ("close-meeting", "Close the committee meeting with the votes cast (chairman)")):
        paths[f"/api/v1/workflow-instances/{{instance_id}}/{path}"] = {"post": {
            "tags": tag, "summary": summary, "parameters": _id_param("instance_id"),
            "requestBody": _body(just_comment),
            "responses": _responses("200", _ref("WorkflowOutcome"), *action_codes)}}
    by_entity: dict[str, list[str]] = {}
    for wf in meta.workflows.values():
        em = meta.entities.get(wf.entity)
        if em is not None and not em.is_child:
            by_entity.setdefault(wf.entity, []).append(wf.code)
    for entity, codes in sorted(by_entity.items()):
        start = {"type": "object", "required": ["workflow"], "additionalProperties": False, "properties": {
            "workflow": {"type": "string", "enum": sorted(codes)}, "comment": comment}}
        label = meta.entities[entity].label.en
        paths[f"/api/v1/{entity}/{{record_id}}/workflow"] = {
            "get": {"tags": tag, "summary": f"Approvals of a {label}: instances, tasks, timeline, votes, "
                                            "and the workflows I may start",
                    "parameters": _id_param("record_id"),
                    "responses": _responses("200", _ref("RecordWorkflow"), "401", "403", "404")},
            "post": {"tags": tag, "summary": f"Submit a {label} into a workflow",
                     "parameters": _id_param("record_id"), "requestBody": _body(start),
                     "responses": _responses("201", {"type": "object", "required": ["instance_id", "result"],
                                                     "properties": {"instance_id": {"type": "integer"},
                                                                    "result": _ref("WorkflowInstance")}},
                                             *action_codes)}}
