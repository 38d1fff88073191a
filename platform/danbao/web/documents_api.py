"""REST for document kinds (资料类型), on the one API blueprint (``web/api.py``).

``POST /api/v1/attachments/<id>/tag``           — ``{"doc_kind": code | null}``: say which document a
                                                  file is (null or "" removes the tag); write permission
                                                  on the file's record;
``GET  /api/v1/<entity>/<id>/attachments``      — the live files of a project or customer record, each
                                                  with its ``doc_kind`` (read permission);
``GET  /api/v1/<project entity>/<id>/documents`` — the product's documents, present or not, with the files
                                                  providing each, and the missing ones per stage.

Only the project entity and its customer entities (``documents.taggable_entities``)
have these; the rules are ``engines/documents.py``. Statuses: 401 not signed in,
403 not allowed, 404 no such file or record (or one you may not read), 422 a bad
body or an unknown code. Described in the OpenAPI document by ``web/business_spec.py``.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from danbao.engines import documents
from danbao.engines.records import Actor, Conflict, NotFound, RecordService, ValidationFailed
from danbao.meta.model import Label
from danbao.model.system import ATTACHMENT_TABLE
from danbao.web.access import can
from danbao.web.api import _body, _error, _invalid, _lang, _record_id, _runtime, _user, bp
from danbao.web.scope import access_for
from danbao.web.workflow_api import MAX_ID

_UNAUTHENTICATED = ("未登录或令牌无效", "not authenticated: send a valid bearer token")
_FORBIDDEN = ("您没有权限执行此操作", "you are not allowed to do this")


def _path_id(raw: str):
    value = _record_id(raw)
    return value if isinstance(value, int) and 0 < value <= MAX_ID else None


def _no_attachment(raw):
    return _error(404, f"附件不存在：#{raw}", f"no such attachment: #{raw}")


def attachment_dict(meta, row, doc_kind: str | None, lang: str) -> dict:
    return {"id": row.id, "entity": row.entity, "record_id": row.record_id, "field": row.field,
            "filename": row.filename, "content_type": row.content_type, "kind": row.kind, "size": row.size,
            "uploaded_at": row.uploaded_at.isoformat(), "doc_kind": doc_kind,
            "doc_kind_label": documents.kind_label(meta, doc_kind).get(lang) if doc_kind else None}


def _service(user) -> RecordService:
    rt = _runtime()
    return RecordService(rt.models, rt.session, Actor(user_id=user.id, username=user.username, lang=_lang()))


@bp.post("/attachments/<attachment_id>/tag")
def tag_attachment(attachment_id):
    user = _user()
    if user is None:
        return _error(401, *_UNAUTHENTICATED)
    aid = _path_id(attachment_id)
    if aid is None:
        return _no_attachment(attachment_id)
    data, resp = _body()
    if resp:
        return resp
    errors = {k: Label("未知字段", "unknown field") for k in sorted(set(data) - {"doc_kind"}, key=str)}
    if "doc_kind" not in data:
        errors["doc_kind"] = Label("必填（取消标注请传 null）", "is required (null removes the tag)")
    elif data["doc_kind"] is not None and not isinstance(data["doc_kind"], str):
        errors["doc_kind"] = Label("应为“资料类型”代码或 null", "must be a document_kind code or null")
    if errors:
        return _invalid(ValidationFailed(errors))
    rt = _runtime()
    att = rt.models.system[ATTACHMENT_TABLE]
    row = rt.session.execute(sa.select(att).where(att.c.id == aid, att.c.deleted.is_(False))).first()
    rt.session.rollback()
    if row is None or row.entity not in rt.meta.entities or not can("read", row.entity) \
            or not access_for(user).allows(row.entity, row.record_id, "read"):
        return _no_attachment(attachment_id)
    if row.entity not in documents.taggable_entities(rt.meta):
        return _invalid(ValidationFailed({"doc_kind": Label(
            "只有项目和客户的附件可以标注资料类型", "only files of projects and customers carry a document kind")}))
    if not can("write", row.entity) or not access_for(user).allows(row.entity, row.record_id, "write"):
        return _error(403, *_FORBIDDEN)
    try:
        code = documents.tag(rt.session, rt.models, rt.meta, aid, data["doc_kind"], user.id)
        rt.session.commit()
    except documents.DocumentRefused as exc:
        rt.session.rollback()
        if exc.kind == "not_found":
            return _no_attachment(attachment_id)
        return _invalid(ValidationFailed({"doc_kind": exc.message}))
    except IntegrityError:          # tagged by someone else at the same moment
        rt.session.rollback()
        return _error(409, "该附件刚被他人标注，请重试", "someone else tagged this file just now: try again")
    try:
        documents.refresh_documents_missing(_service(user), row.entity, row.record_id)
        rt.session.commit()
    except (ValidationFailed, Conflict, NotFound, StaleDataError, IntegrityError):
        rt.session.rollback()       # a project changed meanwhile: its next save recomputes it
    return jsonify(attachment_dict(rt.meta, row, code, _lang()))


def _record_guard(entity: str, record_id: str, *, project_only: bool):
    """(user, record) or an error response."""
    user = _user()
    if user is None:
        return None, _error(401, *_UNAUTHENTICATED)
    rt = _runtime()
    allowed = {rt.meta.setting("project_entity")} if project_only else documents.taggable_entities(rt.meta)
    if entity not in allowed or entity not in rt.meta.entities:
        return None, _error(404, f"没有此实体：{entity}", f"no such entity: {entity}")
    if not can("read", entity):
        return None, _error(403, *_FORBIDDEN)
    rid = _path_id(record_id)
    obj = rt.session.get(rt.models.cls(entity), rid) if rid is not None else None
    access = access_for(user)
    if obj is not None and access is not None and not access.allows(entity, obj.id, "read"):
        obj = None                  # outside the user's data permissions: not found, like a missing one
    if obj is None:
        return None, _error(404, f"记录不存在：{entity} #{record_id}", f"No such record: {entity} #{record_id}")
    return (user, obj), None


@bp.get("/<entity>/<record_id>/attachments")
def record_attachments(entity, record_id):
    ok, resp = _record_guard(entity, record_id, project_only=False)
    if resp:
        return resp
    _user_, obj = ok
    rt, lang = _runtime(), _lang()
    att = rt.models.system[ATTACHMENT_TABLE]
    rows = rt.session.execute(sa.select(att).where(att.c.entity == entity, att.c.record_id == obj.id,
                                                   att.c.deleted.is_(False)).order_by(att.c.id)).all()
    tags = documents.tags_for(rt.session, rt.models, entity, obj.id)
    rt.session.rollback()
    return jsonify(result=[attachment_dict(rt.meta, r, tags.get(r.id), lang) for r in rows])


def _state_dict(state: documents.DocumentState, lang: str) -> dict:
    return {"code": state.code, "label": state.label.get(lang), "required": state.required, "stage": state.stage,
            "present": state.present,
            "files": [{"id": f.id, "entity": f.entity, "record_id": f.record_id, "field": f.field,
                       "filename": f.filename} for f in state.files]}


@bp.get("/<entity>/<record_id>/documents")
def project_documents(entity, record_id):
    ok, resp = _record_guard(entity, record_id, project_only=True)
    if resp:
        return resp
    _user_, project = ok
    rt, lang = _runtime(), _lang()
    states = documents.document_status(rt.session, rt.models, rt.meta, project)
    missing = {stage: [s.code for s in documents.missing_documents(rt.session, rt.models, rt.meta, project, stage,
                                                                     states=states)]
               for stage in documents.STAGES}
    product = getattr(project, "product", None)
    rt.session.rollback()
    return jsonify(product=product, documents=[_state_dict(s, lang) for s in states], missing=missing)
