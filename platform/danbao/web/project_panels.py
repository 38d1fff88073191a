"""What a project's page shows besides its fields: the product panel (产品),
the counter-guarantee revaluation history (反担保估值历史) and the ledger (台账).

``project_panels`` is called by the record page (``web/views.py``) for every
entity and answers None except for the project entity (the setting
``project_entity``). The product panel reads the product's metadata and the
project's own system fields (coverage ratio and shortfall, the regulatory
limit flag); each document the product asks for is ticked (✓ with its files)
when a file tagged with its kind is on the project or its customer, else
crossed (✗) when required — ``engines/documents.document_status`` decides.
"""
from __future__ import annotations

from decimal import Decimal

from flask import current_app

from danbao.engines.documents import document_status
from danbao.engines.projects import customer_of
from danbao.engines.history import revaluations
from danbao.meta.model import FeeSchemeMeta, ProductMeta
from danbao.web.i18n import current_lang

TEXT = {
    "product": ("担保产品", "Product"), "no_product": ("未选择担保产品", "No product chosen"),
    "score_customer": ("按本产品评分卡为客户评分", "Score the customer with this product's card"),
    "unknown_product": ("产品“{code}”不在元数据中", "Product '{code}' is not in the metadata"),
    "category": ("业务类别", "Category"), "business_line": ("业务品种", "Business line"),
    "fee_scheme": ("担保费", "Guarantee fee"), "review_fee": ("评审费", "Review fee"),
    "deposit_rate": ("保证金比例", "Deposit rate"), "counter_guarantees": ("可接受的反担保方式", "Counter-guarantees accepted"),
    "coverage": ("反担保覆盖率", "Counter-guarantee coverage"), "min_coverage": ("产品最低要求", "product minimum"),
    "coverage_short": ("覆盖不足", "Short of the minimum"), "coverage_ok": ("满足要求", "Meets the minimum"),
    "documents": ("所需资料", "Documents required"), "required": ("必需", "required"), "optional": ("可选", "optional"),
    "present": ("已提供", "provided"), "missing": ("未提供", "missing"),
    "tag_hint": ("（在项目或客户的附件上标注资料类型后打勾）", "(ticked once a file of the project or its customer is tagged with the kind)"),
    "on_customer": ("客户资料", "on the customer"),
    "limit_flag": ("监管限额提示", "Regulatory limit"), "amount_range": ("金额范围", "Amount range"),
    "term_max": ("最长期限", "Longest term"), "months": ("个月", "months"), "check_every": ("保后检查周期", "Post-guarantee check every"),
    "revaluations": ("反担保估值历史", "Counter-guarantee revaluations"), "when": ("时间", "When"),
    "who": ("操作人", "Who"), "row": ("反担保物", "Counter-guarantee"), "old": ("原估值", "Old value"),
    "new": ("新估值", "New value"), "change": ("变动", "Change"), "none": ("暂无估值记录", "No valuations yet"),
    "first": ("首次估值", "first valuation"), "removed": ("已删除", "removed"),
    "stage_application": ("申请", "application"), "stage_contract": ("签约", "contract"), "stage_release": ("解保", "release"),
}
CATEGORY = {"financing": ("融资担保", "Financing guarantee"), "non_financing": ("非融资担保", "Non-financing guarantee")}
BUSINESS_LINE = {"loan": ("贷款担保", "Loan"), "bond": ("债券担保", "Bond"), "internet_loan": ("互联网贷款担保", "Internet loan"),
                 "bid": ("投标保函", "Bid bond"), "performance": ("履约保函", "Performance bond"),
                 "litigation": ("诉讼保全担保", "Litigation"), "other": ("其他", "Other")}
BASIS = {"annual_rate": ("年费率", "annual rate"), "flat_rate": ("一次性费率", "flat rate"),
         "fixed": ("固定金额", "fixed amount")}
FREQUENCY = {"once": ("一次性收取", "charged once"), "monthly": ("按月收取", "monthly"),
             "quarterly": ("按季收取", "quarterly"), "yearly": ("按年收取", "yearly")}
TIER_MODE = {"whole": ("全额按所在档费率", "whole amount at its band's rate"),
             "progressive": ("超额累进", "progressive (each slice at its band's rate)")}


def tr(key: str, **kw) -> str:
    zh, en = TEXT[key]
    return (en if current_lang() == "en" else zh).format(**kw)


