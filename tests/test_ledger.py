"""The ledger (台账): maker-checker-confirmer booking, balances from confirmed
entries only, reversals, and refusals that change nothing — on SQLite, and on
PostgreSQL when DANBAO_TEST_DATABASE_URL is set (with concurrent confirms)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from conftest import is_postgres
from danbao.engines.ledger import LedgerRefused, LedgerService
from danbao.engines.records import Actor, NotFound
from danbao.meta.model import LEDGER_BALANCES, SettingMeta
from ledgerhelpers import KINDS, SETTINGS, LedgerWorld, kind, ledger_meta
from wfhelpers import ENTITY, make_uscc

ZERO = D("0.00")


@pytest.fixture
def world(database_url):
    w = LedgerWorld(database_url)
    yield w
    w.close()


def refused(kind: str, call, *args, **kw) -> LedgerRefused:
    with pytest.raises(LedgerRefused) as err:
        call(*args, **kw)
    assert err.value.kind == kind, err.value.message
    assert err.value.message.zh and err.value.message.en
    return err.value


# -- the chain ------------------------------------------------------------------------
def test_full_chain_make_check_confirm(world):
    p = world.project(status="guaranteeing")
    ledger = world.ledger()
    e = ledger.make(p, "deposit_received", D("500000.00"), world.actor("pm"), note="首笔保证金",
                    booked_on=dt.date(2026, 11, 30))
    row = world.entry(e)
    assert (row.state, row.direction, row.amount, row.kind, row.note) == \
        ("made", 1, D("500000.00"), "deposit_received", "首笔保证金")
    assert (row.made_by_id, row.booked_on, row.lock_version) == (world.uid["pm"], dt.date(2026, 11, 30), 0)
    assert (row.project_entity, row.project_id) == (ENTITY, p)
    assert row.meta_version == world.lmeta.version
    assert world.balance(p) == ZERO                                # made: not counted
    assert [r.id for r in ledger.pending_for(world.uid["fin"])] == [e]
    assert ledger.pending_for(world.uid["boss"]) == []             # nothing to confirm yet
    assert ledger.pending_for(world.uid["pm"]) == []               # the maker is never asked

    world.clock.advance(hours=1)
    ledger.check(e, world.actor("fin"))
    row = world.entry(e)
    assert (row.state, row.checked_by_id, row.checked_at, row.lock_version) == \
        ("checked", world.uid["fin"], world.clock(), 1)
    assert world.balance(p) == ZERO                                # checked: not counted
    assert [r.id for r in ledger.pending_for(world.uid["boss"])] == [e]
    assert [r.id for r in ledger.pending_for(world.uid["cfo"])] == [e]
    assert ledger.pending_for(world.uid["fin"]) == []

    world.clock.advance(hours=1)
    ledger.confirm(e, world.actor("boss"))
    row = world.entry(e)
    assert (row.state, row.confirmed_by_id, row.confirmed_at, row.lock_version) == \
        ("confirmed", world.uid["boss"], world.clock(), 2)
    balances = world.ledger().balances(p)
    assert set(balances) == set(LEDGER_BALANCES)
    assert balances["deposit_held"] == D("500000.00")
    assert all(v == ZERO for k, v in balances.items() if k != "deposit_held")
    assert all(v.as_tuple().exponent == -2 for v in balances.values())
    assert ledger.pending_for(world.uid["boss"]) == []
    assert [r.id for r in ledger.entries(p)] == [e]


def test_booked_on_defaults_to_today(world):
    p = world.project()
    e = world.ledger().make(p, "review_fee_received", D("3000"), world.actor("fin"))
    assert world.entry(e).booked_on == world.clock().date()
    assert world.entry(e).amount == D("3000.00")


def test_balances_count_confirmed_entries_only(world):
    p = world.project(status="guaranteeing")
    world.book(p, "deposit_received", "100.00")
    world.book(p, "deposit_received", "20.00", confirmer=None)         # checked
    world.book(p, "deposit_received", "3.00", checker=None)            # made
    rejected = world.book(p, "deposit_received", "4000.00", checker=None)
    world.ledger().reject(rejected, world.actor("fin"), "金额有误")
    world.book(p, "guarantee_fee_received", "25000.00")
    world.book(p, "loan_drawn", "1000000.00")
    world.book(p, "loan_repaid", "400000.00")
    world.book(p, "fee_adjustment", "-100.50")
    b = world.ledger().balances(p)
    assert b["deposit_held"] == D("100.00")
    assert b["guarantee_fee"] == D("24899.50")
    assert b["loan_outstanding"] == b["guarantee_outstanding"] == D("600000.00")
    assert b["review_fee"] == b["compensation_paid"] == ZERO
    assert world.entry(rejected).state == "rejected" and world.entry(rejected).reject_reason == "金额有误"
    other = world.project(status="guaranteeing")
    assert world.ledger().balances(other) == {name: ZERO for name in LEDGER_BALANCES}


def test_customer_balances_sum_the_customers_projects(world):
    corp = world.customer()
    p1 = world.project(status="guaranteeing", customer=corp)
    p2 = world.project(status="guaranteeing", customer=corp)
    p3 = world.project(status="guaranteeing")                          # another customer
    world.book(p1, "deposit_received", "100.00")
    world.book(p2, "deposit_received", "50.00")
    world.book(p2, "deposit_refunded", "20.00")
    world.book(p3, "deposit_received", "7.00")
    world.book(p1, "deposit_received", "1.00", confirmer=None)
    row = world.entry(world.book(p1, "review_fee_received", "9.00"))
    assert (row.customer_entity, row.customer_id) == ("corporate_customer", corp)
    b = world.ledger().customer_balances("corporate_customer", corp)
    assert b["deposit_held"] == D("130.00") and b["review_fee"] == D("9.00")
    assert world.ledger().customer_balances("corporate_customer", -1)["deposit_held"] == ZERO


def test_individual_customer_is_the_projects_customer(world):
    person = world.records().create("individual_customer", {
        "name": "张三", "id_no": "110101199003071233"}).id
    p = world.project(status="guaranteeing", customer_kind="individual", corporate_customer=None,
                      individual_customer=person)
    e = world.book(p, "deposit_received", "10.00")
    assert (world.entry(e).customer_entity, world.entry(e).customer_id) == ("individual_customer", person)
    assert world.ledger().customer_balances("individual_customer", person)["deposit_held"] == D("10.00")


def test_the_core_packs_own_ledger_kinds_and_settings(world):
    """The pack's declarations as the loader gives them: one deposit in and a refund too many."""
    meta = world.meta
    if "deposit_refunded" not in meta.ledger_kinds or not meta.setting("ledger_confirmer"):
        pytest.skip("the core pack declares no ledger")
    from ledgerhelpers import PEOPLE as CAST

    def someone(setting: str, taken: set) -> str:
        who = meta.setting(setting)
        if "a_manager" in (who.get("fields") or ()):
            return "pm"
        return next(n for n, roles in CAST.items() if set(roles) & set(who.get("roles") or ()) and n not in taken)
    maker = someone("ledger_maker", set())
    checker = someone("ledger_checker", {maker})
    confirmer = someone("ledger_confirmer", {maker, checker})
    ledger = world.ledger(meta=meta)
    p = world.project(status="guaranteeing")
    e = ledger.make(p, "deposit_received", D("1000.00"), world.actor(maker))
    ledger.check(e, world.actor(checker))
    ledger.confirm(e, world.actor(confirmer))
    assert ledger.balances(p)["deposit_held"] == D("1000.00")
    refused("invalid", ledger.make, p, "deposit_refunded", D("1000.01"), world.actor(maker))
    world.set(ENTITY, p, status="rejected")
    refused("invalid", ledger.make, p, "deposit_refunded", D("1.00"), world.actor(maker))


