"""The ledger (台账) on screen: the panel of a project's page, its form posts,
the page of entries waiting for me (待处理台账) and its badge in the menu bar.

Thin: every rule is the ledger engine's (``engines/ledger.py``). This module
decides only which buttons to offer — from the same ``ledger_maker`` /
``ledger_checker`` / ``ledger_confirmer`` settings the engine reads, so a
button is shown to the people the engine would let through — and shows the
engine's refusal (``LedgerRefused.message``) as a flashed message. The
entry dictionaries built here are the REST API's too (``web/ledger_api.py``).
"""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import SQLAlchemyError

from danbao.config import local_tz
from danbao.engines.ledger import (BALANCE_LABELS, ROLES, STATE_LABELS, LedgerRefused, LedgerService, named_for,
                                   assignees)
from danbao.engines.query import record_titles
from danbao.engines.records import Actor, NotFound
from danbao.engines.users import user_names
from danbao.meta.model import LEDGER_BALANCES, Label, Meta
from danbao.web.access import can, login_redirect
from danbao.web.i18n import current_lang

log = logging.getLogger(__name__)
MENU_NAME = "danbao_ledger"
MENU_LABEL = Label("待处理台账", "Ledger to check")
ACTIONS = ("check", "confirm", "reject", "reverse")
TEXT = {
    "ledger": ("台账", "Ledger"), "balances": ("余额", "Balances"), "entries": ("分录", "Entries"),
    "pending": ("待处理台账", "Ledger entries waiting for me"), "kind": ("类型", "Kind"),
    "amount": ("金额(元)", "Amount (CNY)"), "booked_on": ("记账日期", "Booked on"), "note": ("说明", "Note"),
    "state": ("状态", "State"), "maker": ("制单", "Made by"), "checker": ("复核", "Checked by"),
    "confirmer": ("确认", "Confirmed by"), "project": ("项目", "Project"), "waiting": ("待办", "To do"),
    "make": ("登记分录", "Make an entry"), "submit": ("提交制单", "Make"),
    "check": ("复核", "Check"), "confirm": ("确认", "Confirm"), "reject": ("退回", "Reject"),
    "reverse": ("冲销", "Reverse"), "reason": ("原因", "Reason"), "reason_required": ("原因（必填）", "Reason (required)"),
    "reversal": ("冲销", "reversal"), "reversal_of": ("冲销 #{id}", "reverses #{id}"),
    "reversed_by": ("已被 #{id} 冲销", "reversed by #{id}"), "rejected_by": ("退回", "Rejected by"),
    "none": ("暂无分录", "No entries"), "nothing": ("没有等待您处理的台账分录", "No ledger entries are waiting for you"),
    "done_make": ("分录已登记，等待复核", "Entry made: it now waits to be checked"),
    "done_check": ("已复核，等待确认", "Checked: it now waits to be confirmed"),
    "done_confirm": ("已确认入账", "Confirmed: it now counts in the balances"),
    "done_reject": ("已退回", "Rejected"), "done_reverse": ("冲销分录已登记，等待复核", "Reversal made: it now waits to be checked"),
    "bad_amount": ("金额应为数字，最多两位小数", "The amount must be a number with at most two decimal places"),
    "bad_date": ("记账日期格式应为 YYYY-MM-DD", "The booking date must be a date (YYYY-MM-DD)"),
    "failed": ("保存失败，请稍后再试", "Not saved: try again later"),
    "badge": ("等待我复核或确认的台账分录", "ledger entries waiting for my check or confirmation"),
    "step_check": ("待复核", "to check"), "step_confirm": ("待确认", "to confirm"),
    "optional": ("（可选）", "(optional)"),
}


def tr(key: str, **kw) -> str:
    zh, en = TEXT[key]
    return (en if current_lang() == "en" else zh).format(**kw)


def configured(meta: Meta) -> bool:
    """Whether this build has a ledger: a project entity and ledger kinds."""
    name = meta.setting("project_entity")
    return bool(meta.ledger_kinds) and bool(name) and name in meta.entities


