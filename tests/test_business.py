"""The business engine on the core pack's project: coverage, product rules, the
risk class reason, check dates, the daily run and the application-time flag."""
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
import sqlalchemy as sa

from danbao.engines.business import class_by_days, daily_run
from danbao.engines.records import ValidationFailed
from danbao.expr.functions import fn_add_months
from wfhelpers import ENTITY




def get(world, pid):
    world.s.expire_all()
    return world.records().get(ENTITY, pid)


def count(world, table):
    return world.s.execute(sa.select(sa.func.count()).select_from(world.models.table(table))).scalar()


def expected_covered(meta, kind, asset, value):
    return (Decimal(value) * meta.counter_guarantee_kinds[kind].discount(asset)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_counter_guarantees_get_their_kinds_discount_and_the_project_its_coverage(world):
    rows = [{"kind": "mortgage", "asset_kind": "real_estate", "appraised_value": "4000000"},
            {"kind": "pledge", "asset_kind": "deposit", "appraised_value": "1000000"},
            {"kind": "surety", "guarantor_name": "王五", "appraised_value": "500000"}]
    pid = world.project(amount="5000000", counter_guarantees=rows)
    p = get(world, pid)
    meta = world.meta
    covered = [expected_covered(meta, r["kind"], r.get("asset_kind"), r["appraised_value"]) for r in rows]
    by_kind = {r.kind: r for r in p.counter_guarantees}
    for r, c in zip(rows, covered):
        row = by_kind[r["kind"]]
        assert row.discount_rate == meta.counter_guarantee_kinds[r["kind"]].discount(r.get("asset_kind"))
        assert row.covered_value == c
    ratio = (sum(covered) / Decimal("5000000")).quantize(Decimal("0.000001"))
    assert p.coverage_ratio == ratio
    minimum = meta.products[p.product].min_coverage
    assert p.coverage_short is (ratio < minimum)

    # a revaluation changes the covered value and the ratio; the old value stays in the audit log
    data = {"counter_guarantees": [{"id": r.id, "kind": r.kind, "asset_kind": r.asset_kind,
                                    "appraised_value": "8000000" if r.kind == "mortgage" else str(r.appraised_value),
                                    "guarantor_name": r.guarantor_name}
                                   for r in p.counter_guarantees]}
    world.records().update(ENTITY, pid, data, expected_version=p.version)
    p = get(world, pid)
    covered[0] = expected_covered(meta, "mortgage", "real_estate", "8000000")
    assert p.coverage_ratio == (sum(covered) / Decimal("5000000")).quantize(Decimal("0.000001"))
    assert p.coverage_short is (p.coverage_ratio < minimum)
    audit = world.models.system["danbao_audit"]
    olds = world.s.execute(sa.select(audit.c.old_value, audit.c.new_value).where(
        audit.c.field == "appraised_value")).all()
    assert any(o and Decimal(o) == Decimal("4000000") and Decimal(n) == Decimal("8000000") for o, n in olds)


def test_product_limits_refuse_and_save_nothing(world):
    meta = world.meta
    product = meta.products["bank_loan"]
    before = count(world, ENTITY)
    with pytest.raises(ValidationFailed) as exc:
        world.project(amount=str(product.amount_max + 1), product="bank_loan")
    assert "amount" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        world.project(product="bank_loan", term_months=product.term_max_months + 1)
    assert "term_months" in exc.value.errors
    lit = meta.products["litigation_preservation"]
    not_allowed = next(k for k in meta.counter_guarantee_kinds if k not in lit.counter_guarantees)
    with pytest.raises(ValidationFailed) as exc:
        world.project(amount="1000000", product="litigation_preservation",
                      counter_guarantees=[{"kind": not_allowed, "asset_kind": "real_estate", "appraised_value": "100"}])
    assert "counter_guarantees.0.kind" in exc.value.errors
    world.s.rollback()
    assert count(world, ENTITY) == before


def test_risk_class_changed_by_hand_needs_a_reason(world):
    pid = world.project()
    p = get(world, pid)
    with pytest.raises(ValidationFailed) as exc:
        world.records().update(ENTITY, pid, {"risk_class": "attention"}, expected_version=p.version)
    assert "risk_class_reason" in exc.value.errors
    assert get(world, pid).risk_class == "normal"
    p = get(world, pid)
    world.records().update(ENTITY, pid, {"risk_class": "attention", "risk_class_reason": "主要客户流失，营收下滑"},
                           expected_version=p.version)
    assert get(world, pid).risk_class == "attention"


def test_next_check_follows_the_products_cycle_from_start_then_from_the_last_check(world):
    pid = world.project(start_date="2026-01-15")
    cycle = world.meta.products["bank_loan"].check_every_months
    assert get(world, pid).next_check_due is None                 # not in force yet
    world.records().assign(ENTITY, pid, {"status": "guaranteeing"})
    world.s.commit()
    assert get(world, pid).next_check_due == fn_add_months(dt.date(2026, 1, 15), cycle)
    p = get(world, pid)
    world.records().update(ENTITY, pid, {"post_checks": [{"round_no": 1, "done_on": "2026-04-20", "method": "site_visit",
                                                          "conclusion": "normal"}]}, expected_version=p.version)
    assert get(world, pid).next_check_due == fn_add_months(dt.date(2026, 4, 20), cycle)


def test_class_by_days_follows_the_settings():
    from wfhelpers import core_build
    meta, _ = core_build()
    days = meta.setting("risk_class_days")
    assert class_by_days(meta, 0) == "normal"
    for cls, limit in days.items():
        assert class_by_days(meta, int(limit)) == cls or \
            list(days).index(class_by_days(meta, int(limit))) >= list(days).index(cls)


def test_daily_run_marks_overdue_and_worsens_the_class_but_never_improves_it(world):
    late = world.project(start_date="2025-01-10", term_months=12)          # due 2026-01-10
    manual = world.project(start_date="2025-01-10", term_months=12)
    current = world.project(start_date="2026-06-01", term_months=12)
    for pid in (late, manual, current):
        world.records().assign(ENTITY, pid, {"status": "guaranteeing"})
    world.records().assign(ENTITY, manual, {"risk_class": "loss"})
    world.s.commit()
    today = dt.date(2026, 12, 1)
    counts = daily_run(world.s, world.models, world.meta, today)
    assert counts["overdue"] == 2
    p = get(world, late)
    assert (p.status, p.overdue_since) == ("overdue", dt.date(2026, 1, 10))
    assert p.risk_class == class_by_days(world.meta, (today - dt.date(2026, 1, 10)).days)
    assert get(world, manual).risk_class == "loss"
    assert get(world, current).status == "guaranteeing"
    assert daily_run(world.s, world.models, world.meta, today)["overdue"] == 0     # idempotent


def test_a_project_that_would_breach_the_single_customer_limit_is_flagged(world):
    net = Decimal(str(world.meta.setting("net_assets")))
    single = Decimal(str(world.meta.setting("single_customer_limit")))
    cap = world.meta.products["bank_loan"].amount_max
    cust = world.customer()
    held = Decimal(0)
    while held + cap <= net * single:              # in-force projects up to just under the limit
        pid = world.project(amount=str(cap), customer=cust)
        world.records().assign(ENTITY, pid, {"status": "guaranteeing"})
        held += cap
    world.s.commit()
    room = net * single - held
    fine = world.project(amount=str(max(room, Decimal("100000"))), customer=cust) if room >= 100000 else None
    if fine is not None:
        assert get(world, fine).limit_flag is None
    breach = world.project(amount=str(room + Decimal("200000")), customer=cust)
    flag = get(world, breach).limit_flag
    assert flag and "单一客户集中度" in flag and "single-customer" in flag
    other = world.project(amount=str(room + Decimal("200000")))                # another customer: fine
    assert get(world, other).limit_flag is None


def test_approval_generates_the_fee_plan_from_the_product_and_the_approved_rate(world):
    from danbao.engines.fees import fee_total, schedule_lines
    pid = world.project(amount="2000000", fee_rate="0.018", deposit_rate="0.15", term_months=12)
    iid = world.start(pid)
    wf = world.wf()
    wf.act(world.task("risk", iid), "approve", world.actor("risk"))
    wf.act(world.task("gm", iid), "approve", world.actor("gm"))            # second review
    wf.act(world.task("boss", iid), "approve", world.actor("boss"))        # sign-off (< 3m): not gm
    p = get(world, pid)
    rows = sorted(p.fee_instalments, key=lambda r: (r.due_on, r.kind))
    product = world.meta.products[p.product]
    expected = schedule_lines(product, world.meta, Decimal("2000000"), 12, world.clock().date(),
                              rate=Decimal("0.018"), deposit_rate=Decimal("0.15"))
    got = [(r.kind, r.due_on, r.amount) for r in rows]
    assert sorted(got) == sorted((e["kind"], e["due_on"], e["amount"]) for e in expected)
    scheme = world.meta.fee_schemes[product.fee_scheme]
    import dataclasses
    total = fee_total(dataclasses.replace(scheme, rate=Decimal("0.018"), tiers=()), Decimal("2000000"), 12)
    assert sum(r.amount for r in rows if r.kind == "guarantee_fee") == total
    assert sum(r.amount for r in rows if r.kind == "deposit") == Decimal("300000.00")


def test_a_fee_plan_with_money_received_keeps_the_paid_rows_and_follows_with_the_rest(world):
    """Terms changed after a first instalment was paid (a change request, a confirmed
    start): the paid row stays exactly as it is; the unpaid rows are the new terms' rows
    due after it, the last one taking the difference, so the kind's total is the new total."""
    from danbao.engines.actions import ActionContext
    from danbao.engines.business import generate_fee_schedule
    pid = world.project(amount="2000000", fee_rate="0.02", start_date=dt.date(2026, 12, 15))
    generate_fee_schedule(ActionContext(world.records(), ENTITY, pid, world.actor("fin"), world.clock()))
    world.s.commit()
    p = get(world, pid)
    fees = sorted((r for r in p.fee_instalments if r.kind == "guarantee_fee"), key=lambda r: r.due_on)
    assert [(r.due_on, r.amount) for r in fees] == [
        (dt.date(2026, 12, 15), Decimal("10000.00")), (dt.date(2027, 3, 15), Decimal("10000.00")),
        (dt.date(2027, 6, 15), Decimal("10000.00")), (dt.date(2027, 9, 15), Decimal("10000.00"))]
    first = fees[0]
    rows = [{"id": r.id, "kind": r.kind, "due_on": r.due_on.isoformat(), "amount": str(r.amount),
             "period_from": r.period_from, "period_to": r.period_to,
             "paid_amount": str(r.amount) if r.id == first.id else None} for r in p.fee_instalments]
    world.records().assign_children(ENTITY, pid, "fee_instalments", rows)    # as the ledger settles it
    world.records().assign(ENTITY, pid, {"fee_rate": Decimal("0.025")})     # an approved rate change
    generate_fee_schedule(ActionContext(world.records(), ENTITY, pid, world.actor("fin"), world.clock()))
    world.s.commit()
    fees = sorted((r for r in get(world, pid).fee_instalments if r.kind == "guarantee_fee"), key=lambda r: r.due_on)
    # 2.5% of 2,000,000 for 12 months = 50,000: 10,000 paid, 40,000 over the three unpaid quarters
    assert [(r.id == first.id, r.due_on, r.amount, r.paid_amount) for r in fees] == [
        (True, dt.date(2026, 12, 15), Decimal("10000.00"), Decimal("10000.00")),
        (False, dt.date(2027, 3, 15), Decimal("12500.00"), None),
        (False, dt.date(2027, 6, 15), Decimal("12500.00"), None),
        (False, dt.date(2027, 9, 15), Decimal("15000.00"), None)]


def test_the_fee_plan_is_dated_from_the_start_not_from_the_day_it_is_made(world):
    """Finding 4: the plan runs over the guarantee (2026-12-15 → 2027-12-15) at the project's
    own approved rate (2.5% a year, ¥6,250 a quarter on ¥1,000,000), whatever today is."""
    pid = world.project(amount="1000000", fee_rate="0.025", deposit_rate="0", start_date=dt.date(2026, 12, 15))
    iid = world.start(pid)
    wf = world.wf()
    wf.act(world.task("risk", iid), "approve", world.actor("risk"))        # 初审
    wf.act(world.task("gm", iid), "approve", world.actor("gm"))            # 复审
    wf.act(world.task("boss", iid), "approve", world.actor("boss"))        # 总经理审批: not gm
    fees = sorted((r for r in get(world, pid).fee_instalments if r.kind == "guarantee_fee"), key=lambda r: r.due_on)
    assert [(r.due_on, r.period_to, r.amount) for r in fees] == [
        (dt.date(2026, 12, 15), dt.date(2027, 3, 15), Decimal("6250.00")),
        (dt.date(2027, 3, 15), dt.date(2027, 6, 15), Decimal("6250.00")),
        (dt.date(2027, 6, 15), dt.date(2027, 9, 15), Decimal("6250.00")),
        (dt.date(2027, 9, 15), dt.date(2027, 12, 15), Decimal("6250.00"))]


def test_follow_unpaid_keeps_totals_whatever_the_rows(world):
    from danbao.engines.fees import follow_unpaid
    d = dt.date
    kept = [{"kind": "guarantee_fee", "due_on": d(2027, 1, 1), "amount": Decimal("30000.00")}]
    lines = [{"kind": "guarantee_fee", "due_on": d(2027, m, 1), "amount": Decimal("10000.00")} for m in (1, 4, 7, 10)]
    # a total already covered leaves nothing unpaid; one below what was paid too
    assert follow_unpaid(kept, lines) == [{"kind": "guarantee_fee", "due_on": d(2027, 4, 1), "amount": Decimal("10000.00")}]
    assert follow_unpaid([dict(kept[0], amount=Decimal("45000.00"))], lines) == []
    # money paid on a row the new plan no longer has: the rest still adds up
    late = [{"kind": "guarantee_fee", "due_on": d(2027, 12, 1), "amount": Decimal("5000.00")}]
    assert follow_unpaid(late, lines) == [{"kind": "guarantee_fee", "due_on": d(2027, 10, 1), "amount": Decimal("35000.00")}]


def test_the_product_chooses_the_form_sections(world):
    meta = world.meta
    em = meta.entity(ENTITY)
    for s in em.sections:
        listing = {p.code for p in meta.products.values() if not p.sections or s.key in p.sections}
        assert (s.visible_if is None) == (listing == set(meta.products))
    bank = world.records().create("bank", {"name": "江苏银行", "branch": "南京分行"}) if meta.entity("bank").has_field(
        "branch") else world.records().create("bank", {"name": "江苏银行"})
    lit = world.project(amount="800000", product="litigation_preservation", bank=bank.id, beneficiary="南京市中级人民法院",
                        counter_guarantees=[{"kind": "earnest", "appraised_value": "800000"}])
    loan = world.project(amount="800000", product="bank_loan", bank=bank.id, beneficiary="不适用")
    p, q = get(world, lit), get(world, loan)
    assert (p.bank_id, p.beneficiary) == (None, "南京市中级人民法院")       # the hidden section's values are ignored
    assert (q.bank_id, q.beneficiary) == (bank.id, None)


def test_a_confirmed_receipt_pays_the_fee_plan_and_its_reversal_takes_it_back(world):
    from danbao.engines.actions import ActionContext
    from danbao.engines.business import generate_fee_schedule
    from danbao.engines.ledger import LedgerService
    pid = world.project(amount="2000000", fee_rate="0.02")
    generate_fee_schedule(ActionContext(world.records(), ENTITY, pid, world.actor("fin"), world.clock()))
    world.records().assign(ENTITY, pid, {"status": "guaranteeing"})
    world.s.commit()
    fees = sorted((r for r in get(world, pid).fee_instalments if r.kind == "guarantee_fee"), key=lambda r: r.due_on)
    ledger = LedgerService(world.s, world.models, world.meta, clock=world.clock)

    def book(amount):
        eid = ledger.make(pid, "guarantee_fee_received", amount, world.actor("pm"), booked_on=dt.date(2026, 12, 5))
        ledger.check(eid, world.actor("risk"))
        ledger.confirm(eid, world.actor("fin"))
        return eid

    first_and_half = fees[0].amount + (fees[1].amount / 2).quantize(Decimal("0.01"))
    eid = book(first_and_half)
    rows = sorted((r for r in get(world, pid).fee_instalments if r.kind == "guarantee_fee"), key=lambda r: r.due_on)
    assert rows[0].paid_amount == rows[0].amount and rows[0].paid_on == dt.date(2026, 12, 5)
    assert rows[1].paid_amount == first_and_half - rows[0].amount
    assert all(not r.paid_amount for r in rows[2:])
    assert sum(r.paid_amount or 0 for r in rows) == ledger.balances(pid)["guarantee_fee"]
    rev = ledger.reverse(eid, world.actor("pm"), "金额有误")
    ledger.check(rev, world.actor("risk"))
    ledger.confirm(rev, world.actor("fin"))
    rows = get(world, pid).fee_instalments
    assert all(not r.paid_amount for r in rows if r.kind == "guarantee_fee")
    assert ledger.balances(pid)["guarantee_fee"] == 0


def test_the_daily_run_writes_the_regulatory_position_and_leverage_warns(world):
    import dataclasses
    from danbao.engines.regulatory import Limits, ratio
    from danbao.engines.warnings import scan
    from danbao.meta.model import SettingMeta
    for amount in ("3000000", "2500000"):
        world.records().assign(ENTITY, world.project(amount=amount, start_date="2026-06-01"), {"status": "guaranteeing"})
    world.s.commit()
    settings = dict(world.meta.settings, net_assets=SettingMeta("net_assets", Decimal("600000")))
    small = dataclasses.replace(world.meta, settings=settings)          # a company with little capital
    today = dt.date(2026, 12, 1)
    assert daily_run(world.s, world.models, small, today)["position"]
    t = world.models.table("regulatory_position")
    (row,) = world.s.execute(sa.select(t)).all()
    lim = Limits.of(small)
    assert Decimal(str(row.outstanding)) == Decimal("5500000.00") and row.in_force_count == 2
    assert Decimal(str(row.leverage)) == ratio(Decimal("5500000"), lim.net_assets).quantize(Decimal("0.0001"))
    assert row.leverage_status == "near"                     # 9.17× ≥ 90 % of 10×
    scan(world.s, world.models, world.meta, as_of=today)
    warnings = world.models.system["danbao_warning"]
    open_rules = {r for (r,) in world.s.execute(sa.select(warnings.c.rule).where(warnings.c.status == "open"))}
    assert "leverage_near" in open_rules and "leverage_breach" not in open_rules
    world.records().assign(ENTITY, world.project(amount="1000000", start_date="2026-06-01"), {"status": "guaranteeing"})
    world.s.commit()
    daily_run(world.s, world.models, small, today)
    assert world.s.execute(sa.select(t.c.leverage_status)).scalar() == "breach"   # still one record, rewritten
    assert world.s.execute(sa.select(sa.func.count()).select_from(t)).scalar() == 1


def test_a_kind_the_product_refuses_is_named_on_the_row_as_sent(world):
    """Rows are numbered as the form sent them, a new row first included."""
    pid = world.project(amount="800000", product="litigation_preservation", beneficiary="南京市中级人民法院",
                        counter_guarantees=[{"kind": "earnest", "appraised_value": "800000"}])
    p = get(world, pid)
    kept = {"id": p.counter_guarantees[0].id, "kind": "earnest", "appraised_value": "800000"}
    with pytest.raises(ValidationFailed) as info:
        world.records().update(ENTITY, pid, {"counter_guarantees": [
            {"kind": "mortgage", "asset_kind": "real_estate", "appraised_value": "900000"}, kept]},
            expected_version=p.version)
    assert set(info.value.errors) == {"counter_guarantees.0.kind"}
    world.s.rollback()
    assert [r.kind for r in get(world, pid).counter_guarantees] == ["earnest"]
