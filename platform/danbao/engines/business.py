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
from danbao.engines.fees import FeeError, follow_unpaid, schedule_lines
from danbao.engines.projects import customer_of, in_force_statuses
from danbao.engines.records import RecordService, ValidationFailed, register_delete_hook, register_save_hook
from danbao.engines.refusals import HAS_MONEY, STEP_REQUIREMENTS, Refusal
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


@register_delete_hook
def keep_money_records(service: RecordService, em: EntityMeta, project) -> None:
    """A project with ledger entries (confirmed, or on their way) is never deleted:
    its balances would vanish from the books and the entries be orphaned."""
    ledger = service.models.system.get(LEDGER_TABLE)
    if ledger is None or not is_project(service.meta, em):
        return
    count = service.session.execute(sa.select(sa.func.count()).select_from(ledger).where(
        ledger.c.project_entity == em.name, ledger.c.project_id == project.id,
        ledger.c.state != "rejected")).scalar_one()
    if count:
        raise Refusal(HAS_MONEY, Label(f"该项目有 {count} 笔台账记录，不能删除：请通过流程终止、解保或核销",
                                       f"The project has {count} ledger entries and cannot be deleted: "
                                       f"end it through a workflow (terminate, release or write off)"),
                      details={"entries": count})


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
    """The approved project's fee plan: guarantee fee instalments, review fee, deposit.

    Computed from the approved terms (the project's amount, term and fee rate,
    which its stage controls lock once it is submitted) and dated from the
    guarantee's start (setting ``fee_plan_start_field``), never from the day
    it is generated. A plan with money already received is followed, not
    regenerated (unpaid rows only, see ``fees.follow_unpaid``).
    """
    from danbao.engines.workflow import Refused
    service, meta = ctx.records, ctx.records.meta
    em = meta.entity(ctx.entity)
    project = service.get(ctx.entity, ctx.record_id)
    try:
        write_fee_plan(service, em, project)
    except FeeError as exc:
        raise Refused(exc.message) from None
    except ValidationFailed as exc:
        first = next(iter(exc.errors.values()))
        raise Refused(Label(f"收费计划无法保存：{first.zh}", f"The fee schedule cannot be saved: {first.en}")) from None


def fee_plan_start(meta: Meta, project):
    """The date the plan runs from: the field the pack names (the guarantee's start)."""
    return getattr(project, meta.setting("fee_plan_start_field", "start_date"), None)


def write_fee_plan(service: RecordService, em: EntityMeta, project) -> bool:
    """Write (or follow) the project's fee plan from its terms; False when its start date
    is not known yet (the plan is written once it is). Raises FeeError for terms
    the product cannot charge. Not committed."""
    meta = service.meta
    product = product_of(meta, project)
    if product is None or not em.has_field("fee_instalments"):
        raise FeeError(Label("项目没有有效的担保产品，无法生成收费计划",
                             "The project has no valid product: the fee schedule cannot be made"))
    start = fee_plan_start(meta, project)
    if start is None:
        return False
    lines = schedule_lines(product, meta, project.amount, project.term_months, start,
                           rate=getattr(project, "fee_rate", None), deposit_rate=getattr(project, "deposit_rate", None))
    child_em = meta.entity(em.field("fee_instalments").target)
    columns = [f.name for f in child_em.column_fields if not f.computed]
    kept = [r for r in project.fee_instalments if (getattr(r, "paid_amount", None) or 0) > 0]
    unpaid = [r for r in project.fee_instalments if r not in kept]
    if kept:
        keep_rows = [{"id": r.id, **{n: getattr(r, child_em.field(n).column_name) for n in columns}} for r in kept]
        lines = keep_rows + follow_unpaid(keep_rows, lines)
    payload = [{k: v for k, v in line.items() if k == "id" or child_em.has_field(k)} for line in lines]
    shape = ("kind", "due_on", "period_from", "period_to", "amount")
    if sorted(tuple(str(line.get(k)) for k in shape) for line in payload if "id" not in line) == \
            sorted(tuple(str(getattr(r, k, None)) for k in shape) for r in unpaid):
        return True                                  # the terms give the plan it has: nothing to write
    service.assign_children(em.name, project.id, "fee_instalments", payload)
    return True


