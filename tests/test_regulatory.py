"""Regulatory figures from live data: leverage, concentration (single and related
group), exposure fields for the warning rules, compared with plain Python sums."""
import datetime as dt
import random
from decimal import Decimal

import sqlalchemy as sa

from danbao.engines.regulatory import (BREACH, NEAR, OK, Limits, dashboard, ratio, refresh_exposures,
                                       related_groups, status_for)
from hypothesis import given, strategies as st
from wfhelpers import ENTITY




def in_force(world, pid, status="guaranteeing"):
    world.records().assign(ENTITY, pid, {"status": status})


def relate(world, owner, other, relation="same_controller"):
    c = world.records().get("corporate_customer", other)
    o = world.records().get("corporate_customer", owner)
    rows = [{"id": r.id, "name": r.name, "relation": r.relation} for r in o.related_parties]
    world.records().update("corporate_customer", owner,
                           {"related_parties": rows + [{"name": c.name, "relation": relation, "uscc": c.uscc}]},
                           expected_version=o.version)


@given(st.decimals(min_value=0, max_value=50, places=4), st.decimals(min_value="0.01", max_value=20, places=2),
       st.decimals(min_value="0.5", max_value="0.99", places=2))
def test_status_is_breach_above_near_from_the_share_else_ok(value, limit, near):
    s = status_for(value, limit, near)
    assert s == (BREACH if value > limit else NEAR if value >= limit * near else OK)


def test_dashboard_matches_a_plain_sum_of_the_book(world):
    rnd = random.Random(7)
    customers = [world.customer() for _ in range(6)]
    book = []
    for i in range(30):
        cust = rnd.choice(customers)
        amount = Decimal(rnd.randrange(100000, 20000000, 10000))
        pid = world.project(amount=str(amount), customer=cust)
        status = rnd.choice(["applying", "guaranteeing", "overdue", "released", "compensated"])
        if status != "applying":
            in_force(world, pid, status)
        book.append((cust, amount, status))
    world.s.commit()
    board = dashboard(world.s, world.models, world.meta, today=dt.date(2026, 12, 1))
    lim = Limits.of(world.meta)
    live = [(c, a) for c, a, s in book if s in world.meta.setting("project_in_force_statuses")]
    assert board.outstanding == sum((a for _, a in live), Decimal(0))
    assert board.in_force_count == len(live)
    assert board.leverage == ratio(board.outstanding, lim.net_assets)
    per_customer = {}
    for c, a in live:
        per_customer[c] = per_customer.get(c, Decimal(0)) + a
    top = sorted(per_customer.values(), reverse=True)
    assert [e.amount for e in board.top_customers] == top[:10]
    assert all(e.share == ratio(e.amount, lim.net_assets) for e in board.top_customers)
    assert sum(n for _, n, _ in board.by_status) == len(book)


def test_related_parties_form_groups_and_their_exposure_is_summed(world):
    a, b, c, d = (world.customer() for _ in range(4))
    relate(world, a, b)                 # a ~ b by credit code
    relate(world, c, b, "mutual_guarantee")   # c ~ b: so a, b, c are one group
    world.s.commit()
    groups = related_groups(world.s, world.models, world.meta)
    assert groups[a] == groups[b] == groups[c] == frozenset({a, b, c})
    assert d not in groups
    lim = Limits.of(world.meta)
    amounts = {a: Decimal("40000000"), b: Decimal("30000000"), c: Decimal("10000000"), d: Decimal("45000000")}
    for cust, amount in amounts.items():
        in_force(world, world.project(amount=str(amount), customer=cust))
    world.s.commit()
    changed = refresh_exposures(world.s, world.models, world.meta)
    world.s.commit()
    assert changed >= 4
    t = world.models.table("corporate_customer")
    rows = {r.id: r for r in world.s.execute(sa.select(t)).all()}
    group_total = amounts[a] + amounts[b] + amounts[c]
    for cust in (a, b, c):
        r = rows[cust]
        assert Decimal(str(r.exposure_amount)) == amounts[cust]
        assert Decimal(str(r.group_exposure_amount)) == group_total
        assert r.group_status == status_for(ratio(group_total, lim.net_assets), lim.group, lim.near_share)
    assert rows[d].exposure_status == status_for(ratio(amounts[d], lim.net_assets), lim.single, lim.near_share)
    assert rows[d].exposure_status == NEAR            # 45m of 500m = 9% ≥ 90% of 10%
    assert refresh_exposures(world.s, world.models, world.meta) == 0      # nothing changed: nothing written
    board = dashboard(world.s, world.models, world.meta)
    assert board.top_groups[0].amount == group_total
    assert set(board.top_groups[0].members) == {a, b, c}
