"""The first screen staff land on (工作台): their recent work and the data they may see.

Later issues add tasks and key figures here; every feature that produces
work for a person shows up on this page (so far: their open warnings).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, g, redirect, url_for
from flask_appbuilder import BaseView, IndexView, expose

from danbao.web.access import can, login_redirect
from danbao.web.i18n import current_lang, t
from danbao.web.inbox import tr, workbench_warnings
from danbao.web.scope import access_for


class WorkbenchIndex(IndexView):
    """FAB's index route, sent to the workbench (or to the login page)."""

    @expose("/")
    def index(self):
        return redirect(url_for("Workbench.home"))


class Workbench(BaseView):
    route_base = "/workbench"
    default_view = "home"
    base_permissions = []

    @expose("/")
    def home(self):
        user = getattr(g, "user", None)
        if user is None or not user.is_authenticated:
            return login_redirect()
        rt = current_app.extensions["danbao"]
        lang = current_lang()
        cards = []
        access = access_for(user)           # counts of the records this user may see (record_rules.py)
        for em in rt.meta.entities.values():
            if em.is_child or not em.menu or not can("read", em.name):
                continue
            table = rt.models.table(em.name)
            query = sa.select(sa.func.count()).select_from(table)
            count = rt.session.execute(access.filter(query, em.name, "read", table)).scalar_one()
            cards.append((em, count))
        audit = rt.models.system["danbao_audit"]
        recent = rt.session.execute(
            sa.select(audit.c.root_entity, audit.c.root_id, sa.func.max(audit.c.at).label("at"))
            .where(audit.c.user_id == user.id)
            .group_by(audit.c.root_entity, audit.c.root_id)
            .order_by(sa.func.max(audit.c.at).desc()).limit(10)).all()
        recent = [r for r in recent if r.root_entity in rt.meta.entities and can("read", r.root_entity)
                  and access.allows(r.root_entity, r.root_id, "read")]
        warning_count, warnings = workbench_warnings(rt, user)
        return self.render_template("danbao/workbench.html", cards=cards, recent=recent, meta=rt.meta,
                                    lang=lang, t=t, label=lambda x: x.get(lang), warning_count=warning_count,
                                    warnings=warnings, tr=tr)
