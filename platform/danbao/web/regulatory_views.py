"""The regulatory dashboard (监管指标) page, its exposure refresh, and its REST route.

``/regulatory/`` shows what ``engines/regulatory.dashboard`` computes —
leverage, single-customer and related-group concentration, 代偿率 and
代偿损失率, breakdowns — for the roles that watch the company's limits;
``POST /regulatory/refresh`` (risk officers and managers) rewrites the
customers' exposure fields. ``GET /api/v1/regulatory/dashboard`` answers the
same figures as JSON (Decimals as strings). All figures are the engine's;
this module only formats them. Charts are plain HTML bars.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask import abort, current_app, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import SQLAlchemyError

from danbao.config import local_tz
from danbao.engines.regulatory import BREACH, NEAR, OK, dashboard, refresh_exposures
from danbao.meta.model import Label, Meta
from danbao.web.access import ADMIN_ROLE, login_redirect
from danbao.web.api import _error, _lang, _runtime, _user, bp
from danbao.web.i18n import current_lang

MENU_NAME = "danbao_regulatory"
MENU_LABEL = Label("监管指标", "Regulatory ratios")
#: who may read the dashboard / refresh the customers' exposures (besides Admin);
#: a pack may replace them with the settings ``regulatory_readers`` / ``regulatory_refreshers``
READ_ROLES = ("manager", "risk_officer", "finance", "auditor")
REFRESH_ROLES = ("manager", "risk_officer")

STATUS_TEXT = {OK: ("正常", "OK"), NEAR: ("接近上限", "Near the limit"), BREACH: ("超限", "Breach")}
STATUS_STYLE = {OK: "success", NEAR: "warning", BREACH: "danger"}
CATEGORY_TEXT = {"financing": ("融资担保", "Financing guarantee"),
                 "non_financing": ("非融资担保", "Non-financing guarantee")}
TEXT = {
    "title": ("监管指标", "Regulatory ratios"), "as_of": ("数据日期", "As of"),
    "net_assets": ("净资产", "Net assets"), "limits": ("监管限额：", "Limits:"),
    "outstanding": ("在保余额", "Outstanding guarantee liability"),
    "in_force": ("在保项目数", "Projects in force"),
    "leverage": ("融资担保放大倍数", "Leverage (liability ÷ net assets)"),
    "leverage_limit": ("放大倍数上限", "Leverage limit"), "times": ("倍", "×"),
    "single_limit": ("单一客户集中度上限", "Single-customer limit"),
    "group_limit": ("关联集团集中度上限", "Related-group limit"),
    "near_share": ("预警线（占上限）", "Near-breach line (share of a limit)"),
    "single": ("单一客户集中度（前 10 名）", "Single-customer concentration (top 10)"),
    "group": ("关联集团集中度（前 10 名）", "Related-group concentration (top 10)"),
    "customer": ("客户", "Customer"), "members": ("集团成员", "Members"),
    "amount": ("在保余额(元)", "Outstanding (CNY)"), "share": ("占净资产", "Share of net assets"),
    "status": ("状态", "Status"), "near": ("接近上限", "Near the limit"), "breach": ("超限", "Breach"),
    "customers": ("客户数", "customers"), "groups": ("集团数", "groups"),
    "compensation": ("代偿指标", "Compensation"),
    "compensation_rate": ("代偿率（本年）", "Compensation rate (this year)"),
    "compensation_in_year": ("本年代偿金额", "Compensation paid this year"),
    "ended_in_year": ("本年解除的担保责任", "Guarantee liability ended this year"),
    "loss_rate": ("代偿损失率", "Compensation loss rate"),
    "compensation_total": ("累计代偿", "Compensation paid (all time)"),
    "recovered_total": ("累计追偿", "Recovered (all time)"),
    "loss_formula": ("（累计代偿 − 累计追偿）÷ 累计代偿", "(compensation − recovered) ÷ compensation"),
    "rate_formula": ("本年代偿 ÷ 本年解除的担保责任", "compensation this year ÷ liability ended this year"),
    "by_status": ("按项目状态", "By project status"), "by_product": ("按担保产品（在保）", "By product (in force)"),
    "by_risk_class": ("按五级分类（在保）", "By risk class (in force)"),
    "count": ("项目数", "Projects"), "none": ("暂无数据", "No data"), "unset": ("（未填）", "(not set)"),
    "refresh": ("刷新客户敞口", "Refresh exposures"),
    "refreshed": ("已刷新客户敞口：{n} 位客户有变化", "Exposures refreshed: {n} customers changed"),
    "refresh_failed": ("刷新失败，请稍后再试", "The refresh failed: try again later"),
    "no_project": ("未配置项目实体（设置 project_entity），无法计算监管指标",
                   "No project entity is configured (setting project_entity): nothing to compute"),
    "no_net_assets": ("未设置净资产（设置 net_assets），集中度与放大倍数无法计算",
                      "Net assets are not set (setting net_assets): ratios cannot be computed"),
    "forbidden": ("您没有权限查看监管指标", "You are not allowed to see the regulatory ratios"),
}


def tr(key: str, **kw) -> str:
    zh, en = TEXT[key]
    return (en if current_lang() == "en" else zh).format(**kw)


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


# -- who may -------------------------------------------------------------------------------------
def role_names_of(user) -> set[str]:
    return {r.name for r in (getattr(user, "roles", None) or ())}


def readers(meta: Meta) -> tuple[str, ...]:
    return tuple(meta.setting("regulatory_readers", READ_ROLES) or ())


def refreshers(meta: Meta) -> tuple[str, ...]:
    return tuple(meta.setting("regulatory_refreshers", REFRESH_ROLES) or ())


def may_read(meta: Meta, user) -> bool:
    roles = role_names_of(user)
    return ADMIN_ROLE in roles or bool(roles & set(readers(meta)))


def may_refresh(meta: Meta, user) -> bool:
    roles = role_names_of(user)
    return ADMIN_ROLE in roles or bool(roles & set(refreshers(meta)))


def role_grants(meta: Meta) -> dict[str, list[list[str]]]:
    """Extra FAB_ROLES grants: the dashboard's menu entry for the roles that may read it."""
    return {role: [[f"^{MENU_NAME}$", "^menu_access$"]] for role in readers(meta) if role in meta.roles}