# -- reversals ----------------------------------------------------------------------------
def test_reversal_goes_through_the_chain_and_undoes_the_entry(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "deposit_received", "100.00")
    world.book(p, "deposit_received", "5.00")
    ledger = world.ledger()
    r = ledger.reverse(e, world.actor("fin"), "重复登记")
    row = world.entry(r)
    assert (row.state, row.direction, row.kind, row.amount, row.reverses_id, row.note) == \
        ("made", -1, "deposit_received", D("100.00"), e, "重复登记")
    assert world.balance(p) == D("105.00")                            # not yet confirmed
    refused("state", ledger.reverse, e, world.actor("fin"), "again")   # a reversal is pending
    ledger.check(r, world.actor("fin2"))
    ledger.confirm(r, world.actor("boss"))
    assert world.balance(p) == D("5.00")
    refused("state", ledger.reverse, e, world.actor("fin"), "again")   # only once
    refused("state", ledger.reverse, r, world.actor("fin"), "reverse the reversal")
    assert world.entry(e).state == "confirmed"                         # the original is untouched


def test_rejected_reversal_does_not_block_a_new_one(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "guarantee_fee_received", "800.00")
    ledger = world.ledger()
    r1 = ledger.reverse(e, world.actor("fin"), "录错")
    ledger.reject(r1, world.actor("fin2"), "不应冲销")
    r2 = ledger.reverse(e, world.actor("fin"), "确实录错")
    ledger.check(r2, world.actor("fin2"))
    ledger.confirm(r2, world.actor("boss"))
    assert world.balance(p, "guarantee_fee") == ZERO


def test_only_confirmed_entries_can_be_reversed(world):
    p = world.project(status="guaranteeing")
    made = world.book(p, "deposit_received", "1.00", checker=None)
    checked = world.book(p, "deposit_received", "1.00", confirmer=None)
    before = world.rows()
    for e in (made, checked):
        refused("state", world.ledger().reverse, e, world.actor("fin"), "x")
    refused("invalid", world.ledger().reverse, made, world.actor("fin"), "   ")     # a reason is needed
    assert world.rows() == before


def test_reversal_cannot_take_a_capped_balance_below_zero(world):
    """Received 100, refunded 100: reversing the receipt would leave −100 held."""
    p = world.project(status="guaranteeing")
    received = world.book(p, "deposit_received", "100.00")
    world.book(p, "deposit_refunded", "100.00")
    before = world.rows()
    err = refused("invalid", world.ledger().reverse, received, world.actor("fin"), "x")
    assert "below zero" in err.message.en
    assert world.rows() == before
    refund_reversal = world.ledger().reverse(world.rows()[-1][0], world.actor("fin"), "退款未付出")
    world.ledger().check(refund_reversal, world.actor("fin2"))
    world.ledger().confirm(refund_reversal, world.actor("boss"))
    assert world.balance(p) == D("100.00")


