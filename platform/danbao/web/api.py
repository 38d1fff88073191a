"""The generated REST API: ``/api/v1/<entity>/`` for every top-level entity.

One blueprint dispatches on the entity name, like the screens. Bodies are
parsed with Decimal for numbers (no float ever touches an amount), written
through ``RecordService`` (the same validation as the forms), and every bad
request gets a 4xx with a message per field — never a 500. Authentication
is FAB's: a JWT from ``POST /api/v1/security/login`` or a signed-in session.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from flask import Blueprint, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from flask_jwt_extended import verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_login import current_user
from jwt.exceptions import PyJWTError

from danbao.config import local_tz
from danbao.engines.query import parse_list_args, run_list
from danbao.engines.scoring import (ScoringError, card_for, cards_for, load_score, score_record, score_to_dict,
                                   scores_of)
from danbao.meta.model import Label
from danbao.engines.records import Actor, RecordService, ValidationFailed, record_to_dict
from danbao.engines.refusals import Refusal
from danbao.web.access import can
from danbao.web.i18n import current_lang
from danbao.web.openapi import build_spec
from danbao.web.scope import access_for, masker_for

MAX_BODY = 2 * 1024 * 1024

bp = Blueprint("danbao_api", __name__, url_prefix="/api/v1")


def _runtime():
    return current_app.extensions["danbao"]


def _lang() -> str:
    wanted = request.args.get("_l_") or request.headers.get("Accept-Language", "")
    if wanted.startswith("en"):
        return "en"
    if wanted.startswith("zh"):
        return "zh"
    return current_lang()


def _error(status: int, zh: str, en: str, **extra):
    body = {"message": en if _lang() == "en" else zh}
    body.update(extra)
    return jsonify(body), status


def _user():
    """The authenticated user from a bearer token or the session; None if neither."""
    if request.headers.get("Authorization"):
        try:
            verify_jwt_in_request()
        except (JWTExtendedException, PyJWTError):
            return None
        return getattr(g, "user", None)
    if current_user.is_authenticated:
        return current_user
    return None


def _guard(entity: str, action: str):
    """Return (EntityMeta, user) or an error response."""
    meta = _runtime().meta
    user = _user()
    if user is None:
        return None, _error(401, "未登录或令牌无效", "not authenticated: send a valid bearer token")
    em = meta.entities.get(entity)
    if em is None or em.is_child:
        return None, _error(404, f"没有此实体：{entity}", f"no such entity: {entity}")
    if not can(action, entity):
        return None, _error(403, "您没有权限执行此操作", "you are not allowed to do this")
    return (em, user), None


def _service(user) -> RecordService:
    """The record service as ``user``: their data permissions hold (record_rules.py)."""
    rt = _runtime()
    return RecordService(rt.models, rt.session, Actor(user_id=user.id, username=user.username, lang=_lang()),
                         access=access_for(user))


def scope_refusal(user, entity: str, record_id, action: str):
    """An error response when ``user`` may not ``action`` the record under their data
    permissions (404 when they may not even read it, as if it did not exist); else None."""
    access = access_for(user)
    if access is None:
        return None
    if not isinstance(record_id, int) or not access.allows(entity, record_id, "read"):
        return _error(404, f"记录不存在：{entity} #{record_id}", f"No such record: {entity} #{record_id}")
    if action != "read" and not access.allows(entity, record_id, action):
        exc = access.out_of_scope(_runtime().meta.entity(entity), action)
        return jsonify(exc.to_json(_lang())), exc.status
    return None


def _log_clear(user, em, ids) -> None:
    """Who read these records' sensitive fields in clear over the API (masking.py)."""
    from danbao.engines.masking import record_clear_views
    rt = _runtime()
    if record_clear_views(rt.session, rt.models, masker_for(user), user.id, user.username, em, ids, "api"):
        rt.session.commit()


def _body():
    """The JSON body with numbers as Decimal; (data, None) or (None, error response)."""
    if request.content_length and request.content_length > MAX_BODY:
        return None, _error(413, "请求体过大", "request body too large")
    raw = request.get_data(cache=False)
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_int=int,
                          parse_constant=lambda name: _reject_constant(name))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, _error(400, f"请求体不是有效的 JSON：{exc}", f"the body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return None, _error(422, "请求体应为 JSON 对象", "the body must be a JSON object",
                            errors={"_": "must be an object"})
    return data, None


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


def _invalid(exc: ValidationFailed):
    rt = _runtime()
    rt.session.rollback()
    lang = _lang()
    codes = exc.codes()
    extra = {"codes": codes} if codes else {}
    return jsonify(message="数据有误" if lang == "zh" else "invalid data", code=exc.code,
                   errors=exc.messages(lang), **extra), exc.status