def configured(meta: Meta) -> bool:
    name = meta.setting("project_entity")
    return bool(name) and name in meta.entities


def today() -> dt.date:
    return dt.datetime.now(local_tz()).date()


# -- figures as people and programs read them --------------------------------------------------
CENT = Decimal("0.01")


def money(value) -> str | None:
    """A Decimal amount as a string with cents (``"1234.50"``); None stays None."""
    return None if value is None else str(Decimal(value).quantize(CENT))


def plain(value) -> str | None:
    """Any Decimal as a plain string (no exponent); None stays None."""
    return None if value is None else format(Decimal(value), "f")


def _declared(meta: Meta, em, kind: str) -> dict:
    """code -> label of a breakdown's key (status, product, risk class), in the order the
    metadata declares them (申请中 before 在保, 正常 before 损失, products in their pack order),
    so the breakdowns read like the business does."""
    if kind == "product":
        codelist = meta.codelists.get("product")
        out = {code: p.label for code, p in meta.products.items()}
        return out or ({item.code: item.label for item in codelist.items} if codelist else {})
    if em.has_field(kind):
        f = em.field(kind)
        if f.type == "enum":
            return {o.value: o.label for o in f.options}
        if f.type == "code" and f.codelist in meta.codelists:
            return {item.code: item.label for item in meta.codelists[f.codelist].items}
    return {}


def board_dict(board, meta: Meta, lang: str) -> dict:
    """The dashboard as JSON: Decimals as strings, labels in ``lang``."""
    em = meta.entity(meta.setting("project_entity"))
    lim = board.limits

    def status(code):
        return {"status": code, "status_label": _pick(STATUS_TEXT[code], lang)}

    def rows(kind, items):
        declared = _declared(meta, em, kind)
        rank = {code: i for i, code in enumerate(declared)}
        items = sorted(items, key=lambda item: (rank.get(item[0], len(rank)), str(item[0] or "")))

        def label(code) -> str:
            if code in (None, ""):
                return _pick(TEXT["unset"], lang)
            return declared[code].get(lang) if code in declared else str(code)
        return [{"code": code, "label": label(code), "count": n, "amount": money(amount)}
                for code, n, amount in items]

    return {
        "as_of": board.as_of.isoformat(),
        "limits": {"net_assets": money(lim.net_assets), "leverage_limit": plain(lim.leverage),
                   "single_customer_limit": plain(lim.single), "related_group_limit": plain(lim.group),
                   "near_breach_share": plain(lim.near_share)},
        "outstanding": money(board.outstanding), "in_force_count": board.in_force_count,
        "leverage": plain(board.leverage), "leverage_status": board.leverage_status,
        "leverage_status_label": _pick(STATUS_TEXT[board.leverage_status], lang),
        "top_customers": [{"entity": e.entity, "record_id": e.record_id, "name": e.name, "amount": money(e.amount),
                           "share": plain(e.share), **status(e.status), "link": f"/e/{e.entity}/{e.record_id}"}
                          for e in board.top_customers],
        "top_groups": [{"members": list(g.members), "names": list(g.names), "amount": money(g.amount),
                        "share": plain(g.share), **status(g.status)} for g in board.top_groups],
        "customers_near": board.customers_near, "customers_breach": board.customers_breach,
        "groups_near": board.groups_near, "groups_breach": board.groups_breach,
        "year": board.year,
        "compensation_in_year": money(board.compensation_in_year), "ended_in_year": money(board.ended_in_year),
        "compensation_rate": plain(board.compensation_rate),
        "compensation_total": money(board.compensation_total), "recovered_total": money(board.recovered_total),
        "loss_rate": plain(board.loss_rate),
        "by_status": rows("status", board.by_status), "by_product": rows("product", board.by_product),
        "by_risk_class": rows("risk_class", board.by_risk_class),
    }