# -- what a step requires before the project may pass it (the refusal lists what is missing) --
def _missing(items: list[Label], zh_head: str, en_head: str) -> None:
    if items:
        raise Refusal(STEP_REQUIREMENTS, Label(zh_head + "：" + "、".join(i.zh for i in items),
                                               en_head + ": " + ", ".join(i.en for i in items)),
                      details={"missing": [i.zh for i in items]})


def _field_label(em: EntityMeta, name: str) -> Label:
    return em.field(name).label


def _visible(service: RecordService, em: EntityMeta, project, name: str) -> bool:
    """A field of a section the product hides (a letter's number on a loan) is not asked for."""
    from danbao.engines.records import hidden_sections
    values = {f.name: getattr(project, f.column_name) for f in em.column_fields}
    closed = hidden_sections(service.meta, em, values, service.clock().date())
    return not any(name in sec.fields for sec in em.sections if sec.key in closed)


def _documents_missing(service: RecordService, project, stage: str) -> list[Label]:
    from danbao.engines.documents import missing_documents
    return [s.label for s in missing_documents(service.session, service.models, service.meta, project, stage)
            if s.stage == stage]


@workflow_action("require_application_documents")
def require_application_documents(ctx: ActionContext) -> None:
    """Past 初审 only with every required application document of the product present."""
    project = ctx.records.get(ctx.entity, ctx.record_id)
    _missing(_documents_missing(ctx.records, project, "application"),
             "申请资料不全，缺少", "Application documents missing")


#: the 批复's fields -> the project term each records
APPROVED_TERMS = {"approved_amount": "amount", "approved_rate": "fee_rate", "approved_term_months": "term_months"}


@workflow_action("record_approval")
def record_approval(ctx: ActionContext) -> None:
    """The final approval step was passed: the 批复 records the terms it approved (amount,
    rate, term) and the day; contracts and fee notices follow it, and only a change
    request moves it (the terms themselves are locked by the stage controls)."""
    em = ctx.records.meta.entity(ctx.entity)
    project = ctx.records.get(ctx.entity, ctx.record_id)
    values = {k: getattr(project, em.field(v).column_name) for k, v in APPROVED_TERMS.items()
              if em.has_field(k) and em.has_field(v)}
    if em.has_field("approved_on"):
        values["approved_on"] = ctx.now.date()
    if values:
        ctx.records.assign(ctx.entity, ctx.record_id, values)


@workflow_action("require_contract")
def require_contract(ctx: ActionContext) -> None:
    """Out of 签约办理 only with the contract numbers (setting ``contract_fields``, those the
    product's sections show) and the product's contract-stage documents."""
    service, em = ctx.records, ctx.records.meta.entity(ctx.entity)
    project = service.get(ctx.entity, ctx.record_id)
    names = [n for n in service.meta.setting("contract_fields", []) or [] if em.has_field(n)]
    items = [_field_label(em, n) for n in names
             if getattr(project, em.field(n).column_name) in (None, "") and _visible(service, em, project, n)]
    items += _documents_missing(service, project, "contract")
    if em.has_field("conditions_met") and (getattr(project, "approval_conditions", None) or "").strip() \
            and not project.conditions_met:
        items.append(Label(f"{_field_label(em, 'conditions_met').zh}的确认", f"confirmation that the "
                                                                         f"{_field_label(em, 'conditions_met').en.lower()}"))
    _missing(items, "签约手续不全，缺少", "Contract signing incomplete, missing")


