"""The generated screens: one dispatcher view serves every entity.

FAB builds a class, a blueprint and a set of routes per ModelView, which is
what makes a 300-entity pack slow to boot. Here one ``EntityView`` answers
``/e/<entity>/...`` for all entities and looks the entity up in Meta per
request, so boot cost does not grow with views. Everything it does is
delegated: the query engine lists, the record service writes, templates
render. Permissions are checked per entity and action (see access.py).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from flask import abort, current_app, flash, g, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from danbao.engines import documents
from danbao.engines.query import filter_kind, lookup, parse_list_args, run_list
from danbao.engines.records import Actor, Conflict, NotFound, RecordService, ValidationFailed
from danbao.engines.record_rules import OutOfScope
from danbao.web.access import can, login_redirect
from danbao.engines.scoring import cards_for, scores_of
from danbao.engines.masking import record_clear_views
from danbao.engines.users import active_users, user_names, users_with_roles
from danbao.web.scope import access_for, masker_for
from danbao.web.display import UserNames, audit_value, display, format_value, input_value, title_of
from danbao.config import local_tz
from danbao.web.exprjs import child_rules, form_rules
from danbao.web import uploads
from danbao.engines.refusals import Refusal
from danbao.web.forms import payload_from_form, row_state, stacked
from danbao.web.history import history_page
from danbao.web.i18n import current_lang, t


def runtime():
    return current_app.extensions["danbao"]


def today() -> dt.date:
    return dt.datetime.now(local_tz()).date()


def row_record(row, saved_of: dict):
    """The stored child record behind a row on screen: the record itself, or, for posted
    values shown again after an error, the one its ``id`` names (None for a new row)."""
    if row is None:
        return None
    if not isinstance(row, dict):
        return row
    return saved_of.get(str(row.get("id") or ""))


def actor() -> Actor:
    user = g.user if getattr(g, "user", None) is not None and g.user.is_authenticated else None
    return Actor(user_id=user.id if user else None, username=user.username if user else "anonymous",
                 lang=current_lang())


def service() -> RecordService:
    rt = runtime()
    return RecordService(rt.models, rt.session, actor(), access=access_for(getattr(g, "user", None)))


def user_options(session, f=None, current=None) -> list[tuple[int, str]]:
    """The active users a user field may name: those holding its required role
    (and whoever it names now, so an edit does not silently change it)."""
    users = active_users(session)
    if f is None or not getattr(f, "roles", ()):
        return users
    allowed = users_with_roles(session, f.roles)
    current = int(current) if isinstance(current, int) or (isinstance(current, str) and current.isdigit()) else None
    return [(uid, name) for uid, name in users if uid in allowed or uid == current]


def log_clear_views(em, ids, channel: str) -> None:
    """Record who saw these records' ID numbers, phones or accounts in clear (masking.py)."""
    rt = runtime()
    user = getattr(g, "user", None)
    if user is None or not user.is_authenticated:
        return
    if record_clear_views(rt.session, rt.models, masker_for(user), user.id, user.username, em, ids, channel):
        rt.session.commit()


#: the document-kind (资料类型) controls of the attachments list and the upload form
DOC_TEXT = {
    "doc_kind": ("资料类型", "Document kind"), "doc_none": ("（未标注资料类型）", "(no document kind)"),
    "doc_save": ("标注", "Tag"), "doc_tagged": ("已标注为：{label}", "Tagged as: {label}"),
    "doc_untagged": ("已取消资料类型标注", "Document kind removed"),
    "doc_upload_kind": ("本次上传文件的资料类型（可选）", "Document kind of the files uploaded now (optional)"),
}


def doc_text(key: str, **kw) -> str:
    zh, en = DOC_TEXT[key]
    return (en if current_lang() == "en" else zh).format(**kw)


def documents_ctx(em, obj) -> dict:
    """What _files.html and the upload form need to show and set document kinds: nothing
    unless the record is a project or a customer (whose files count for projects)."""
    rt = runtime()
    if em.name not in documents.taggable_entities(rt.meta):
        return {"doc_kinds": [], "doc_kind_names": {}, "doc_tags": {}, "dtr": doc_text}
    lang = current_lang()
    kinds = [(code, label.get(lang)) for code, label in documents.kind_options(rt.meta)]
    tags = documents.tags_for(rt.session, rt.models, em.name, obj.id) if obj is not None and obj.id else {}
    return {"doc_kinds": kinds, "doc_kind_names": dict(kinds), "doc_tags": tags, "dtr": doc_text}


