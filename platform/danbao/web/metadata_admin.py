"""Admins see the metadata in force, what the packs on disk would change, and apply it.

Validation errors and the schema migration a change implies are shown
before anything runs; only a change whose steps are all safe is applied
from the screen (destructive ones need ``danbao db upgrade
--allow-destructive``, which takes a backup first). The new runtime is
swapped in without a restart.
"""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, url_for
from flask_appbuilder import BaseView, expose

from danbao.meta.loader import PackErrors, load_packs, validate_packs
from danbao.model.builder import build_models
from danbao.model.migrate import MigrationRefused, plan_migration
from danbao.web.access import login_redirect
from danbao.web.i18n import current_lang

VIEW = "DanbaoMetadata"
TEXT = {
    "title": ("元数据与数据库", "Metadata and database"),
    "in_force": ("当前生效", "In force"), "on_disk": ("磁盘上的元数据包", "Packs on disk"),
    "valid": ("校验通过", "Valid"), "invalid": ("校验失败，未做任何更改", "Invalid: nothing was changed"),
    "no_changes": ("数据库无需变更", "No database changes"),
    "plan": ("将执行的数据库变更", "Database changes to apply"),
    "apply": ("应用并重新加载", "Apply and reload"),
    "applied": ("已应用：新的元数据已生效（第 {n} 代）", "Applied: the new metadata is in force (generation {n})"),
    "refused": ("未应用：", "Not applied: "),
    "needs_cli": ("包含破坏性或被阻止的变更，请由运维人员执行 danbao db upgrade --allow-destructive（会先备份）",
                  "Contains destructive or blocked steps: an operator must run danbao db upgrade --allow-destructive "
                  "(a backup is taken first)"),
    "no_switcher": ("当前进程不支持热加载（请重启服务）", "This process cannot reload (restart the server)"),
    "same": ("磁盘上的元数据与当前一致", "The packs on disk are the ones in force"),
}


def tr(key, **kw):
    zh, en = TEXT[key]
    return (en if current_lang() == "en" else zh).format(**kw)


class MetadataAdmin(BaseView):
    route_base = "/metadata"
    default_view = "index"
    base_permissions = []

    def _require_admin(self):
        user = getattr(g, "user", None)
        if user is None or not user.is_authenticated:
            return login_redirect()
        if not current_app.appbuilder.sm.has_access("can_manage", VIEW):
            abort(403)
        return None

    def _candidate(self):
        rt = current_app.extensions["danbao"]
        errors = validate_packs(rt.settings.packs)
        if errors:
            return rt, None, None, errors
        meta = load_packs(rt.settings.packs)
        plan = plan_migration(rt.db.engine, build_models(meta))
        return rt, meta, plan, []

    @expose("/")
    def index(self):
        resp = self._require_admin()
        if resp:
            return resp
        rt, meta, plan, errors = self._candidate()
        return self.render_template("danbao/metadata.html", rt=rt, meta=meta, plan=plan, errors=errors,
                                    tr=tr, lang=current_lang())

    @expose("/apply", methods=["POST"])
    def apply(self):
        resp = self._require_admin()
        if resp:
            return resp
        switcher = current_app.extensions.get("danbao_switcher")
        if switcher is None:
            flash(tr("no_switcher"), "danger")
            return redirect(url_for("MetadataAdmin.index"))
        rt, meta, plan, errors = self._candidate()
        if errors:
            flash(tr("invalid"), "danger")
            return redirect(url_for("MetadataAdmin.index"))
        if plan.refusals(allow_destructive=False):
            flash(tr("needs_cli"), "danger")
            return redirect(url_for("MetadataAdmin.index"))
        try:
            switcher.reload(meta=meta)
        except (PackErrors, MigrationRefused) as exc:
            flash(tr("refused") + str(exc), "danger")
            return redirect(url_for("MetadataAdmin.index"))
        flash(tr("applied", n=switcher.generation), "success")
        return redirect(url_for("MetadataAdmin.index"))