@workflow_action("require_loan_started")
def require_loan_started(ctx: ActionContext) -> None:
    """在保 only once the loan has started: a start date, not in the future."""
    em = ctx.records.meta.entity(ctx.entity)
    project = ctx.records.get(ctx.entity, ctx.record_id)
    start = fee_plan_start(ctx.records.meta, project)
    field = ctx.records.meta.setting("fee_plan_start_field", "start_date")
    if start is None:
        _missing([_field_label(em, field)], "放款确认前须录入", "Before the loan is confirmed, enter")
    if start > ctx.now.date():
        raise Refusal(STEP_REQUIREMENTS, Label(
            f"{_field_label(em, field).zh}（{start.isoformat()}）晚于今天，放款尚未发生",
            f"the {_field_label(em, field).en.lower()} ({start.isoformat()}) is in the future: the loan has not started"),
            field=field)


@workflow_action("book_drawdown")
def book_drawdown(ctx: ActionContext) -> None:
    """放款确认 books what it confirms (setting ``drawdown_entries``: ledger kind -> the project
    field holding its amount, e.g. underwriting: amount), so the project is in force and its
    guarantee balance is on the books in the same transaction."""
    from danbao.engines.ledger import LedgerService
    meta = ctx.records.meta
    project = ctx.records.get(ctx.entity, ctx.record_id)
    ctx.records.session.flush()
    ledger = LedgerService(ctx.records.session, ctx.records.models, meta, clock=lambda: ctx.now)
    on = fee_plan_start(meta, project) or ctx.now.date()
    for kind, field in (meta.setting("drawdown_entries", {}) or {}).items():
        amount = getattr(project, field, None)
        if amount:
            ledger.book_by_step(project.id, kind, amount, ctx.actor, booked_on=on, note="放款确认")


@workflow_action("require_release")
def require_release(ctx: ActionContext) -> None:
    """解保 only when the debt is gone: the balances the setting ``release_zero_balances``
    names are zero in the ledger, the release fields (``release_fields``) are filled and the
    product's release documents are present; then the release entry (``release_entry``)
    takes the guarantee off the books in the same transaction."""
    from danbao.engines.ledger import BALANCE_LABELS, LedgerService
    service, meta = ctx.records, ctx.records.meta
    em = meta.entity(ctx.entity)
    project = service.get(ctx.entity, ctx.record_id)
    service.session.flush()
    ledger = LedgerService(service.session, service.models, meta, clock=lambda: ctx.now)
    balances = ledger.balances(project.id)
    items = [Label(f"{BALANCE_LABELS[b].zh}为零（现为 {balances.get(b, 0):,.2f} 元）",
                   f"{BALANCE_LABELS[b].en} at zero (now {balances.get(b, 0):,.2f})")
             for b in meta.setting("release_zero_balances", []) or [] if balances.get(b, 0) != 0]
    items += [_field_label(em, n) for n in meta.setting("release_fields", []) or []
              if em.has_field(n) and getattr(project, em.field(n).column_name) in (None, "")]
    items += _documents_missing(service, project, "release")
    _missing(items, "解保条件未满足，缺少", "The release conditions are not met, missing")
    kind = meta.setting("release_entry")
    left = balances.get("guarantee_outstanding", 0)
    if kind and left > 0:
        ledger.book_by_step(project.id, kind, left, ctx.actor, booked_on=project.released_on or ctx.now.date(),
                            note="解保审批")


# -- change requests (变更/展期) -------------------------------------------------------------
#: a change request's kind -> (its field with the new value, the project field it changes)
CHANGE_KINDS = {"amount_increase": ("new_amount", "amount"), "amount_decrease": ("new_amount", "amount"),
                "term_extension": ("new_term_months", "term_months"), "rate_change": ("new_fee_rate", "fee_rate")}
CHANGE_ENTITY = "change_request"
#: statuses of a project whose approved terms may be changed by request
CHANGEABLE = ("approved", "guaranteeing", "overdue")


