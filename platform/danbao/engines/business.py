"""The guarantee business's rules on the project record, driven by its product.

A save hook keeps the project's system-owned fields right whenever it is
saved — by a person or by a workflow step:

- each counter-guarantee row gets the discount of its kind and asset kind
  (from ``counter_guarantee_kinds`` metadata) and its covered value;
- the project's coverage ratio (Σ value × discount ÷ amount) and whether it
  falls short of the product's minimum;
- the next post-guarantee check date (the product's cycle from the last
  check done, or from the start date) while the project is in force;
- the application-time regulatory flag (would this project breach a limit?).

When a person saves, it also enforces the product (amount and term range,
allowed counter-guarantee kinds) and asks for a reason whenever the risk
class is changed by hand. Two workflow step actions live here too:
``generate_fee_schedule`` and ``refresh_exposure``.

The engine knows the project by the fields it reads and writes (``product``,
``amount``, ``term_months``, ``status``, ``start_date``, ``risk_class``,
``risk_class_reason``, ``coverage_ratio``, ``coverage_short``,
``next_check_due``, ``limit_flag``, ``counter_guarantees``, ``post_checks``,
``fee_instalments``); a project entity without one of them simply does not
get that rule. No Flask here.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from danbao.engines import product_routes as _product_routes  # noqa: F401  (the product's routes filter)
from danbao.engines.actions import ActionContext, workflow_action
from danbao.engines.fees import FeeError, schedule_lines
from danbao.engines.projects import customer_of, in_force_statuses
from danbao.engines.records import RecordService, ValidationFailed, register_save_hook
from danbao.expr.functions import fn_add_months
from danbao.meta.model import EntityMeta, Label, Meta, ProductMeta
from danbao.model.system import LEDGER_TABLE

RATE_STEP = Decimal("0.000001")
CENT = Decimal("0.01")
#: statuses in which a project is still an application (the regulatory flag is computed then)
APPLICATION_STATUSES = ("applying", "reviewing")


def is_project(meta: Meta, em: EntityMeta) -> bool:
    return em.name == meta.setting("project_entity")


def product_of(meta: Meta, project) -> ProductMeta | None:
    return meta.products.get(getattr(project, "product", None) or "")


# -- the save hook ------------------------------------------------------------
@register_save_hook
def keep_project_right(service: RecordService, em: EntityMeta, project, by_user: bool) -> None:
    meta = service.meta
    if not is_project(meta, em):
        return
    product = product_of(meta, project)
    if by_user:
        errors = {**_product_errors(em, project, product), **_risk_class_errors(project)}
        if errors:
            service.session.rollback()
            raise ValidationFailed(errors)
    values = {}
    if em.has_field("counter_guarantees"):
        values.update(_coverage(service, em, project, product))
    if em.has_field("next_check_due"):
        values["next_check_due"] = next_check_due(meta, project, product)
    if em.has_field("limit_flag"):
        values["limit_flag"] = _limit_flag(service, project)
    changed = {k: v for k, v in values.items() if getattr(project, em.field(k).column_name) != v}
    if changed:
        service.set_system_values(em, project, changed)


def _product_errors(em: EntityMeta, project, product: ProductMeta | None) -> dict[str, Label]:
    errors: dict[str, Label] = {}
    if product is None:
        return errors
    amount = getattr(project, "amount", None)
    if amount is not None and product.amount_min is not None and amount < product.amount_min:
        errors["amount"] = Label(f"不得低于产品“{product.label.zh}”的最低金额 {product.amount_min:,.2f} 元",
                                 f"is below the minimum of product '{product.label.en}' ({product.amount_min:,.2f})")
    if amount is not None and product.amount_max is not None and amount > product.amount_max:
        errors["amount"] = Label(f"不得超过产品“{product.label.zh}”的最高金额 {product.amount_max:,.2f} 元",
                                 f"is above the maximum of product '{product.label.en}' ({product.amount_max:,.2f})")
    term = getattr(project, "term_months", None)
    if term is not None and product.term_max_months is not None and term > product.term_max_months:
        errors["term_months"] = Label(f"产品“{product.label.zh}”的期限最长 {product.term_max_months} 个月",
                                      f"product '{product.label.en}' allows at most {product.term_max_months} months")
    if em.has_field("counter_guarantees") and product.counter_guarantees:
        sent = RecordService.rows_sent(project, "counter_guarantees")   # numbered as the form sent them
        for i, row in enumerate(sent if sent is not None else project.counter_guarantees):
            kind = getattr(row, "kind", None)
            if kind and kind not in product.counter_guarantees:
                errors[f"counter_guarantees.{i}.kind"] = Label(
                    f"产品“{product.label.zh}”不接受这种反担保方式", f"is not accepted by product '{product.label.en}'")
    return errors


def _risk_class_errors(project) -> dict[str, Label]:
    """A manual change of the five-level class needs its reason, written in the same save."""
    changes = getattr(project, "_danbao_changes", ())
    changed = {name for _, obj, name, _, _, created in changes if obj is project and not created}
    if "risk_class" in changed and ("risk_class_reason" not in changed
                                    or not (getattr(project, "risk_class_reason", "") or "").strip()):
        return {"risk_class_reason": Label("人工调整五级分类时须填写调整原因",
                                           "give the reason when you change the risk class by hand")}
    return {}


def _coverage(service: RecordService, em: EntityMeta, project, product) -> dict:
    """Each row's discount and covered value, and the project's coverage ratio."""
    meta = service.meta
    child_em = meta.entity(em.field("counter_guarantees").target)
    total = Decimal(0)
    for row in project.counter_guarantees:
        kind = meta.counter_guarantee_kinds.get(getattr(row, "kind", None) or "")
        discount = kind.discount(getattr(row, "asset_kind", None)) if kind else Decimal(0)
        value = getattr(row, "appraised_value", None)
        covered = (value * discount).quantize(CENT, ROUND_HALF_UP) if value is not None else None
        own = {"discount_rate": discount, "covered_value": covered}
        own = {k: v for k, v in own.items() if child_em.has_field(k)
               and getattr(row, child_em.field(k).column_name) != v}
        if own:
            service.set_system_values(child_em, row, own)
            project._danbao_changes.extend(row.__dict__.pop("_danbao_changes", []))
        total += covered or 0
    amount = getattr(project, "amount", None)
    ratio = (total / amount).quantize(RATE_STEP, ROUND_HALF_UP) if amount else None
    values = {"coverage_ratio": ratio}
    if em.has_field("coverage_short"):
        minimum = product.min_coverage if product else None
        values["coverage_short"] = bool(minimum is not None and (ratio or 0) < minimum)
    return values


def next_check_due(meta: Meta, project, product):
    """The product's check cycle from the last check done (or the start date), while in force."""
    if product is None or not product.check_every_months:
        return None
    if getattr(project, "status", None) not in in_force_statuses(meta):
        return None
    done = [c.done_on for c in getattr(project, "post_checks", ()) if getattr(c, "done_on", None)]
    base = max(done) if done else getattr(project, "start_date", None)
    return fn_add_months(base, product.check_every_months) if base else None