def runtime():
    return current_app.extensions["danbao"]


def service(rt=None) -> LedgerService:
    rt = rt or runtime()
    return LedgerService(rt.session, rt.models, rt.meta)


def balance_label(code: str) -> Label:
    return BALANCE_LABELS.get(code, Label(code, code))


def kind_label(meta: Meta, code: str) -> Label:
    """The kind's label; its code when the metadata no longer declares it (its entries still count)."""
    km = meta.ledger_kinds.get(code)
    return km.label if km is not None else Label(code, code)


def state_label(code: str) -> Label:
    return STATE_LABELS.get(code, Label(code, code))


# -- who may (the buttons only: the engine decides) ------------------------------------------
def steps_for(meta: Meta, user_id: int | None, roles: set[str], project) -> set[str]:
    """The steps (make / check / confirm) the user is named for on ``project`` (a row or a record)."""
    if project is None:
        return set()
    return {step for step in ROLES if named_for(meta, step, user_id, roles, project)}


def entry_actions(entry, steps: set[str], user_id: int | None, reversed_by: int | None,
                  *, known: bool = True) -> list[str]:
    """The buttons the user gets on one entry. An entry of a kind the metadata
    no longer declares (``known`` false) can only be rejected: the engine
    confirms and reverses declared kinds only."""
    out = []
    mine = user_id in (entry.made_by_id, entry.checked_by_id)
    if entry.state == "made" and "check" in steps and not mine:
        out += ["check", "reject"]
    elif entry.state == "checked" and "confirm" in steps and not mine:
        out += ["confirm", "reject"]
    elif entry.state == "confirmed" and entry.direction == 1 and reversed_by is None and "make" in steps:
        out.append("reverse")
    return out if known else [a for a in out if a == "reject"]


def role_grants(meta: Meta) -> dict[str, list[list[str]]]:
    """Extra FAB_ROLES grants: the pending page's menu entry for the roles that check or confirm."""
    if not configured(meta):
        return {}
    roles = set()
    for step in ("check", "confirm"):
        roles |= set(assignees(meta.setting(ROLES[step])).roles)
    return {role: [[f"^{MENU_NAME}$", "^menu_access$"]] for role in sorted(roles) if role in meta.roles}


# -- entries as the screens and the API show them ----------------------------------------------
def _iso(value):
    return value.isoformat() if value is not None else None


def project_titles(rt, refs) -> dict[tuple[str, int], str]:
    return record_titles(rt.session, rt.models, rt.meta, refs)


def entry_dict(meta: Meta, row, lang: str, names: dict[int, str], *, reversed_by: int | None = None,
               title: str | None = None, actions: list[str] | None = None) -> dict:
    """One ledger entry for JSON and templates: amounts as strings, dates ISO, labels in ``lang``."""
    out = {
        "id": row.id, "project_entity": row.project_entity, "project_id": row.project_id,
        "project_title": title, "link": f"/e/{row.project_entity}/{row.project_id}",
        "customer_entity": row.customer_entity, "customer_id": row.customer_id,
        "kind": row.kind, "kind_label": kind_label(meta, row.kind).get(lang),
        "amount": str(Decimal(row.amount).quantize(Decimal("0.01"))), "direction": row.direction,
        "reversal": row.reverses_id is not None, "reverses_id": row.reverses_id, "reversed_by_id": reversed_by,
        "state": row.state, "state_label": state_label(row.state).get(lang),
        "booked_on": _iso(row.booked_on), "note": row.note or "",
        "lock_version": row.lock_version,
    }
    for who in ("made", "checked", "confirmed", "rejected"):
        uid = getattr(row, f"{who}_by_id")
        out[f"{who}_by_id"] = uid
        out[f"{who}_by"] = names.get(uid, f"#{uid}") if uid is not None else None
        out[f"{who}_at"] = _iso(getattr(row, f"{who}_at"))
    out["reject_reason"] = row.reject_reason
    if actions is not None:
        out["actions"] = actions
    return out