def percent(value, places: int = 2) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.{places}f}%"


def amount_text(value) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def bar(value, whole) -> str:
    """A CSS width for ``value`` against ``whole`` (0–100%)."""
    if value is None or not whole:
        return "0%"
    share = max(Decimal(0), min(Decimal(1), Decimal(value) / Decimal(whole)))
    return f"{share * 100:.1f}%"


# -- the page --------------------------------------------------------------------------------------
class RegulatoryView(BaseView):
    route_base = "/regulatory"
    default_view = "index"
    base_permissions = []

    def _allowed(self):
        if not current_user.is_authenticated:
            return login_redirect(next=request.full_path)
        if not may_read(_runtime().meta, current_user):
            abort(403)
        return None

    @expose("/")
    def index(self):
        resp = self._allowed()
        if resp:
            return resp
        rt = _runtime()
        lang = current_lang()
        ctx = dict(tr=tr, lang=lang, label=lambda x: x.get(lang) if x else "", csrf_token=generate_csrf,
                   base_template=current_app.appbuilder.base_template, appbuilder=current_app.appbuilder,
                   can_refresh=may_refresh(rt.meta, current_user), percent=percent, amount=amount_text, bar=bar,
                   status_text=lambda s: _pick(STATUS_TEXT.get(s, (s, s)), lang),
                   status_style=lambda s: STATUS_STYLE.get(s, "default"), board=None, view=None)
        if not configured(rt.meta):
            flash(tr("no_project"), "warning")
            return self.render_template("danbao/regulatory.html", **ctx)
        board = dashboard(rt.session, rt.models, rt.meta, today=today())
        rt.session.rollback()
        view = board_dict(board, rt.meta, lang)
        tops = {k: max([Decimal(r["amount"]) for r in view[k]] or [Decimal(0)])
                for k in ("by_status", "by_product", "by_risk_class")}
        return self.render_template("danbao/regulatory.html", **dict(ctx, board=board, view=view, tops=tops))

    @expose("/refresh", methods=["POST"])
    def refresh(self):
        if not current_user.is_authenticated:
            return login_redirect()
        rt = _runtime()
        if not may_refresh(rt.meta, current_user):
            abort(403)
        if not configured(rt.meta):
            flash(tr("no_project"), "warning")
            return redirect(url_for("RegulatoryView.index"))
        try:
            changed = refresh_exposures(rt.session, rt.models, rt.meta)
            rt.session.commit()
        except SQLAlchemyError:
            rt.session.rollback()
            current_app.logger.exception("exposure refresh failed")
            flash(tr("refresh_failed"), "danger")
        else:
            flash(tr("refreshed", n=changed), "success")
        return redirect(url_for("RegulatoryView.index"))


# -- REST ----------------------------------------------------------------------------------------------
@bp.get("/regulatory/dashboard")
def regulatory_dashboard():
    user = _user()
    if user is None:
        return _error(401, "未登录或令牌无效", "not authenticated: send a valid bearer token")
    rt = _runtime()
    if not may_read(rt.meta, user):
        return _error(403, *TEXT["forbidden"])
    if not configured(rt.meta):
        return _error(404, *TEXT["no_project"])
    board = dashboard(rt.session, rt.models, rt.meta, today=today())
    rt.session.rollback()
    return jsonify(board_dict(board, rt.meta, _lang()))