def _limit_flag(service: RecordService, project) -> str | None:
    if getattr(project, "status", None) not in APPLICATION_STATUSES or not getattr(project, "amount", None):
        return None
    from danbao.engines.regulatory import application_flag
    return application_flag(service.session, service.models, service.meta, project)


# -- workflow step actions ----------------------------------------------------
@workflow_action("generate_fee_schedule")
def generate_fee_schedule(ctx: ActionContext) -> None:
    """Approving a project writes its fee plan: guarantee fee instalments, review fee, deposit.

    The project's own (approved) fee rate, when set, replaces the product
    scheme's rate; a plan with money already received is never regenerated.
    """
    from danbao.engines.workflow import Refused
    service, meta = ctx.records, ctx.records.meta
    em = meta.entity(ctx.entity)
    project = service.get(ctx.entity, ctx.record_id)
    product = product_of(meta, project)
    if product is None or not em.has_field("fee_instalments"):
        raise Refused(Label("项目没有有效的担保产品，无法生成收费计划",
                            "The project has no valid product: the fee schedule cannot be made"))
    rows = list(project.fee_instalments)
    if any((getattr(r, "paid_amount", None) or 0) > 0 for r in rows):
        raise Refused(Label("已有收款记录，不能重新生成收费计划", "Money has been received: the fee schedule is kept as it is"))
    try:
        lines = schedule_lines(product, meta, project.amount, project.term_months, ctx.now.date(),
                               rate=getattr(project, "fee_rate", None),
                               deposit_rate=getattr(project, "deposit_rate", None))
    except FeeError as exc:
        raise Refused(exc.message) from None
    child_em = meta.entity(em.field("fee_instalments").target)
    payload = [{k: v for k, v in line.items() if child_em.has_field(k)} for line in lines]
    try:
        service.assign_children(ctx.entity, ctx.record_id, "fee_instalments", payload)
    except ValidationFailed as exc:
        first = next(iter(exc.errors.values()))
        raise Refused(Label(f"收费计划无法保存：{first.zh}", f"The fee schedule cannot be saved: {first.en}")) from None


@workflow_action("refresh_exposure")
def refresh_exposure(ctx: ActionContext) -> None:
    """A project coming into force changes its customer's (and group's) exposure."""
    from danbao.engines.regulatory import refresh_exposures
    project = ctx.records.get(ctx.entity, ctx.record_id)
    ctx.records.session.flush()
    refresh_exposures(ctx.records.session, ctx.records.models, ctx.records.meta,
                      only=customer_of(ctx.records.meta, project))


# -- the daily run ------------------------------------------------------------
#: the five classes from best to worst; a class by days overdue only ever makes a project worse
RISK_ORDER = ("normal", "attention", "substandard", "doubtful", "loss")