def test_make_with_reverses_id_must_match_the_original(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "deposit_received", "100.00")
    before = world.rows()
    refused("invalid", world.ledger().make, p, "deposit_received", D("99.00"), world.actor("fin"), reverses_id=e)
    refused("invalid", world.ledger().make, p, "review_fee_received", D("100.00"), world.actor("fin"),
            reverses_id=e)
    refused("invalid", world.ledger().make, world.project(status="guaranteeing"), "deposit_received", D("100.00"),
            world.actor("fin"), reverses_id=e)
    with pytest.raises(NotFound):
        world.ledger().make(p, "deposit_received", D("100.00"), world.actor("fin"), reverses_id=10**6)
    assert world.rows()[:len(before)] == before and len(world.rows()) == len(before)


# -- deposit refunds -------------------------------------------------------------------------
def test_refund_above_the_deposit_held_is_refused_at_make(world):
    p = world.project(status="guaranteeing")
    world.book(p, "deposit_received", "100.00")
    world.book(p, "deposit_received", "50.00", confirmer=None)         # not held until confirmed
    before = world.rows()
    err = refused("invalid", world.ledger().make, p, "deposit_refunded", D("100.01"), world.actor("fin"))
    assert "100.01" in err.message.en and "100.00" in err.message.zh
    assert world.rows() == before
    world.book(p, "deposit_refunded", "100.00")
    assert world.balance(p) == ZERO
    refused("invalid", world.ledger().make, p, "deposit_refunded", D("0.01"), world.actor("fin"))


def test_refund_refused_at_confirm_when_a_competing_refund_was_confirmed_first(world):
    p = world.project(status="guaranteeing")
    world.book(p, "deposit_received", "100.00")
    first = world.book(p, "deposit_refunded", "70.00", confirmer=None)
    second = world.book(p, "deposit_refunded", "60.00", maker="fin", checker="fin2", confirmer=None)
    world.ledger().confirm(first, world.actor("boss"))
    before = world.rows()
    refused("invalid", world.ledger().confirm, second, world.actor("boss"))
    assert world.rows() == before and world.entry(second).state == "checked"
    assert world.balance(p) == D("30.00")
    world.ledger().reject(second, world.actor("boss"), "保证金不足")
    assert world.entry(second).state == "rejected"


def test_loan_repayment_and_compensation_are_capped(world):
    p = world.project(status="guaranteeing")
    world.book(p, "loan_drawn", "1000.00")
    refused("invalid", world.ledger().make, p, "loan_repaid", D("1000.01"), world.actor("fin"))
    err = refused("invalid", world.ledger().make, p, "compensation", D("1000.01"), world.actor("fin"))
    assert "guarantee outstanding" in err.message.en
    world.book(p, "compensation", "600.00")
    # only the declared caps: repaying 500 of the loan is fine though the guarantee has 400 left
    world.book(p, "loan_repaid", "500.00")
    b = world.ledger().balances(p)
    assert (b["loan_outstanding"], b["guarantee_outstanding"], b["compensation_paid"]) == \
        (D("500.00"), D("-100.00"), D("600.00"))


# -- who may act ----------------------------------------------------------------------------------
def test_the_same_person_cannot_act_twice(world):
    p = world.project(status="guaranteeing")
    ledger = world.ledger()
    e = ledger.make(p, "deposit_received", D("10.00"), world.actor("cfo"))
    before = world.rows()
    err = refused("forbidden", ledger.check, e, world.actor("cfo"))
    assert "three different people" in err.message.en
    assert world.rows() == before
    ledger.check(e, world.actor("fin"))
    before = world.rows()
    refused("forbidden", ledger.confirm, e, world.actor("cfo"))        # the maker
    e2 = ledger.make(p, "deposit_received", D("10.00"), world.actor("fin"))
    ledger.check(e2, world.actor("cfo"))
    refused("forbidden", ledger.confirm, e2, world.actor("cfo"))       # the checker
    refused("forbidden", ledger.reject, e2, world.actor("cfo"), "no")  # nor reject it
    assert world.rows()[:len(before)] == before
    ledger.confirm(e, world.actor("boss"))
    ledger.confirm(e2, world.actor("boss"))
    assert world.balance(p) == D("20.00")


def test_roles_and_project_fields_decide_who_acts(world):
    p = world.project(status="guaranteeing", a_manager="pm")
    ledger = world.ledger()
    before = world.rows()
    refused("forbidden", ledger.make, p, "deposit_received", D("1.00"), world.actor("pm2"))   # not this project's A角
    refused("forbidden", ledger.make, p, "deposit_received", D("1.00"), world.actor("boss"))
    refused("forbidden", ledger.make, p, "deposit_received", D("1.00"), Actor(None, "anonymous"))
    assert world.rows() == before
    e = ledger.make(p, "deposit_received", D("1.00"), world.actor("pm"))                      # the A角
    refused("forbidden", ledger.check, e, world.actor("boss"))
    refused("forbidden", ledger.check, e, world.actor("risk"))
    ledger.check(e, world.actor("fin"))
    refused("forbidden", ledger.confirm, e, world.actor("fin2"))
    refused("forbidden", ledger.reject, e, world.actor("fin2"), "no")  # a checked entry is the confirmer's
    world.add_user("gone", ["manager"], active=False)
    refused("forbidden", ledger.confirm, e, world.actor("gone"))
    assert ledger.pending_for(world.uid["gone"]) == []
    ledger.confirm(e, world.actor("boss2"))