class EntityView(BaseView):
    route_base = "/e"
    default_view = "index"
    base_permissions = []   # checked per entity, not per FAB view
    class_permission_name = "EntityView"

    # -- helpers ----------------------------------------------------------
    def _entity(self, name: str, action: str = "read"):
        if not current_user.is_authenticated:
            return None, login_redirect(next=request.full_path)
        meta = runtime().meta
        if name not in meta.entities:
            abort(404)
        if not can(action, name):
            flash(t("forbidden"), "danger")
            abort(403)
        return meta.entity(name), None

    def _ctx(self, em, **kw):
        rt = runtime()
        lang = current_lang()
        users = UserNames(lambda: user_names(rt.session))
        masker = masker_for(getattr(g, "user", None))
        access = access_for(getattr(g, "user", None))
        return dict(em=em, meta=rt.meta, lang=lang, t=t, label=lambda x: x.get(lang) if x else "",
                    display=lambda f, obj: masker.value(f, display(rt.meta, f, obj, lang, users),
                                                        getattr(obj, "__danbao_entity__", None)),
                    fmt=lambda f, v: masker.value(f, format_value(rt.meta, f, v, lang, users)),
                    user_options=lambda f=None, v=None: user_options(rt.session, f, v),
                    title_of=lambda obj: title_of(rt.meta, obj),
                    input_value=lambda f, v: masker.value(f, input_value(f, v)),
                    audit_value=lambda hem, field, text: masker.value(
                        hem.field(field), audit_value(rt.meta, hem, field, text, lang), hem)
                    if hem is not None and field and hem.has_field(field) else audit_value(rt.meta, hem, field, text, lang),
                    filter_kind=filter_kind, can=can,
                    ref_options=lambda f: lookup(rt.session, rt.models, rt.meta.entity(f.target), "", limit=1000,
                                                 access=access), csrf_token=generate_csrf,
                    stacked=stacked, row_record=row_record,
                    row_state=lambda child, row: row_state(rt.meta, child, row if row is not None else {}, today()),
                    base_template=current_app.appbuilder.base_template, appbuilder=current_app.appbuilder,
                    **{"child_files": {}, "saved_rows": {}, **kw})

    # -- list / show --------------------------------------------------------
    @expose("/")
    def index(self):
        return redirect(current_app.appbuilder.get_url_for_index)

    @expose("/<entity>/")
    def list(self, entity):
        em, resp = self._entity(entity)
        if resp:
            return resp
        if em.is_child:
            abort(404)
        rt = runtime()
        lq = parse_list_args(em, request.args, rt.meta)
        for key, msg in lq.errors.items():
            flash(f"{key}: {msg.get(current_lang())}", "warning")
        page = run_list(rt.session, rt.models, em, lq, access=access_for(g.user))
        html = self.render_template("danbao/list.html", **self._ctx(em, page=page, lq=lq, args=request.args))
        if any(em.field(c).sensitive for c in em.list.columns):
            log_clear_views(em, [obj.id for obj in page.rows], "list")
        return html

    @expose("/<entity>/<int:record_id>")
    def show(self, entity, record_id):
        em, resp = self._entity(entity)
        if resp:
            return resp
        rt = runtime()
        try:
            obj = service().get(entity, record_id)
        except NotFound:
            abort(404)
        history = history_page(rt.session, rt.models.system["danbao_audit"], entity, record_id,
                               everything=request.args.get("history") == "all")
        files = rt.store.list(rt.session, entity, record_id)
        cards = cards_for(rt.meta, entity)
        scores = scores_of(rt.session, rt.models, entity, record_id) if cards else []
        from danbao.web.project_panels import project_panels
        from danbao.web.workflow_views import workflow_panel
        state = row_state(rt.meta, em, obj, today())
        html = self.render_template("danbao/show.html", **self._ctx(em, obj=obj, files=files,
                                                                    changes=history.changes, more_changes=history.more,
                                                                    changes_cut=history.cut, field_state=state,
                                                                    cards=cards, scores=scores,
                                                                    wfp=workflow_panel(entity, record_id),
                                                                    panels=project_panels(em, obj, files),
                                                                    hidden=state.sections,
                                                                    child_files=uploads.child_files(runtime(), em, obj),
                                                                    **documents_ctx(em, obj)))
        log_clear_views(em, [record_id], "page")
        return html

    # -- add / edit -----------------------------------------------------------
    @expose("/<entity>/add", methods=["GET", "POST"])
    def add(self, entity):
        em, resp = self._entity(entity, "write")
        if resp:
            return resp
        if em.is_child:
            abort(404)
        if request.method == "GET":
            return self._form(em, None, {}, {})
        data = payload_from_form(em, request.form, runtime().meta, request.files)
        staged, file_errors = uploads.stage_child_files(runtime(), em, data, today())
        try:
            if file_errors:
                return self._form(em, None, data, file_errors, status=422, reselect=True)
            try:
                obj = service().create(entity, data)
            except ValidationFailed as exc:
                return self._form(em, None, data, exc.messages(current_lang()), status=422, reselect=uploads.chose_files())
            except OutOfScope as exc:
                runtime().session.rollback()
                return self._form(em, None, data, {exc.field or "_": exc.message.get(current_lang())}, status=exc.status,
                                  reselect=uploads.chose_files())
            except Refusal as exc:
                runtime().session.rollback()
                flash(exc.message.get(current_lang()), "danger")
                return self._form(em, None, data, {}, status=exc.status, reselect=uploads.chose_files())
            rows_changed = uploads.store_child_files(runtime(), actor().user_id, em, obj, data, staged)
        finally:
            uploads.discard(runtime(), staged)
        if uploads.store_files(runtime(), actor().user_id, em, obj) + rows_changed:
            self._refresh_documents(em.name, obj.id)
        flash(t("created"), "success")
        return redirect(url_for("EntityView.show", entity=entity, record_id=obj.id))

    @expose("/<entity>/<int:record_id>/edit", methods=["GET", "POST"])
    def edit(self, entity, record_id):
        em, resp = self._entity(entity, "write")
        if resp:
            return resp
        svc = service()
        try:
            obj = svc.get(entity, record_id)
        except NotFound:
            abort(404)
        if svc.access is not None and not svc.access.allows(entity, record_id, "write"):
            flash(svc.access.out_of_scope(em, "write").message.get(current_lang()), "danger")
            abort(403)
        if request.method == "GET":
            return self._form(em, obj, None, {})
        data = payload_from_form(em, request.form, runtime().meta, request.files)
        for name in self._locked_collections(svc, em, obj):
            data.pop(name, None)             # shown as text, not posted: sending nothing is no change
        staged, file_errors = uploads.stage_child_files(runtime(), em, data, today())
        try:
            if file_errors:
                return self._form(em, obj, data, file_errors, status=422, version=request.form.get("version"),
                                  reselect=True)
            try:
                svc.update(entity, record_id, data, expected_version=request.form.get("version"))
            except ValidationFailed as exc:
                runtime().session.rollback()
                return self._form(em, svc.get(entity, record_id), data, exc.messages(current_lang()), status=422,
                                  reselect=uploads.chose_files())
            except OutOfScope as exc:
                runtime().session.rollback()
                return self._form(em, svc.get(entity, record_id), data,
                                  {exc.field or "_": exc.message.get(current_lang())}, status=exc.status,
                                  version=request.form.get("version"), reselect=uploads.chose_files())
            except Refusal as exc:
                # a colleague's change, a locked field: keep what the user typed on screen; nothing was saved
                runtime().session.rollback()
                flash(exc.message.get(current_lang()), "danger")
                return self._form(em, svc.get(entity, record_id), data, {}, status=exc.status,
                                  version=request.form.get("version"), reselect=uploads.chose_files())
            rows_changed = uploads.store_child_files(runtime(), actor().user_id, em, obj, data, staged)
        finally:
            uploads.discard(runtime(), staged)
        removed = uploads.remove_files(runtime(), em, record_id)
        if uploads.store_files(runtime(), actor().user_id, em, obj) + removed + rows_changed:
            self._refresh_documents(entity, record_id)
        flash(t("saved"), "success")
        return redirect(url_for("EntityView.show", entity=entity, record_id=record_id))

    def _form(self, em, obj, data, errors, status=200, version=None, reselect=False):
        rt = runtime()
        if errors:
            flash(t("fix_errors"), "danger")
        if reselect:
            flash(t("files_not_kept"), "warning")
        files = rt.store.list(rt.session, em.name, obj.id) if obj is not None else []
        rules = {"today": today().isoformat(), "rules": form_rules(rt.meta, em),
                 "types": {f.name: f.type for f in em.column_fields}, "children": child_rules(rt.meta, em)}
        saved = {f.name: {str(c.id): c for c in getattr(obj, f.name)} for f in em.children} if obj is not None else {}
        locked = set()
        if obj is not None:
            names = [f.name for f in em.fields if f.type != "attachments" and not f.readonly]
            stopped, forbidden = service().gate.locked(em, obj, names)
            locked = set(stopped) | set(forbidden)
        html = self.render_template("danbao/form.html", **self._ctx(
            em, obj=obj, data=data, errors=errors, files=files, rules=rules, locked=locked,
            version=version if version is not None else (obj.version if obj is not None else None),
            child_files=uploads.child_files(runtime(), em, obj), saved_rows=saved, **documents_ctx(em, obj)))
        return html, status

    @staticmethod
    def _locked_collections(svc, em, obj) -> list[str]:
        """Child collections this person may not change now: the form shows them as text."""
        names = [f.name for f in em.children]
        stopped, forbidden = svc.gate.locked(em, obj, names)
        return stopped + forbidden

    def _refresh_documents(self, entity, record_id) -> None:
        """Files of a project or a customer changed: rewrite the projects' missing documents.
        A concurrent change of a project is left to its next save (which recomputes them)."""
        if entity not in documents.taggable_entities(runtime().meta):
            return
        session = runtime().session
        try:
            documents.refresh_documents_missing(service(), entity, record_id)
            session.commit()
        except (ValidationFailed, Conflict, NotFound, StaleDataError, IntegrityError):
            session.rollback()

    @expose("/<entity>/<int:record_id>/files/<int:attachment_id>/tag", methods=["POST"])
    def tag_file(self, entity, record_id, attachment_id):
        """Say which document a file of a project or customer is (an empty kind removes the tag)."""
        em, resp = self._entity(entity, "write")
        if resp:
            return resp
        rt = runtime()
        svc = service()
        if svc.access is not None and not svc.access.allows(entity, record_id, "read"):
            abort(404)
        if svc.access is not None and not svc.access.allows(entity, record_id, "write"):
            abort(403)
        if entity not in documents.taggable_entities(rt.meta) \
                or rt.store.get(rt.session, entity, record_id, attachment_id) is None:
            abort(404)
        lang = current_lang()
        try:
            code = documents.tag(rt.session, rt.models, rt.meta, attachment_id, request.form.get("doc_kind"),
                                 actor().user_id)
            rt.session.commit()
        except documents.DocumentRefused as exc:
            rt.session.rollback()
            flash(exc.message.get(lang), "danger")
        else:
            self._refresh_documents(entity, record_id)
            flash(doc_text("doc_tagged", label=documents.kind_label(rt.meta, code).get(lang)) if code
                  else doc_text("doc_untagged"), "success")
        return redirect(url_for("EntityView.show", entity=entity, record_id=record_id))

    # -- delete ------------------------------------------------------------------
    @expose("/<entity>/<int:record_id>/delete", methods=["POST"])
    def delete(self, entity, record_id):
        em, resp = self._entity(entity, "delete")
        if resp:
            return resp
        try:
            service().delete(entity, record_id, expected_version=request.form.get("version") or None)
        except NotFound:
            abort(404)
        except OutOfScope as exc:
            runtime().session.rollback()
            flash(exc.message.get(current_lang()), "danger")
            abort(403)
        except Refusal as exc:
            runtime().session.rollback()
            flash(exc.message.get(current_lang()), "danger")
            return redirect(url_for("EntityView.show", entity=entity, record_id=record_id))
        flash(t("deleted"), "success")
        return redirect(url_for("EntityView.list", entity=entity))

    # -- files and lookups ---------------------------------------------------------
    @expose("/<entity>/<int:record_id>/files/<int:attachment_id>")
    def file(self, entity, record_id, attachment_id):
        em, resp = self._entity(entity)
        if resp:
            return resp
        rt = runtime()
        try:
            service().get(entity, record_id)     # a deleted record's files (kept for the audit) are not served
        except NotFound:
            abort(404)
        stored = rt.store.get(rt.session, entity, record_id, attachment_id)
        if stored is None or not stored.path.exists():
            abort(404)
        inline = stored.previewable and request.args.get("download") is None
        response = send_file(stored.path, mimetype=stored.content_type, as_attachment=not inline,
                             download_name=stored.filename, conditional=True)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    @expose("/<entity>/lookup")
    def lookup(self, entity):
        em, resp = self._entity(entity)
        if resp:
            return resp
        rt = runtime()
        pairs = lookup(rt.session, rt.models, em, request.args.get("q", ""), access=access_for(g.user))
        return jsonify(results=[{"id": i, "text": text} for i, text in pairs])