def class_by_days(meta: Meta, days_overdue: int) -> str:
    """The five-level class the company's policy (setting ``risk_class_days``) gives this many days overdue."""
    thresholds = meta.setting("risk_class_days", {}) or {}
    result = "normal"
    for cls in RISK_ORDER[1:]:
        limit = thresholds.get(cls)
        if limit is not None and days_overdue >= int(limit):
            result = cls
    return result


def daily_run(session, models, meta: Meta, today) -> dict[str, int]:
    """Once a day: projects past their due date become overdue, their five-level
    class follows the days overdue (never lowering a worse class set by an
    analyst), open applications' missing documents are rechecked, and every
    customer's exposure is refreshed. Each change goes
    through the record service (typed, audited); one commit at the end."""
    from danbao.engines.documents import refresh_all_projects
    from danbao.engines.regulatory import dashboard, refresh_exposures, write_position
    from danbao.engines.workflow import SYSTEM_ACTOR
    name = meta.setting("project_entity")
    if not name or name not in meta.entities:
        return {}
    em = meta.entity(name)
    cls = models.cls(name)
    service = RecordService(models, session, SYSTEM_ACTOR)
    counts = {"overdue": 0, "reclassified": 0, "exposures": 0}
    if em.has_field("due_date") and em.has_field("status"):
        late = session.query(cls).filter(cls.status == "guaranteeing", cls.due_date < today).all()
        for project in late:
            values = {"status": "overdue"}
            if em.has_field("overdue_since") and project.overdue_since is None:
                values["overdue_since"] = project.due_date
            service.assign(name, project.id, values)
            counts["overdue"] += 1
    if em.has_field("risk_class") and em.has_field("overdue_since"):
        for project in session.query(cls).filter(cls.status == "overdue", cls.overdue_since.isnot(None)).all():
            wanted = class_by_days(meta, (today - project.overdue_since).days)
            current = project.risk_class or "normal"
            if current in RISK_ORDER and RISK_ORDER.index(wanted) > RISK_ORDER.index(current):
                service.assign(name, project.id, {"risk_class": wanted})
                counts["reclassified"] += 1
    statuses = meta.setting("documents_open_statuses", None)
    if statuses:
        counts["documents"] = refresh_all_projects(service, tuple(statuses))
    counts["exposures"] = refresh_exposures(session, models, meta)
    session.flush()
    counts["position"] = write_position(service, dashboard(session, models, meta, today=today)) is not None
    session.commit()
    return counts


# -- money received settles the fee plan ----------------------------------------------
def settle_fee_plan(service: RecordService, project_id: int, ledger_kind: str, on) -> Decimal:
    """The fee plan rows of the kind a receipt settles (setting ``ledger_settles``:
    ledger kind -> fee line kind) are paid from the confirmed receipts, oldest
    due first: each row's ``paid_amount`` is its share of Σ confirmed receipts of
    that line kind (reversals included), so the plan always agrees with the
    ledger. Rows newly paid get ``paid_on``; returns what the plan could not
    take (a prepayment beyond it). Not committed."""
    meta = service.meta
    settles = meta.setting("ledger_settles", {}) or {}
    line_kind = settles.get(ledger_kind)
    entity = meta.setting("project_entity")
    em = meta.entity(entity)
    ledger = service.models.system.get(LEDGER_TABLE)
    if not line_kind or not em.has_field("fee_instalments") or ledger is None:
        return Decimal(0)
    kinds = [k for k, line in settles.items() if line == line_kind]
    left = Decimal(service.session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount * ledger.c.direction), 0)).where(
            ledger.c.project_id == project_id, ledger.c.project_entity == entity,
            ledger.c.state == "confirmed", ledger.c.kind.in_(kinds))).scalar())
    project = service.get(entity, project_id)
    changed: dict[int, tuple[Decimal | None, object]] = {}
    for row in sorted((r for r in project.fee_instalments if getattr(r, "kind", None) == line_kind),
                      key=lambda r: (r.due_on, r.id)):
        due = row.amount - (getattr(row, "waived_amount", None) or 0)
        share = max(min(due, left), Decimal(0))
        left -= share
        now_paid = share if share > 0 else None
        if (row.paid_amount or None) != now_paid:
            grew = (now_paid or 0) > (row.paid_amount or 0)
            changed[row.id] = (now_paid, on if grew else (row.paid_on if now_paid else None))
    if changed:
        child_em = meta.entity(em.field("fee_instalments").target)
        payload = []
        for r in project.fee_instalments:
            row = {"id": r.id, **{f.name: getattr(r, f.column_name) for f in child_em.column_fields
                                  if not f.computed}}
            if r.id in changed:
                row["paid_amount"], row["paid_on"] = changed[r.id]
            payload.append(row)
        service.assign_children(entity, project_id, "fee_instalments", payload)
    return max(left, Decimal(0))