def test_unset_settings_let_nobody_act(world):
    p = world.project(status="guaranteeing")
    settings = {k: v for k, v in SETTINGS.items() if k != "ledger_maker"}
    meta = dataclasses.replace(world.meta, ledger_kinds=KINDS, settings=settings)
    err = refused("forbidden", world.ledger(meta=meta).make, p, "deposit_received", D("1.00"), world.actor("fin"))
    assert "ledger_maker" in err.message.en
    assert world.rows() == []


def test_settings_may_name_other_user_fields(world):
    settings = {**SETTINGS, "ledger_checker": SettingMeta("ledger_checker", {"roles": [], "fields": ["b_manager"]})}
    ledger = world.ledger(meta=ledger_meta(world.meta, settings=settings))
    p = world.project(status="guaranteeing", b_manager=world.uid["pm2"])
    e = ledger.make(p, "deposit_received", D("1.00"), world.actor("pm"))
    refused("forbidden", ledger.check, e, world.actor("fin"))
    assert [r.id for r in ledger.pending_for(world.uid["pm2"])] == [e]
    ledger.check(e, world.actor("pm2"))


# -- refusals change nothing ------------------------------------------------------------------------
BAD_AMOUNTS = [D(0), D("-1.00"), D("1.001"), D("NaN"), D("Infinity"), D("1E+17"), 1.5, 100, "100", None]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=[repr(a) for a in BAD_AMOUNTS])
def test_bad_amounts_are_refused(world, amount):
    p = world.project(status="guaranteeing")
    world.book(p, "deposit_received", "5.00")
    before = world.rows(), world.ledger().balances(p)
    refused("invalid", world.ledger().make, p, "deposit_received", amount, world.actor("fin"))
    assert (world.rows(), world.ledger().balances(p)) == before


def test_negative_amounts_only_where_the_kind_allows_them(world):
    p = world.project(status="guaranteeing")
    refused("invalid", world.ledger().make, p, "deposit_received", D("-5.00"), world.actor("fin"))
    refused("invalid", world.ledger().make, p, "fee_adjustment", D("0.00"), world.actor("fin"))
    world.book(p, "fee_adjustment", "-5.00")
    assert world.balance(p, "guarantee_fee") == D("-5.00")


@pytest.mark.parametrize("case", ["unknown_kind", "closed_status", "kind_status", "control_chars", "long_note",
                                  "datetime_booked_on", "missing_project"])
def test_invalid_entries_are_refused(world, case):
    p = world.project(status="applying")
    world.book(p, "deposit_received", "5.00")
    released = world.project(status="released")
    before = world.rows(), world.ledger().balances(p)
    ledger, fin = world.ledger(), world.actor("fin")
    if case == "unknown_kind":
        refused("invalid", ledger.make, p, "bribe", D("1.00"), fin)
    elif case == "closed_status":            # no statuses listed: anything but the closed ones
        err = refused("invalid", ledger.make, released, "deposit_received", D("1.00"), fin)
        assert "已解保" in err.message.zh and "Released" in err.message.en
    elif case == "kind_status":              # statuses listed: only those
        refused("invalid", ledger.make, p, "deposit_refunded", D("1.00"), fin)
    elif case == "control_chars":
        refused("invalid", ledger.make, p, "deposit_received", D("1.00"), fin, note="a\x00b")
    elif case == "long_note":
        refused("invalid", ledger.make, p, "deposit_received", D("1.00"), fin, note="x" * 4001)
    elif case == "datetime_booked_on":
        refused("invalid", ledger.make, p, "deposit_received", D("1.00"), fin, booked_on=dt.datetime(2026, 1, 1))
    elif case == "missing_project":
        with pytest.raises(NotFound):
            ledger.make(10**6, "deposit_received", D("1.00"), fin)
    assert (world.rows(), world.ledger().balances(p)) == before


def test_kind_listing_a_closed_status_may_book_in_it(world):
    p = world.project(status="guaranteeing")
    world.book(p, "deposit_received", "100.00")
    world.set(ENTITY, p, status="released")
    refused("invalid", world.ledger().make, p, "deposit_received", D("1.00"), world.actor("fin"))
    world.book(p, "deposit_refunded", "100.00")                       # deposit_refunded lists released
    assert world.balance(p) == ZERO


def test_status_is_checked_again_at_confirm(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "deposit_received", "100.00", confirmer=None)
    world.set(ENTITY, p, status="written_off")
    before = world.rows()
    refused("invalid", world.ledger().confirm, e, world.actor("boss"))
    assert world.rows() == before


def test_acting_in_the_wrong_state_is_refused(world):
    p = world.project(status="guaranteeing")
    made = world.book(p, "deposit_received", "1.00", checker=None)
    checked = world.book(p, "deposit_received", "2.00", confirmer=None)
    rejected = world.book(p, "deposit_received", "3.00", checker=None)
    world.ledger().reject(rejected, world.actor("fin"), "错")
    before = world.rows()
    ledger = world.ledger()
    refused("state", ledger.confirm, made, world.actor("boss"))
    refused("state", ledger.check, checked, world.actor("fin2"))
    for call in (ledger.check, ledger.confirm):
        refused("state", call, rejected, world.actor("cfo"))
    err = refused("state", ledger.reject, rejected, world.actor("cfo"), "again")
    assert "rejected" in err.message.en
    refused("invalid", ledger.reject, made, world.actor("fin2"), "")             # a reason is needed
    with pytest.raises(NotFound):
        ledger.check(10**6, world.actor("fin2"))
    assert world.rows() == before


