"""The warnings inbox (预警) screen, and the open-warnings badge in the menu bar.

Thin: who sees which warning, the filters, paging and acknowledging are in
``engines/inbox.py``. The badge is a template function every page's menu bar
calls (``appbuilder/navbar_right.html`` is overridden to show it), costing
one count query per page for signed-in users.
"""
from __future__ import annotations

import logging

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import SQLAlchemyError

from danbao.engines.inbox import (LEVELS, CommentInvalid, InboxQuery, Viewer, acknowledge_visible, inbox,
                                  open_count, parse_inbox_args)
from danbao.meta.model import Label
from danbao.web.access import login_redirect
from danbao.web.i18n import current_lang

log = logging.getLogger(__name__)
MENU_NAME = "danbao_warnings"
MENU_LABEL = Label("预警", "Warnings")
TEXT = {
    "title": ("预警", "Warnings"), "my_warnings": ("我的预警", "My warnings"),
    "level": ("级别", "Level"), "red": ("红色", "Red"), "orange": ("橙色", "Orange"), "yellow": ("黄色", "Yellow"),
    "rule": ("预警规则", "Rule"), "message": ("内容", "Message"), "record": ("记录", "Record"),
    "found_on": ("发现日期", "Found on"), "status": ("状态", "Status"),
    "open": ("未解除", "Open"), "closed": ("已解除", "Closed"), "all": ("全部", "All"),
    "acknowledged": ("确认情况", "Acknowledged"), "ack_yes": ("已确认", "Acknowledged"),
    "ack_no": ("未确认", "Not acknowledged"), "acknowledge": ("确认", "Acknowledge"),
    "comment": ("处理意见", "Comment"), "comment_placeholder": ("处理意见（必填）", "Comment (required)"),
    "done": ("已确认预警", "Warning acknowledged"), "none": ("暂无预警", "No warnings"),
    "filter": ("筛选", "Filter"), "reset": ("重置", "Reset"), "record_gone": ("记录已删除", "record deleted"),
    "retired": ("（规则已不在元数据中）", "(rule no longer in the metadata)"),
    "badge": ("未确认的预警", "unacknowledged warnings"), "closed_on": ("解除于", "closed"),
    "prev": ("上一页", "Previous"), "next": ("下一页", "Next"),
    "page": ("第 {page} / {pages} 页，共 {total} 条", "Page {page} of {pages}, {total} in all"),
    "view_all": ("查看全部", "View all"), "unacked_open": ("条未确认", "unacknowledged"),
}
LEVEL_STYLE = {"red": "label label-danger", "orange": "label label-warning", "yellow": "label danbao-level-yellow"}


def tr(key: str, **kw) -> str:
    zh, en = TEXT[key]
    return (en if current_lang() == "en" else zh).format(**kw)


def viewer_of(user) -> Viewer:
    """The inbox's viewer, with the user's data permissions (scope.py)."""
    from danbao.web.scope import access_for
    return Viewer(user.id, frozenset(role.name for role in (user.roles or ())), access=access_for(user))


def _signed_in():
    user = getattr(g, "user", None)
    return user if user is not None and user.is_authenticated else None


def badge_count() -> int | None:
    """Open, unacknowledged warnings of the signed-in user (None when signed out); once per request."""
    if "danbao_badge" in g:
        return g.danbao_badge
    count = None
    if current_user.is_authenticated:
        rt = current_app.extensions["danbao"]
        try:
            count = open_count(rt.session, rt.models, rt.meta, viewer_of(current_user))
        except SQLAlchemyError:   # a menu bar must never break a page (e.g. an error page after a failed query)
            log.debug("warning badge unavailable", exc_info=True)
    g.danbao_badge = count
    return count


def register_badge(app) -> None:
    app.context_processor(lambda: {"danbao_warning_badge": badge_count, "danbao_warning_tr": tr})


def _back(raw: str | None) -> str:
    """Where to return after acknowledging: the inbox page it came from, never another site."""
    if raw and raw.startswith("/warnings/") and "//" not in raw and "\\" not in raw:
        return raw
    return url_for("WarningInbox.index")


class WarningInbox(BaseView):
    route_base = "/warnings"
    default_view = "index"
    base_permissions = []

    @expose("/")
    def index(self):
        user = _signed_in()
        if user is None:
            return login_redirect(next=request.full_path)
        rt = current_app.extensions["danbao"]
        lang = current_lang()
        q = parse_inbox_args(request.args)
        for key, message in q.errors.items():
            flash(f"{key}: {message.get(lang)}", "warning")
        page = inbox(rt.session, rt.models, rt.meta, viewer_of(user), q)
        rules = sorted(rt.meta.warnings.values(), key=lambda r: r.label.get(lang))
        return self.render_template("danbao/warnings.html", page=page, q=q, rules=rules, levels=LEVELS,
                                    level_style=LEVEL_STYLE, meta=rt.meta, lang=lang, tr=tr,
                                    label=lambda x: x.get(lang) if x else "", csrf_token=generate_csrf,
                                    args=request.args, here=request.full_path.rstrip("?"))

    @expose("/<int:warning_id>/acknowledge", methods=["POST"])
    def acknowledge(self, warning_id):
        user = _signed_in()
        if user is None:
            return login_redirect()
        rt = current_app.extensions["danbao"]
        back = _back(request.form.get("next"))
        try:
            item = acknowledge_visible(rt.session, rt.models, rt.meta, viewer_of(user), warning_id,
                                       username=user.username, comment=request.form.get("comment"))
        except CommentInvalid as exc:
            flash(f"{tr('comment')}: {exc.message.get(current_lang())}", "danger")
            return redirect(back)
        if item is None:
            abort(404)
        flash(tr("done"), "success")
        return redirect(back)


def workbench_warnings(rt, user, limit: int = 5):
    """(open unacknowledged count, the newest open warnings) for the workbench."""
    viewer = viewer_of(user)
    top = inbox(rt.session, rt.models, rt.meta, viewer, InboxQuery(status="open", page_size=limit))
    return badge_count() or 0, top.items