def money_text(value) -> str:
    """An amount with thousands separators (1,234.50)."""
    return f"{Decimal(value):,.2f}"


def balances_list(balances: dict[str, Decimal], lang: str) -> list[dict]:
    return [{"code": b, "label": balance_label(b).get(lang), "amount": str(balances.get(b, Decimal("0.00")))}
            for b in LEDGER_BALANCES]


def _people(rows) -> set[int]:
    return {uid for r in rows for uid in (r.made_by_id, r.checked_by_id, r.confirmed_by_id, r.rejected_by_id)
            if uid is not None}


def project_ledger(rt, project_id: int, user, lang: str, project=None) -> dict:
    """Balances and entries of one project as seen by ``user`` (with the buttons they get)."""
    svc = service(rt)
    if project is None:
        table = rt.models.table(svc.project_entity)
        project = rt.session.execute(sa.select(table).where(table.c.id == project_id)).first()
        if project is None:
            raise NotFound(svc.project_entity, project_id)
    rows = svc.entries(project_id)
    names = user_names(rt.session, _people(rows))
    reversed_by = {r.reverses_id: r.id for r in rows if r.reverses_id is not None and r.state != "rejected"}
    user_id = getattr(user, "id", None)
    roles = {r.name for r in (getattr(user, "roles", None) or ())}
    steps = steps_for(rt.meta, user_id, roles, project)
    entries = [entry_dict(rt.meta, r, lang, names, reversed_by=reversed_by.get(r.id),
                          actions=entry_actions(r, steps, user_id, reversed_by.get(r.id),
                                                known=r.kind in rt.meta.ledger_kinds)) for r in rows]
    entries.reverse()                      # newest first on screen and in the API
    return {"project_entity": svc.project_entity, "project_id": project_id,
            "balances": balances_list(svc.balances(project_id), lang), "entries": entries,
            "can_make": "make" in steps}


def pending_entries(rt, user, lang: str) -> list[dict]:
    """Entries waiting for ``user``'s check or confirmation, oldest first."""
    rows = service(rt).pending_for(user.id)
    names = user_names(rt.session, _people(rows))
    titles = project_titles(rt, {(r.project_entity, r.project_id) for r in rows})
    out = []
    for r in rows:
        step = "check" if r.state == "made" else "confirm"
        d = entry_dict(rt.meta, r, lang, names, title=titles.get((r.project_entity, r.project_id)),
                       actions=[step, "reject"] if r.kind in rt.meta.ledger_kinds else ["reject"])
        d["step"] = step
        out.append(d)
    return out


def pending_count() -> int:
    """How many entries wait for the signed-in user (the menu-bar badge); once per request."""
    if "danbao_ledger_badge" in g:
        return g.danbao_ledger_badge
    count = 0
    if current_user.is_authenticated:
        rt = runtime()
        if configured(rt.meta):
            try:
                count = len(service(rt).pending_for(current_user.id))
            except SQLAlchemyError:          # a menu bar must never break a page
                rt.session.rollback()
                log.debug("ledger badge unavailable", exc_info=True)
    g.danbao_ledger_badge = count
    return count


def checks_ledger() -> bool:
    """Whether the signed-in user holds a role that checks or confirms entries (the badge's icon shows)."""
    if not current_user.is_authenticated:
        return False
    meta = runtime().meta
    roles = {r.name for r in (getattr(current_user, "roles", None) or ())}
    return any(roles & set(assignees(meta.setting(ROLES[step])).roles) for step in ("check", "confirm"))


def register_badge(app) -> None:
    app.context_processor(lambda: {"danbao_ledger_badge": pending_count, "danbao_ledger_tr": tr,
                                   "danbao_ledger_checks": checks_ledger})


