"""Screens for credit scoring: score a customer, read one score's explanation.

Scoring needs write permission on the customer's entity; reading a score
needs read permission. The work is done by engines/scoring.py; this module
only reads the form and renders.
"""
from __future__ import annotations

import datetime as dt

from flask import abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from danbao.config import local_tz
from danbao.engines.records import NotFound, ValidationFailed
from danbao.engines.scoring import (ScoringError, card_for, cards_for, last_inputs, load_score, score_record,
                                    score_to_dict)
from danbao.web.access import can, login_redirect
from danbao.web.i18n import current_lang, t
from danbao.web.views import actor, runtime, service


def today() -> dt.date:
    return dt.datetime.now(local_tz()).date()


class ScoreView(BaseView):
    route_base = "/scores"
    default_view = "new"
    base_permissions = []

    def _ctx(self, **kw):
        lang = current_lang()
        return dict(lang=lang, t=t, label=lambda x: x.get(lang) if x else "", csrf_token=generate_csrf,
                    meta=runtime().meta, base_template=current_app.appbuilder.base_template,
                    appbuilder=current_app.appbuilder, **kw)

    @expose("/<entity>/<int:record_id>/new", methods=["GET", "POST"])
    def new(self, entity, record_id):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        rt = runtime()
        cards = cards_for(rt.meta, entity) if entity in rt.meta.entities else []
        if not cards:
            abort(404)
        if not can("write", entity):
            abort(403)
        # no card named: the product's card (?product=code, or ?project=id of one of the customer's
        # projects, as the project page links it), else the entity's default (engines/scoring.card_for)
        default = card_for(rt.meta, entity, _product_of_request(rt, entity, record_id))
        card = next((c for c in cards if c.code == request.values.get("card")), default)
        svc = service()
        try:
            obj = svc.get(entity, record_id)
        except NotFound:
            abort(404)
        if svc.access is not None and not svc.access.allows(entity, record_id, "write"):
            abort(403)              # readable, but outside the user's write scope
        errors, chosen, as_of = {}, last_inputs(rt.session, rt.models, entity, record_id, card.code), today()
        if request.method == "POST":
            chosen = {i.code: request.form.get(f"input-{i.code}", "") for i in card.indicators if i.input}
            as_of, date_error = _as_of(request.form.get("as_of", ""))
            if date_error:
                errors["as_of"] = date_error
            else:
                try:
                    score_id = score_record(rt.session, rt.models, rt.meta, card.code, record_id, inputs=chosen,
                                            actor=actor(), as_of=as_of)
                except ValidationFailed as exc:
                    errors = exc.messages(current_lang())
                except ScoringError as exc:
                    errors["_"] = exc.message.get(current_lang())
                except NotFound:
                    abort(404)
                else:
                    flash(t("scored"), "success")
                    return redirect(url_for("ScoreView.show", score_id=score_id))
            flash(t("fix_errors"), "danger")
        status = 422 if errors else 200
        return self.render_template("danbao/score_form.html", **self._ctx(
            em=rt.meta.entity(entity), obj=obj, cards=cards, card=card, chosen=chosen, errors=errors,
            as_of=as_of)), status

    @expose("/<int:score_id>")
    def show(self, score_id):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        rt = runtime()
        found = load_score(rt.session, rt.models, score_id)
        if found is None:
            abort(404)
        score, items = found
        if score["entity"] not in rt.meta.entities or not can("read", score["entity"]):
            abort(403)
        access = service().access
        if access is not None and not access.allows(score["entity"], score["record_id"], "read"):
            abort(404)
        data = score_to_dict(score, items, current_lang())
        card = rt.meta.scorecards.get(score["scorecard"])
        groups = dict(card.groups) if card else {}
        obj = rt.session.get(rt.models.cls(score["entity"]), score["record_id"])
        return self.render_template("danbao/score_show.html", **self._ctx(
            score=data, groups=groups, card=card, em=rt.meta.entity(score["entity"]), obj=obj))


def _as_of(raw: str):
    """The scoring date from the form: today by default, never in the future."""
    if not raw:
        return today(), None
    try:
        value = dt.date.fromisoformat(raw)
    except ValueError:
        return today(), t("bad_date")
    if value > today():
        return today(), t("future_date")
    return value, None


def _product_of_request(rt, entity: str, record_id: int) -> str | None:
    """The product context of a scoring page: ``?product=`` or ``?project=`` (one of this customer's projects)."""
    from danbao.engines.projects import customer_of, project_em
    product = request.values.get("product")
    if product in rt.meta.products:
        return product
    raw = request.values.get("project", "")
    em = project_em(rt.meta)
    if em is None or not raw.isdigit() or len(raw) > 10:
        return None
    row = rt.session.get(rt.models.cls(em.name), int(raw))
    return getattr(row, "product", None) if row is not None and customer_of(rt.meta, row) == (entity, record_id) \
        else None