def _pick(pair, lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def _pct(value) -> str:
    return f"{Decimal(value) * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _join(items, lang: str) -> str:
    return (", " if lang == "en" else "、").join(items)


def _money(value) -> str:
    return f"{Decimal(value):,.2f}"


def fee_summary(scheme: FeeSchemeMeta | None, lang: str) -> str:
    """One line describing a fee scheme (basis, rate or tiers, bounds, frequency)."""
    if scheme is None:
        return ""
    zh = lang != "en"
    parts = [scheme.label.get(lang) + ("：" if zh else ": ") + _pick(BASIS.get(scheme.basis, (scheme.basis,) * 2), lang)]
    if scheme.basis == "fixed" and scheme.amount is not None:
        parts.append(f"{_money(scheme.amount)} 元" if zh else f"CNY {_money(scheme.amount)}")
    elif scheme.tiers:
        bands = []
        for tier in scheme.tiers:
            if tier.below is not None:
                bands.append((f"不足 {_money(tier.below)} 元 " if zh else f"below {_money(tier.below)}: ") + _pct(tier.rate))
            else:
                bands.append(("其余 " if zh else "above: ") + _pct(tier.rate))
        mode = _pick(TIER_MODE.get(scheme.tier_mode, (scheme.tier_mode,) * 2), lang)
        parts.append(("；" if zh else "; ").join(bands) + (f"（{mode}）" if zh else f" ({mode})"))
    elif scheme.rate is not None:
        parts.append(_pct(scheme.rate))
    if scheme.minimum is not None:
        parts.append(f"最低 {_money(scheme.minimum)} 元" if zh else f"minimum {_money(scheme.minimum)}")
    if scheme.maximum is not None:
        parts.append(f"最高 {_money(scheme.maximum)} 元" if zh else f"maximum {_money(scheme.maximum)}")
    parts.append(_pick(FREQUENCY.get(scheme.frequency, (scheme.frequency,) * 2), lang))
    return ("，" if zh else ", ").join(parts)


def _score_link(meta, obj, product: str, lang: str) -> dict:
    """The customer's scoring page with this product's card (its ``scorecards:``), if the customer has one."""
    from flask import url_for
    from danbao.engines.projects import customer_of
    from danbao.engines.scoring import card_for
    customer = customer_of(meta, obj)
    card = card_for(meta, customer[0], product) if customer else None
    if card is None:
        return {}
    return {"score_card": card.label.get(lang),
            "score_link": url_for("ScoreView.new", entity=customer[0], record_id=customer[1], card=card.code,
                                  project=obj.id)}


def product_panel(rt, em, obj, files) -> dict:
    meta, lang = rt.meta, current_lang()
    code = getattr(obj, "product", None) if em.has_field("product") else None
    product: ProductMeta | None = meta.products.get(code or "")
    out: dict = {"code": code, "product": product, "tr": tr,
                 "limit_flag": getattr(obj, "limit_flag", None) if em.has_field("limit_flag") else None}
    if product is None:
        out["problem"] = tr("unknown_product", code=code) if code else tr("no_product")
        return out
    ratio = getattr(obj, "coverage_ratio", None) if em.has_field("coverage_ratio") else None
    short = getattr(obj, "coverage_short", None) if em.has_field("coverage_short") else None
    if short is None and product.min_coverage is not None:
        short = (ratio or 0) < product.min_coverage
    states = document_status(rt.session, rt.models, meta, obj)
    customer = customer_of(meta, obj)
    stage = {"application": "stage_application", "contract": "stage_contract", "release": "stage_release"}
    out.update({
        "label": product.label.get(lang),
        "category": _pick(CATEGORY.get(product.category, (product.category,) * 2), lang),
        "business_line": _pick(BUSINESS_LINE.get(product.business_line, (product.business_line,) * 2), lang)
        if product.business_line else "",
        "fee": fee_summary(meta.fee_schemes.get(product.fee_scheme), lang),
        "review_fee": fee_summary(meta.fee_schemes.get(product.review_fee), lang) if product.review_fee else "",
        "deposit_rate": _pct(product.deposit_rate) if product.deposit_rate is not None else None,
        "counter_guarantees": _join([meta.counter_guarantee_kinds[k].label.get(lang) if k in meta.counter_guarantee_kinds
                                     else k for k in product.counter_guarantees], lang),
        "min_coverage": _pct(product.min_coverage) if product.min_coverage is not None else None,
        "coverage": _pct(ratio) if ratio is not None else None,
        "coverage_short": bool(short) if product.min_coverage is not None else False,
        "amount_range": (f"{_money(product.amount_min) if product.amount_min is not None else '—'} ~ "
                         f"{_money(product.amount_max) if product.amount_max is not None else '—'}")
        if product.amount_min is not None or product.amount_max is not None else None,
        "term_max": product.term_max_months, "check_every": product.check_every_months,
        **_score_link(meta, obj, code, lang),
        "documents": [{"code": s.code, "label": s.label.get(lang), "required": s.required,
                       "stage": tr(stage[s.stage]) if s.stage in stage else s.stage, "present": s.present,
                       "files": [{"id": f.id, "filename": f.filename, "entity": f.entity, "record_id": f.record_id,
                                  "on_customer": (f.entity, f.record_id) == customer} for f in s.files]}
                      for s in states],
    })
    return out


def revaluation_rows(rt, em, record_id: int) -> list[dict]:
    meta, lang = rt.meta, current_lang()
    rows = []
    for r in revaluations(rt.session, rt.models, meta, record_id, entity=em.name):
        kind = meta.counter_guarantee_kinds.get(r.kind or "")
        rows.append({"at": r.at.strftime("%Y-%m-%d %H:%M:%S"), "who": r.username or "", "record_id": r.record_id,
                     "kind": kind.label.get(lang) if kind else (r.kind or ""), "title": r.title,
                     "old": _money(r.old) if r.old is not None else None,
                     "new": _money(r.new) if r.new is not None else None,
                     "change": (("+" if r.change > 0 else "") + _money(r.change)) if r.change is not None else None,
                     "action": r.action})
    return rows


def project_panels(em, obj, files) -> dict | None:
    """The project page's extra panels, or None for any other entity."""
    rt = current_app.extensions["danbao"]
    if em.name != rt.meta.setting("project_entity"):
        return None
    from danbao.web.ledger_views import ledger_panel
    return {"product": product_panel(rt, em, obj, files), "revaluations": revaluation_rows(rt, em, obj.id),
            "ledger": ledger_panel(em, obj), "tr": tr,
            "show_revaluations": any(f.target in rt.meta.entities
                                     and rt.meta.entity(f.target).has_field("appraised_value") for f in em.children)}