def test_a_confirmed_entry_is_never_changed(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "deposit_received", "100.00")
    before = world.rows()
    ledger = world.ledger()
    refused("state", ledger.check, e, world.actor("fin2"))
    refused("state", ledger.confirm, e, world.actor("boss2"))
    refused("state", ledger.reject, e, world.actor("boss2"), "撤销")
    refused("state", ledger.reject, e, world.actor("fin2"), "撤销")
    # the service has no path that updates or deletes an entry
    assert not [name for name in dir(LedgerService)
                if any(word in name.lower() for word in ("update", "delete", "edit", "remove", "amend"))]
    assert world.rows() == before
    assert world.balance(p) == D("100.00")


# -- stale and concurrent actions ----------------------------------------------------------------------
def test_stale_lock_version_is_a_conflict(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "deposit_received", "1.00", checker=None)
    seen = world.entry(e).lock_version
    world.ledger().reject(e, world.actor("fin2"), "另有原因")
    before = world.rows()
    refused("conflict", world.ledger().check, e, world.actor("fin"), lock_version=seen)
    assert world.rows() == before


def test_someone_acting_between_read_and_write_is_a_conflict(world, monkeypatch):
    """The compare-and-set: another person rejects the entry after this one read it."""
    p = world.project(status="guaranteeing")
    e = world.book(p, "deposit_received", "1.00", checker=None)
    ledger = world.ledger()
    read = LedgerService._entry
    interrupted = []

    def read_then_someone_else_acts(self, entry_id, lock_version=None):
        row = read(self, entry_id, lock_version)
        if not interrupted:
            interrupted.append(entry_id)
            with Session(world.engine) as other:
                world.ledger(session=other).reject(entry_id, world.actor("fin2"), "抢先退回")
        return row
    monkeypatch.setattr(LedgerService, "_entry", read_then_someone_else_acts)
    refused("conflict", ledger.check, e, world.actor("fin"))
    monkeypatch.undo()
    row = world.entry(e)
    assert (row.state, row.rejected_by_id, row.checked_by_id, row.lock_version) == \
        ("rejected", world.uid["fin2"], None, 1)


# -- random sequences against an independent sum ----------------------------------------------------------
MAKERS, CHECKERS, CONFIRMERS = {"pm", "fin", "fin2", "cfo"}, {"fin", "fin2", "cfo"}, {"boss", "cfo"}
PEOPLE = ["pm", "fin", "fin2", "boss", "cfo", "clerk"]
RANDOM_KINDS = ["deposit_received", "deposit_refunded", "loan_drawn", "loan_repaid", "compensation",
                "fee_adjustment"]
GUARDED = {k.not_above for k in KINDS.values() if k.not_above}


def _model_balances(entries: dict) -> dict:
    out = {b: D(0) for b in LEDGER_BALANCES}
    for e in entries.values():
        if e["state"] == "confirmed":
            for balance, effect in KINDS[e["kind"]].effects.items():
                out[balance] += e["amount"] * e["direction"] * effect
    return out


def _fits(entries: dict, kind: str, amount: D, direction: int, exclude=None) -> bool:
    """The caps, worked out on the model: an entry's not_above; a reversal takes no capped balance below zero."""
    held = _model_balances({k: v for k, v in entries.items() if k != exclude})
    km = KINDS[kind]
    if direction == 1:
        return not km.not_above or amount <= held[km.not_above]
    return not any(b in GUARDED and amount * direction * e < 0 and held[b] + amount * direction * e < 0
                   for b, e in km.effects.items())


@pytest.fixture(scope="module")
def shared_world(module_database_url):
    w = LedgerWorld(module_database_url)
    yield w
    w.close()