def refusal_response(exc: Refusal):
    """Any engine refusal as JSON: its code, message, field and details; the status from its code."""
    _runtime().session.rollback()
    if isinstance(exc, ValidationFailed):
        return _invalid(exc)
    return jsonify(exc.to_json(_lang())), exc.status


@bp.get("/<entity>/")
def list_records(entity):
    ok, resp = _guard(entity, "read")
    if resp:
        return resp
    em, _ = ok
    rt = _runtime()
    allowed = tuple(f.name for f in em.column_fields)
    lq = parse_list_args(em, request.args, rt.meta, allowed=allowed)
    if lq.errors:
        lang = _lang()
        return jsonify(message="查询参数有误" if lang == "zh" else "invalid query parameters",
                       errors={k: v.get(lang) for k, v in lq.errors.items()}), 400
    user = ok[1]
    page = run_list(rt.session, rt.models, em, lq, access=access_for(user))
    masker = masker_for(user)
    body = jsonify(count=page.total, page=page.page, page_size=page.page_size,
                   result=[record_to_dict(em, obj, rt.meta, masker) for obj in page.rows])
    _log_clear(user, em, [obj.id for obj in page.rows])
    return body


def _answer(action, *, status=200):
    """Run one service call; map the engine's refusals to their HTTP status."""
    try:
        result = action()
    except Refusal as exc:
        return refusal_response(exc)
    return result if isinstance(result, tuple) else (result, status)


def _one(em, obj, user=None):
    """One record as JSON, masked as ``user`` may see it (and the clear view logged)."""
    body = jsonify(id=obj.id, result=record_to_dict(em, obj, _runtime().meta, masker_for(user or _user())))
    if user is not None:
        _log_clear(user, em, [obj.id])
    return body


@bp.post("/<entity>/")
def create_record(entity):
    ok, resp = _guard(entity, "write")
    if resp:
        return resp
    em, user = ok
    data, resp = _body()
    if resp:
        return resp
    return _answer(lambda: _one(em, _service(user).create(entity, data)), status=201)


@bp.get("/<entity>/<record_id>")
def get_record(entity, record_id):
    ok, resp = _guard(entity, "read")
    if resp:
        return resp
    em, user = ok
    return _answer(lambda: _one(em, _service(user).get(entity, _record_id(record_id)), user))


@bp.put("/<entity>/<record_id>")
def update_record(entity, record_id):
    ok, resp = _guard(entity, "write")
    if resp:
        return resp
    em, user = ok
    data, resp = _body()
    if resp:
        return resp
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        return _invalid(ValidationFailed({"version": _label("应为整数", "must be an integer")}))
    return _answer(lambda: _one(em, _service(user).update(entity, _record_id(record_id), data,
                                                          expected_version=version)))


@bp.delete("/<entity>/<record_id>")
def delete_record(entity, record_id):
    ok, resp = _guard(entity, "delete")
    if resp:
        return resp
    _em, user = ok
    raw = request.args.get("version")
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        return _invalid(ValidationFailed({"version": _label("应为整数", "must be an integer")}))

    def delete():
        _service(user).delete(entity, _record_id(record_id), expected_version=int(raw) if raw else None)
        return jsonify(message="已删除" if _lang() == "zh" else "deleted")
    return _answer(delete)


# -- credit scores --------------------------------------------------------------------
@bp.get("/<entity>/<record_id>/scores")
def list_scores(entity, record_id):
    ok, resp = _guard(entity, "read")
    if resp:
        return resp
    rt = _runtime()
    if not cards_for(rt.meta, entity):
        return _error(404, "该实体没有评分卡", f"{entity} has no scorecard")

    def answer():
        rid = _record_id(record_id)
        _service(ok[1]).get(entity, rid)           # 404 for a record that does not exist
        rows = scores_of(rt.session, rt.models, entity, rid)
        return jsonify(result=[{k: _plain(v) for k, v in row.items() if k not in ("label_zh", "label_en", "knockouts")}
                               | {"label": row["label_en" if _lang() == "en" else "label_zh"]} for row in rows])
    return _answer(answer)