@register_save_hook
def keep_change_request_right(service: RecordService, em: EntityMeta, request, by_user: bool) -> None:
    """A change request names its project's A角 (so the A角 may submit it) and, when a
    person saves it, asks for a real change of a project whose terms are approved."""
    if em.name != CHANGE_ENTITY or not em.has_field("project"):
        return
    meta = service.meta
    project_em = meta.entity(em.field("project").target)
    project = service.session.get(service.models.cls(project_em.name), request.project_id) \
        if request.project_id else None
    if project is None:
        return
    if em.has_field("a_manager") and request.a_manager_id != getattr(project, "a_manager_id", None):
        service.set_system_values(em, request, {"a_manager": getattr(project, "a_manager_id", None)})
    if not by_user:
        return
    errors: dict[str, Label] = {}
    if getattr(project, "status", None) not in CHANGEABLE:
        errors["project"] = Label("只有已批准、在保或逾期的项目可以申请变更（申请中的项目请直接修改）",
                                  "only an approved, in-force or overdue project takes a change request "
                                  "(edit an application directly)")
    field, target = CHANGE_KINDS.get(request.kind, (None, None))
    new, old = (getattr(request, field, None), getattr(project, target, None)) if field else (None, None)
    if new is not None and old is not None:
        wrong = {"amount_increase": new <= old, "amount_decrease": new >= old,
                 "term_extension": new <= old, "rate_change": new == old}[request.kind]
        if wrong:
            errors[field] = Label(f"与项目现有条件（{old}）相比不是{em.field('kind').option_label(request.kind, 'zh')}",
                                  f"is not a {em.field('kind').option_label(request.kind, 'en').lower()} "
                                  f"of the project's current {old}")
    if errors:
        raise ValidationFailed(errors)


def _book_liability_change(ctx: ActionContext, project, field: str, old, new) -> None:
    """A project in force whose booked amount changed (an increase or a decrease) books the
    difference as the step books a drawdown: underwriting for more, the release kind for
    less, so its guarantee balance stays its amount."""
    from danbao.engines.ledger import LedgerService
    meta = ctx.records.meta
    if getattr(project, "status", None) not in in_force_statuses(meta) or old is None or new == old:
        return
    kinds = [k for k, f in (meta.setting("drawdown_entries", {}) or {}).items() if f == field
             and meta.ledger_kinds.get(k) and meta.ledger_kinds[k].effects.get("guarantee_outstanding", 0) > 0]
    kind = kinds[0] if new > old and kinds else (meta.setting("release_entry") if new < old else None)
    if not kind:
        return
    ctx.records.session.flush()
    ledger = LedgerService(ctx.records.session, ctx.records.models, meta, clock=lambda: ctx.now)
    ledger.book_by_step(project.id, kind, abs(new - old), ctx.actor, booked_on=ctx.now.date(), note="变更生效")


@workflow_action("apply_change_request")
def apply_change_request(ctx: ActionContext) -> None:
    """The approved change goes onto the project, in the route's transaction: the new term
    (the due date follows), amount or rate written as the system, the old and new terms kept
    on the request, the fee plan's unpaid rows following (paid rows stay as they are)."""
    service, meta = ctx.records, ctx.records.meta
    request = service.get(ctx.entity, ctx.record_id)
    em = meta.entity(ctx.entity)
    project_entity = em.field("project").target
    project = service.get(project_entity, request.project_id)
    pem = meta.entity(project_entity)
    if getattr(project, "status", None) not in CHANGEABLE:
        raise Refusal(STEP_REQUIREMENTS, Label("项目已不在可变更的状态，变更不能生效",
                                               "The project is no longer in a state its terms can change in"),
                      field="project")
    field, target = CHANGE_KINDS[request.kind]
    new = getattr(request, field)
    label = pem.field(target).label
    old = getattr(project, pem.field(target).column_name)
    values = {target: new}
    values.update({k: new for k, v in APPROVED_TERMS.items() if v == target and pem.has_field(k)})
    service.assign(project_entity, project.id, values)             # the 批复 moves with it
    _book_liability_change(ctx, project, target, old, new)
    if pem.has_field("fee_instalments") and project.fee_instalments:
        try:
            write_fee_plan(service, pem, service.get(project_entity, project.id))
        except FeeError as exc:
            raise Refusal(STEP_REQUIREMENTS, exc.message) from None
    service.assign(ctx.entity, request.id, {
        "old_terms": f"{label.zh} {old}", "new_terms": f"{label.zh} {new}", "applied_on": ctx.now.date()})


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