@settings(max_examples=25 if is_postgres() else 40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_sequences_keep_balances_equal_to_confirmed_entries(shared_world, data):
    world = shared_world
    p = world.project(status="guaranteeing")
    ledger = world.ledger()
    entries: dict[int, dict] = {}
    for _ in range(data.draw(st.integers(5, 40), label="steps")):
        op = data.draw(st.sampled_from(["make", "make", "check", "confirm", "confirm", "reject", "reverse"]))
        wanted = {"make": ("made", "checked", "confirmed"), "check": ("made",), "confirm": ("checked",),
                  "reject": ("made", "checked"), "reverse": ("confirmed",)}[op]
        likely = sorted(e for e, x in entries.items() if x["state"] in wanted)
        # mostly someone entitled acting on an entry in the right state, sometimes anyone on anything
        if likely and data.draw(st.integers(0, 4)):
            entries_to_pick = likely
        else:
            entries_to_pick = sorted(entries)
        picked = data.draw(st.sampled_from(entries_to_pick)) if entries_to_pick else None
        hands = entries[picked]["hands"] if picked is not None else []
        step = {"make": MAKERS, "reverse": MAKERS, "check": CHECKERS, "confirm": CONFIRMERS,
                "reject": CHECKERS if picked is None or entries[picked]["state"] == "made" else CONFIRMERS}[op]
        fit = sorted(step - set(hands if op != "make" and op != "reverse" else ()))
        who = data.draw(st.sampled_from(fit if fit and data.draw(st.integers(0, 4)) else PEOPLE))
        before = world.rows()
        expected_ok = False
        try:
            if op == "make":
                kind = data.draw(st.sampled_from(RANDOM_KINDS))
                low = D("-300") if KINDS[kind].allow_negative else D("0.01")
                amount = data.draw(st.decimals(min_value=low, max_value=D("300"), places=2))
                expected_ok = who in MAKERS and amount != 0 and _fits(entries, kind, amount, 1)
                e = ledger.make(p, kind, amount, world.actor(who))
                entries[e] = {"kind": kind, "amount": amount, "direction": 1, "state": "made", "hands": [who],
                              "reversed": False}
            elif picked is None:
                continue
            else:
                e = picked
                x = entries[e]
                if op == "check":
                    expected_ok = x["state"] == "made" and who in CHECKERS and who not in x["hands"]
                    ledger.check(e, world.actor(who))
                    x["state"] = "checked"
                    x["hands"].append(who)
                elif op == "confirm":
                    expected_ok = x["state"] == "checked" and who in CONFIRMERS and who not in x["hands"] \
                        and _fits(entries, x["kind"], x["amount"], x["direction"], exclude=e)
                    ledger.confirm(e, world.actor(who))
                    x["state"] = "confirmed"
                elif op == "reject":
                    allowed = CHECKERS if x["state"] == "made" else CONFIRMERS
                    expected_ok = x["state"] in ("made", "checked") and who in allowed and who not in x["hands"]
                    ledger.reject(e, world.actor(who), "退回")
                    x["state"] = "rejected"
                    if x["direction"] == -1:
                        entries[x["reverses"]]["reversed"] = False
                else:
                    expected_ok = x["state"] == "confirmed" and x["direction"] == 1 and not x["reversed"] \
                        and who in MAKERS and _fits(entries, x["kind"], x["amount"], -1)
                    r = ledger.reverse(e, world.actor(who), "冲销")
                    x["reversed"] = True
                    entries[r] = {"kind": x["kind"], "amount": x["amount"], "direction": -1, "state": "made",
                                  "hands": [who], "reverses": e, "reversed": False}
            assert expected_ok, f"{op} by {who} went through but should have been refused"
            event(f"{op} done")
        except LedgerRefused as exc:
            assert not expected_ok, f"{op} by {who} refused: {exc.message.en}"
            event(f"{op} refused ({exc.kind})")
            assert world.rows() == before
        held = world.ledger().balances(p)
        model = _model_balances(entries)
        assert held == {b: v.quantize(D("0.01")) for b, v in model.items()}
        assert held["deposit_held"] >= 0 and held["loan_outstanding"] >= 0, held
        rows = {r.id: r for r in world.ledger().entries(p)}
        assert {e: (r.state, r.direction, r.amount) for e, r in rows.items()} == \
            {e: (x["state"], x["direction"], x["amount"]) for e, x in entries.items()}


# -- effects pinned when an entry is made -------------------------------------------------------------
def _kinds_with(**changed) -> dict:
    """The test's kinds with some replaced (code=LedgerKindMeta) or removed (code=None)."""
    out = {**KINDS, **{code: k for code, k in changed.items() if k is not None}}
    return {code: k for code, k in out.items() if changed.get(code, k) is not None}


def test_an_entry_keeps_the_effects_of_its_kind_as_made(world):
    p = world.project(status="guaranteeing")
    e = world.book(p, "loan_drawn", "1000.00")
    assert json.loads(world.entry(e).effects) == {"loan_outstanding": 1, "guarantee_outstanding": 1}
    r = world.ledger().reverse(e, world.actor("fin"), "录错")
    assert (world.entry(r).effects, world.entry(r).direction) == (world.entry(e).effects, -1)


def test_changing_a_kinds_effects_changes_only_new_entries(world):
    """deposit_received once held the deposit; edited to count as guarantee fee,
    the old entry still holds it (and still caps refunds and reversals)."""
    p = world.project(status="guaranteeing")
    old = world.book(p, "deposit_received", "100.00")
    before = world.ledger().balances(p)
    edited = ledger_meta(world.meta, kinds=_kinds_with(deposit_received=kind("deposit_received", {"guarantee_fee": 1})))
    assert world.ledger(meta=edited).balances(p) == before                      # history is not rewritten
    new = world.book(p, "deposit_received", "30.00", meta=edited)
    assert json.loads(world.entry(new).effects) == {"guarantee_fee": 1}
    after = world.ledger(meta=edited).balances(p)
    assert (after["deposit_held"], after["guarantee_fee"]) == (D("100.00"), D("30.00"))
    assert world.ledger().balances(p) == after                                   # whatever the metadata says now
    # the refund cap reads the pinned deposit: 100 held, not 0 nor 130
    refused("invalid", world.ledger(meta=edited).make, p, "deposit_refunded", D("100.01"), world.actor("fin"))
    world.book(p, "deposit_refunded", "60.00", meta=edited)
    # reversing the old receipt would take the (pinned) deposit held below zero
    before_rows = world.rows()
    err = refused("invalid", world.ledger(meta=edited).reverse, old, world.actor("fin"), "x")
    assert "below zero" in err.message.en
    assert world.rows() == before_rows
    # reversing the new one undoes exactly what it did
    r = world.book(p, "deposit_received", "30.00", meta=edited, maker="fin", checker="fin2",
                   reverses_id=new, note="冲销")
    assert json.loads(world.entry(r).effects) == {"guarantee_fee": 1}
    final = world.ledger(meta=edited).balances(p)
    assert (final["deposit_held"], final["guarantee_fee"]) == (D("40.00"), ZERO)


def test_a_removed_kind_keeps_counting(world):
    corp = world.customer()
    p = world.project(status="guaranteeing", customer=corp)
    world.book(p, "loan_drawn", "1000.00")
    world.book(p, "recovery", "300.00")
    pending = world.book(p, "recovery", "7.00", confirmer=None)
    before = world.ledger().balances(p)
    gone = ledger_meta(world.meta, kinds=_kinds_with(recovery=None))
    ledger = world.ledger(meta=gone)
    assert ledger.balances(p) == before and before["recovered"] == D("300.00")
    assert ledger.customer_balances("corporate_customer", corp)["recovered"] == D("300.00")
    assert [r.kind for r in ledger.entries(p)] == ["loan_drawn", "recovery", "recovery"]
    # it can no longer be booked, confirmed or reversed, but a pending one can be rejected
    refused("invalid", ledger.make, p, "recovery", D("1.00"), world.actor("fin"))
    refused("invalid", ledger.confirm, pending, world.actor("boss"))
    ledger.reject(pending, world.actor("boss"), "该类型已停用")
    assert world.ledger(meta=gone).balances(p) == before


def test_an_entry_without_pinned_effects_counts_with_its_kinds_or_is_refused(world):
    """A row from before effects were pinned (written by an older process) counts
    with its kind's current effects; if the kind is gone, balances are refused,
    naming it, rather than computed without it."""
    p = world.project(status="guaranteeing")
    e = world.book(p, "recovery", "300.00")
    world.book(p, "recovery", "5.00")
    with world.engine.begin() as conn:
        conn.execute(world.table.update().values(effects=None))
    assert world.balance(p, "recovered") == D("305.00")
    edited = ledger_meta(world.meta, kinds=_kinds_with(recovery=kind("recovery", {"written_off": 1})))
    assert world.balance(p, "written_off", meta=edited) == D("305.00")
    err = refused("state", world.ledger(meta=ledger_meta(world.meta, kinds=_kinds_with(recovery=None))).balances, p)
    assert "recovery" in err.message.zh and "2 " in err.message.en
    # a reversal of an unpinned entry pins the effects it counted with
    r = world.book(p, "recovery", "300.00", maker="fin", checker="fin2", reverses_id=e, note="冲销")
    assert json.loads(world.entry(r).effects) == {"recovered": 1}
    assert world.balance(p, "recovered") == D("5.00")


def test_the_dashboard_figures_use_the_pinned_effects(world):
    from danbao.engines.regulatory import dashboard
    p = world.project(status="guaranteeing")
    world.book(p, "loan_drawn", "1000.00")
    world.book(p, "compensation", "400.00")
    world.book(p, "recovery", "100.00")
    world.s.commit()
    today = world.clock().date()
    board = dashboard(world.s, world.models, world.lmeta, today=today)
    figures = (board.compensation_total, board.recovered_total, board.compensation_in_year)
    assert figures == (D("400.00"), D("100.00"), D("400.00"))
    for kinds in (_kinds_with(compensation=None, recovery=None),
                  _kinds_with(compensation=kind("compensation", {"recovered": 1}))):
        other = dashboard(world.s, world.models, ledger_meta(world.meta, kinds=kinds), today=today)
        assert (other.compensation_total, other.recovered_total, other.compensation_in_year) == figures


def test_the_ledger_screen_and_api_list_entries_of_a_removed_kind(database_url, tmp_path):
    """A kind with entries removed from the metadata: the project page and the
    API still show them (under their code) and count them in the balances."""
    from danbao.app import create_app
    from danbao.engines.records import RecordService
    from webfixtures import add_user, jwt, login, make_app
    from wfapifixtures import dispose
    app = make_app(database_url, tmp_path / "one")
    try:
        ids = {name: add_user(app, name, role) for name, role in
               (("pm", "project_manager"), ("risk", "risk_officer"), ("fin", "finance"), ("audit", "auditor"))}
        rt = app.extensions["danbao"]
        with app.app_context():
            svc = RecordService(rt.models, rt.session, Actor(ids["pm"], "pm"), seeding=True)
            corp = svc.create("corporate_customer", {"name": "停用类型企业", "uscc": make_uscc(77001)})
            pid = svc.create(ENTITY, {"project_no": "RM-0001", "name": "停用类型项目", "customer_kind": "corporate",
                                      "corporate_customer": corp.id, "amount": "5000000", "term_months": 12,
                                      "status": "guaranteeing", "a_manager": ids["pm"]}).id
            rt.session.commit()
            ledger = LedgerService(rt.session, rt.models, rt.meta)
            e = ledger.make(pid, "deposit_received", D("800.00"), Actor(ids["pm"], "pm"))
            ledger.check(e, Actor(ids["risk"], "risk"))
            ledger.confirm(e, Actor(ids["fin"], "fin"))
            waiting = ledger.make(pid, "deposit_received", D("100.00"), Actor(ids["pm"], "pm"))   # not checked yet
            rt.session.commit()
            meta = rt.meta
            settings = rt.settings
    finally:
        dispose(app)
    kinds = {code: k for code, k in meta.ledger_kinds.items() if code != "deposit_received"}
    settings.instance_dir = tmp_path / "two"
    app = create_app(settings, meta=dataclasses.replace(meta, ledger_kinds=kinds))
    try:
        client = app.test_client()
        resp = client.get(f"/api/v1/{ENTITY}/{pid}/ledger", headers=jwt(client, "audit"))
        assert resp.status_code == 200, resp.data
        data = resp.get_json()
        [entry] = [x for x in data["entries"] if x["id"] == e]
        assert (entry["id"], entry["kind"], entry["kind_label"], entry["amount"]) == \
            (e, "deposit_received", "deposit_received", "800.00")
        assert {b["code"]: b["amount"] for b in data["balances"]}["deposit_held"] == "800.00"
        one = client.post(f"/api/v1/ledger/{e}/reverse", json={"reason": "x"}, headers=jwt(client, "pm"))
        assert one.status_code == 422 and "deposit_received" in one.get_json()["message"]
        page = login(app.test_client(), "pm").get(f"/e/{ENTITY}/{pid}")
        assert page.status_code == 200
        row = re.search(rf'<tr data-entry="{e}".*?</tr>', page.text, re.S).group(0)
        assert "deposit_received" in row and 'data-action="reverse"' not in row
        assert 'data-balance="deposit_held">800.00<' in page.text
        pending = login(app.test_client(), "risk").get("/ledger/pending").text     # waiting for a check
        row = re.search(rf'<tr data-entry="{waiting}".*?</tr>', pending, re.S).group(0)
        assert 'data-action="reject"' in row and 'data-action="check"' not in row
    finally:
        dispose(app)


# -- several people at once (PostgreSQL) ------------------------------------------------------------------
def _at_once(world: LedgerWorld, jobs) -> list:
    """Run ``jobs`` (callables taking a LedgerService) in threads, each with its
    own session, released together; their results or exceptions, in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        with Session(world.engine) as session:
            ledger = world.ledger(session=session)
            session.execute(sa.text("SELECT 1"))
            barrier.wait()
            try:
                results[i] = job(ledger)
            except Exception as exc:                           # noqa: BLE001 - judged by the test
                results[i] = exc
    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL: concurrent sessions on one database")
def test_competing_refunds_confirmed_at_once_never_over_refund(database_url):
    """100.00 held; eight checked refunds confirmed by eight threads at once:
    exactly as many go through as the deposit covers, the rest are refused."""
    world = LedgerWorld(database_url, pool_size=12)
    try:
        for amount, expect in (("30.00", 3), ("100.00", 1), ("12.50", 8), ("99.99", 1)):
            p = world.project(status="guaranteeing")
            world.book(p, "deposit_received", "100.00")
            refunds = [world.book(p, "deposit_refunded", amount, confirmer=None) for _ in range(8)]
            confirmers = ["boss", "boss2", "cfo"] * 3
            results = _at_once(world, [lambda ledger, e=e, n=n: ledger.confirm(e, world.actor(n))
                                       for e, n in zip(refunds, confirmers)])
            done = [r for r in results if not isinstance(r, Exception)]
            assert all(isinstance(r, LedgerRefused) and r.kind == "invalid"
                       for r in results if isinstance(r, Exception)), results
            assert len(done) == expect, results
            assert world.balance(p) == D("100.00") - expect * D(amount) >= 0
            assert [world.entry(e).state for e in refunds].count("confirmed") == expect
            assert [world.entry(e).state for e in refunds].count("checked") == 8 - expect
    finally:
        world.close()


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL: concurrent sessions on one database")
def test_eight_people_reversing_one_entry_make_one_reversal(database_url):
    world = LedgerWorld(database_url, pool_size=12)
    try:
        p = world.project(status="guaranteeing")
        e = world.book(p, "guarantee_fee_received", "500.00")
        makers = ["pm", "fin", "fin2", "cfo"] * 2
        results = _at_once(world, [lambda ledger, n=n: ledger.reverse(e, world.actor(n), "冲销")
                                   for n in makers])
        done = [r for r in results if not isinstance(r, Exception)]
        assert len(done) == 1, results
        assert all(isinstance(r, LedgerRefused) and r.kind in ("state", "conflict")
                   for r in results if isinstance(r, Exception)), results
        assert sum(1 for r in world.ledger().entries(p) if r.reverses_id == e) == 1
    finally:
        world.close()


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL: concurrent sessions on one database")
def test_eight_people_checking_one_entry_check_it_once(database_url):
    world = LedgerWorld(database_url, pool_size=12)
    try:
        p = world.project(status="guaranteeing")
        e = world.book(p, "deposit_received", "5.00", checker=None, maker="pm")
        checkers = ["fin", "fin2", "cfo"] * 2 + ["fin", "fin2"]
        results = _at_once(world, [lambda ledger, n=n: ledger.check(e, world.actor(n)) for n in checkers])
        assert sum(1 for r in results if not isinstance(r, Exception)) == 1, results
        assert all(isinstance(r, LedgerRefused) and r.kind in ("state", "conflict")
                   for r in results if isinstance(r, Exception)), results
        assert world.entry(e).lock_version == 1
    finally:
        world.close()
