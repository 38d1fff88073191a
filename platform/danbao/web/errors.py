"""Error pages for people: a short message in their language, never a stack trace.

API paths answer JSON (see api.py). An unexpected error is logged with a
reference the user can quote; the page shows only that reference.
"""
from __future__ import annotations

import logging
import uuid

from flask import render_template, request
from werkzeug.exceptions import HTTPException

from danbao.web.i18n import current_lang

log = logging.getLogger("danbao.errors")
MESSAGES = {
    400: ("请求无效（表单可能已过期，请刷新后重试）", "Bad request (the form may have expired: reload and try again)"),
    403: ("您没有权限执行此操作", "You are not allowed to do this"),
    404: ("页面或记录不存在", "No such page or record"),
    405: ("不支持此操作", "This action is not supported here"),
    413: ("上传内容过大", "Upload too large"),
    500: ("系统出错了，请联系管理员并提供参考编号", "Something went wrong: contact your administrator with the reference"),
}


def register_error_pages(app) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            from danbao.web.api import api_http_error
            return api_http_error(exc)
        return _page(exc.code or 500, None)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        ref = uuid.uuid4().hex[:10]
        log.exception("unhandled error %s on %s %s", ref, request.method, request.path)
        if request.path.startswith("/api/"):
            from flask import jsonify
            return jsonify(message=f"internal error, reference {ref}"), 500
        return _page(500, ref)


def _page(code: int, ref: str | None):
    zh, en = MESSAGES.get(code, (f"错误 {code}", f"Error {code}"))
    message = en if current_lang() == "en" else zh
    try:
        return render_template("danbao/error.html", code=code, message=message, ref=ref), code
    except Exception:  # the error page itself must not fail
        return f"{code} {message}" + (f" ({ref})" if ref else ""), code
