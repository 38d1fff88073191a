"""REST for the warnings inbox, on the one API blueprint (``web/api.py``).

``GET /api/v1/warnings/`` — the caller's warnings, with the screen's filters;
``POST /api/v1/warnings/<id>/acknowledge`` — ``{"comment": "..."}``. A warning
the caller may not see answers 404 exactly like one that does not exist.
Described in the OpenAPI document by ``web/inbox_spec.py``.
"""
from __future__ import annotations

from flask import jsonify, request

from danbao.engines.inbox import CommentInvalid, acknowledge_visible, inbox, parse_inbox_args
from danbao.web.api import _body, _error, _lang, _record_id, _runtime, _user, bp
from danbao.web.inbox import viewer_of

_UNAUTHENTICATED = ("未登录或令牌无效", "not authenticated: send a valid bearer token")


@bp.get("/warnings/")
def list_warnings():
    user = _user()
    if user is None:
        return _error(401, *_UNAUTHENTICATED)
    lang = _lang()
    q = parse_inbox_args(request.args)
    if q.errors:
        return jsonify(message="查询参数有误" if lang == "zh" else "invalid query parameters",
                       errors={k: v.get(lang) for k, v in q.errors.items()}), 400
    rt = _runtime()
    page = inbox(rt.session, rt.models, rt.meta, viewer_of(user), q)
    return jsonify(count=page.total, page=page.page, page_size=page.page_size,
                   result=[item.to_dict(lang) for item in page.items])


@bp.post("/warnings/<warning_id>/acknowledge")
def acknowledge_warning(warning_id):
    user = _user()
    if user is None:
        return _error(401, *_UNAUTHENTICATED)
    data, resp = _body()
    if resp:
        return resp
    lang = _lang()
    unknown = sorted(set(data) - {"comment"})
    if unknown:
        return jsonify(message="数据有误" if lang == "zh" else "invalid data",
                       errors={k: "未知字段" if lang == "zh" else "unknown field" for k in unknown}), 422
    rt = _runtime()
    try:
        item = acknowledge_visible(rt.session, rt.models, rt.meta, viewer_of(user), _record_id(warning_id),
                                   username=user.username, comment=data.get("comment"))
    except CommentInvalid as exc:
        return jsonify(message="数据有误" if lang == "zh" else "invalid data",
                       errors={"comment": exc.message.get(lang)}), 422
    if item is None:
        return _error(404, f"没有此预警：#{warning_id}", f"no such warning: #{warning_id}")
    return jsonify(result=item.to_dict(lang))