def ledger_panel(em, obj) -> dict | None:
    """What the project page shows of the ledger, or None when this is not the project entity."""
    rt = runtime()
    if not configured(rt.meta) or em.name != rt.meta.setting("project_entity"):
        return None
    lang = current_lang()
    data = project_ledger(rt, obj.id, current_user, lang, project=obj)
    data.update(tr=tr, csrf_token=generate_csrf, fmt=money_text, kinds=list(rt.meta.ledger_kinds.values()), lang=lang,
                today=dt.datetime.now(local_tz()).date().isoformat())
    return data


# -- form posts and the pending page -------------------------------------------------------------
def _actor() -> Actor:
    return Actor(user_id=current_user.id, username=current_user.username, lang=current_lang())


def parse_amount(raw: str | None) -> Decimal | None:
    text = (raw or "").strip().replace(",", "").replace("，", "")
    if not text or len(text) > 24:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def parse_date(raw: str | None):
    """(date or None, ok)."""
    text = (raw or "").strip()
    if not text:
        return None, True
    try:
        return dt.date.fromisoformat(text), True
    except ValueError:
        return None, False


class LedgerView(BaseView):
    route_base = "/ledger"
    default_view = "pending"
    base_permissions = []

    def _signed_in(self):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        if not configured(runtime().meta):
            abort(404)
        return None

    def _back(self, entity: str, record_id: int):
        if request.form.get("next") == "pending":
            return redirect(url_for("LedgerView.pending"))
        return redirect(url_for("EntityView.show", entity=entity, record_id=record_id) + "#ledger")

    def _run(self, call, done: str) -> bool:
        rt = runtime()
        try:
            call()
        except LedgerRefused as exc:
            rt.session.rollback()
            flash(exc.message.get(current_lang()), "danger")
            return False
        except NotFound:
            rt.session.rollback()
            abort(404)
        except SQLAlchemyError:
            rt.session.rollback()
            log.exception("ledger action failed")
            flash(tr("failed"), "danger")
            return False
        flash(tr(done), "success")
        return True

    @expose("/pending")
    def pending(self):
        resp = self._signed_in()
        if resp:
            return resp
        rt = runtime()
        lang = current_lang()
        rows = pending_entries(rt, current_user, lang)
        rt.session.rollback()
        return self.render_template("danbao/ledger_pending.html", rows=rows, tr=tr, lang=lang, fmt=money_text,
                                    csrf_token=generate_csrf, base_template=current_app.appbuilder.base_template,
                                    appbuilder=current_app.appbuilder)

    @expose("/<entity>/<int:record_id>/make", methods=["POST"])
    def make(self, entity, record_id):
        resp = self._signed_in()
        if resp:
            return resp
        rt = runtime()
        if entity != rt.meta.setting("project_entity"):
            abort(404)
        if not can("read", entity):
            abort(403)
        form = request.form
        amount = parse_amount(form.get("amount"))
        booked_on, ok = parse_date(form.get("booked_on"))
        if amount is None:
            flash(tr("bad_amount"), "danger")
        elif not ok:
            flash(tr("bad_date"), "danger")
        else:
            self._run(lambda: service(rt).make(record_id, form.get("kind", ""), amount, _actor(),
                                               booked_on=booked_on, note=form.get("note", "")), "done_make")
        return self._back(entity, record_id)

    @expose("/entry/<int:entry_id>/<action>", methods=["POST"])
    def act(self, entry_id, action):
        resp = self._signed_in()
        if resp:
            return resp
        if action not in ACTIONS:
            abort(404)
        rt = runtime()
        svc = service(rt)
        try:
            entry = svc.entry(entry_id)
        except NotFound:
            abort(404)
        if not can("read", entry.project_entity):
            abort(403)
        reason = request.form.get("reason", "")
        calls = {"check": lambda: svc.check(entry_id, _actor()),
                 "confirm": lambda: svc.confirm(entry_id, _actor()),
                 "reject": lambda: svc.reject(entry_id, _actor(), reason),
                 "reverse": lambda: svc.reverse(entry_id, _actor(), reason)}
        self._run(calls[action], f"done_{action}")
        return self._back(entry.project_entity, entry.project_id)