@bp.post("/<entity>/<record_id>/scores")
def create_score(entity, record_id):
    ok, resp = _guard(entity, "write")
    if resp:
        return resp
    _em, user = ok
    rt = _runtime()
    cards = {c.code: c for c in cards_for(rt.meta, entity)}
    if not cards:
        return _error(404, "该实体没有评分卡", f"{entity} has no scorecard")
    refused = scope_refusal(user, entity, _record_id(record_id), "write")
    if refused:
        return refused
    data, resp = _body()
    if resp:
        return resp
    product, problem = _product_context(entity, record_id, data)
    if problem:
        return _invalid(ValidationFailed(problem))
    code = data.get("scorecard", card_for(rt.meta, entity, product).code)
    if not isinstance(code, str) or code not in cards:
        return _invalid(ValidationFailed({"scorecard": _label(f"应为：{', '.join(cards)}", f"must be one of: {', '.join(cards)}")}))
    inputs = data.get("inputs", {})
    if not isinstance(inputs, dict):
        return _invalid(ValidationFailed({"inputs": _label("应为对象", "must be an object")}))
    as_of, problem = _date_arg(data.get("as_of"))
    if problem:
        return _invalid(ValidationFailed({"as_of": problem}))

    def answer():
        actor = Actor(user_id=user.id, username=user.username, lang=_lang())
        score_id = score_record(rt.session, rt.models, rt.meta, code, _record_id(record_id), inputs=inputs,
                                actor=actor, as_of=as_of)
        score, items = load_score(rt.session, rt.models, score_id)
        return jsonify(score_to_dict(score, items, _lang()))
    try:
        return _answer(answer, status=201)
    except ScoringError as exc:
        rt.session.rollback()
        return _error(422, exc.message.zh, exc.message.en, errors={"_": exc.message.get(_lang())})


def _product_context(entity: str, record_id, data: dict):
    """(product code or None, errors) from the body's ``product`` (a product code) or
    ``project`` (the id of one of this customer's projects, whose product counts):
    the product whose ``scorecards:`` choose the card when none is named."""
    from danbao.engines.projects import customer_of, project_em
    rt = _runtime()
    product, project = data.get("product"), data.get("project")
    if product is not None and project is not None:
        return None, {"project": _label("product 与 project 只能给一个", "give product or project, not both")}
    if product is not None:
        if not isinstance(product, str) or product not in rt.meta.products:
            return None, {"product": _label("没有这个担保产品", "no such product")}
        return product, None
    if project is None:
        return None, None
    em = project_em(rt.meta)
    row = None
    if em is not None and type(project) is int and 0 < project <= 2**31 - 1:
        row = rt.session.get(rt.models.cls(em.name), project)
    if row is None or customer_of(rt.meta, row) != (entity, _record_id(record_id)):
        return None, {"project": _label("不是该客户的项目", "not a project of this customer")}
    return getattr(row, "product", None), None


@bp.get("/scores/<score_id>")
def get_score(score_id):
    user = _user()
    if user is None:
        return _error(401, "未登录或令牌无效", "not authenticated: send a valid bearer token")
    rt = _runtime()
    sid = _record_id(score_id)
    found = load_score(rt.session, rt.models, sid) if isinstance(sid, int) and sid <= 2**31 - 1 else None
    if found is None or found[0]["entity"] not in rt.meta.entities or not can("read", found[0]["entity"]) \
            or scope_refusal(user, found[0]["entity"], found[0]["record_id"], "read"):
        return _error(404, f"评分记录不存在：#{score_id}", f"no such score: #{score_id}")
    return jsonify(score_to_dict(found[0], found[1], _lang()))


def _date_arg(raw):
    """(date, None) or (None, Label): a scoring date, today by default, never in the future."""
    today = dt.datetime.now(local_tz()).date()
    if raw is None:
        return today, None
    try:
        value = dt.date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None:
        return None, _label("日期格式应为 YYYY-MM-DD", "must be a date (YYYY-MM-DD)")
    if value > today:
        return None, _label("不能晚于今天", "cannot be in the future")
    return value, None


def _plain(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec(_runtime().meta))


@bp.get("/docs")
def docs():
    return render_template("danbao/swagger.html", spec_url="/api/v1/openapi.json")


def _record_id(raw: str):
    """The id from the path; anything that is not a positive integer finds nothing (404)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else raw


def _label(zh, en):
    return Label(zh, en)


def api_http_error(exc: HTTPException):
    """API clients get JSON for every error."""
    if exc.code == 413:
        return _error(413, "上传内容过大", "upload too large")
    return jsonify(message=exc.description or exc.name), exc.code


def register_api(app, csrf) -> None:
    from danbao.web import inbox_api  # noqa: F401  (adds /warnings/ routes to bp before its first registration)
    from danbao.web import workflow_api  # noqa: F401  (adds /tasks/ and /<entity>/<id>/workflow routes)
    csrf.exempt(bp)
    app.register_blueprint(bp)

