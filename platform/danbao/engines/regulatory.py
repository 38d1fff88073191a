"""Company-level risk (监管指标) from live data, against limits kept in settings.

《融资担保公司监督管理条例》(State Council Order 683): outstanding guarantee
liability ≤ ``leverage_limit`` × net assets (Art. 15); one customer ≤
``single_customer_limit`` and with its related parties ≤
``related_group_limit`` of net assets (Art. 16). Also 代偿率 (compensation
paid in the year ÷ guarantee liability ended in the year) and 代偿损失率
((compensation − recovered) ÷ compensation), from confirmed ledger entries.

Outstanding liability is the amount of projects whose status is one of
``project_in_force_statuses``. Related groups are the connected customers
through the related-party records (a row naming a customer in our book, or
a credit code one of our customers has). Everything is a handful of
aggregate queries, so the dashboard stays fast on a large book; the
customers' exposure fields (read by warning rules) are written by
``refresh_exposures``. No Flask here.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from danbao.engines.ledger import entry_effects
from danbao.engines.projects import customer_fields, customer_of, in_force_statuses
from danbao.engines.query import record_titles
from danbao.meta.model import Label, Meta
from danbao.model.system import LEDGER_TABLE

RATE_STEP = Decimal("0.000001")
OK, NEAR, BREACH = "ok", "near", "breach"


@dataclass(frozen=True)
class Limits:
    net_assets: Decimal
    leverage: Decimal
    single: Decimal
    group: Decimal
    near_share: Decimal

    @classmethod
    def of(cls, meta: Meta) -> "Limits":
        def dec(name, default):
            return Decimal(str(meta.setting(name, default)))
        return cls(dec("net_assets", 0), dec("leverage_limit", 10), dec("single_customer_limit", "0.10"),
                   dec("related_group_limit", "0.15"), dec("near_breach_share", "0.9"))


def status_for(value: Decimal | None, limit: Decimal, near_share: Decimal) -> str:
    """``breach`` above the limit, ``near`` from ``near_share`` of it, else ``ok``."""
    if value is None or not limit:
        return OK
    if value > limit:
        return BREACH
    return NEAR if value >= limit * near_share else OK


def ratio(part, whole) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(RATE_STEP, ROUND_HALF_UP)


@dataclass(frozen=True)
class Exposure:
    entity: str
    record_id: int
    name: str
    amount: Decimal
    share: Decimal | None
    status: str


@dataclass(frozen=True)
class GroupExposure:
    members: tuple[int, ...]            # corporate customer ids
    names: tuple[str, ...]
    amount: Decimal
    share: Decimal | None
    status: str


@dataclass
class Dashboard:
    as_of: dt.date
    limits: Limits
    outstanding: Decimal
    in_force_count: int
    leverage: Decimal | None
    leverage_status: str
    top_customers: list[Exposure] = field(default_factory=list)
    top_groups: list[GroupExposure] = field(default_factory=list)
    customers_near: int = 0
    customers_breach: int = 0
    groups_near: int = 0
    groups_breach: int = 0
    year: int = 0
    compensation_in_year: Decimal = Decimal("0.00")
    ended_in_year: Decimal = Decimal("0.00")
    compensation_rate: Decimal | None = None
    compensation_total: Decimal = Decimal("0.00")
    recovered_total: Decimal = Decimal("0.00")
    loss_rate: Decimal | None = None
    by_status: list[tuple[str, int, Decimal]] = field(default_factory=list)
    by_product: list[tuple[str, int, Decimal]] = field(default_factory=list)
    by_risk_class: list[tuple[str, int, Decimal]] = field(default_factory=list)


# -- reading the book -----------------------------------------------------------
def _project(models, meta: Meta):
    em = meta.entity(meta.setting("project_entity"))
    return em, models.table(em.name)


def customer_exposures(session, models, meta: Meta, *, exclude_project: int | None = None,
                       customers: set[tuple[str, int]] | None = None) -> dict[tuple[str, int], Decimal]:
    """Outstanding amount per (customer entity, id), over projects in force (one grouped pass);
    with ``customers``, only theirs (read through the customer reference indexes)."""
    em, t = _project(models, meta)
    fields = customer_fields(meta)
    if not fields:
        return {}
    cols = [_whole_table(session, t.c[f.column_name]) for f in fields]
    status = _whole_table(session, t.c.status)
    query = sa.select(*cols, sa.func.sum(t.c.amount)).where(status.in_(in_force_statuses(meta))).group_by(*cols)
    if exclude_project is not None:
        query = query.where(t.c.id != exclude_project)
    if customers is not None:
        query = query.where(sa.or_(sa.false(), *(
            t.c[f.column_name].in_(sorted(i for e, i in customers if e == f.target)) for f in fields)))
    result: dict[tuple[str, int], Decimal] = {}
    for row in session.execute(query):
        amount = Decimal(row[-1] or 0)
        # a project names one customer: the first of its customer fields that is set
        for f, cid in zip(fields, row[:-1]):
            if cid is not None:
                result[(f.target, cid)] = result.get((f.target, cid), Decimal(0)) + amount
                break
    return result


def related_groups(session, models, meta: Meta) -> dict[int, frozenset[int]]:
    """Corporate customer id -> its related group (only customers in a group of two or more)."""
    rp_name = meta.setting("related_party_entity")
    if not rp_name or rp_name not in meta.entities:
        return {}
    rp_em = meta.entity(rp_name)
    customers = models.table(rp_em.parent)
    rp = models.table(rp_name)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    other = rp.c.related_customer_id if "related_customer_id" in rp.c else sa.null()
    query = sa.select(rp.c.parent_id, other)
    if "uscc" in rp.c and "uscc" in customers.c:      # a credit code one of our customers has
        query = (sa.select(rp.c.parent_id, sa.func.coalesce(other, customers.c.id))
                 .select_from(rp.outerjoin(customers, customers.c.uscc == rp.c.uscc)))
    for owner, related in session.execute(query):
        if owner is not None and related is not None and related != owner:
            union(owner, related)
    groups: dict[int, set[int]] = defaultdict(set)
    for member in list(parent):
        groups[find(member)].add(member)
    return {m: frozenset(g) for g in groups.values() if len(g) > 1 for m in g}


def _names(session, models, meta: Meta, entity: str, ids) -> dict[int, str]:
    return {rid: title for (_, rid), title in record_titles(session, models, meta, ((entity, i) for i in ids)).items()}


def _group_totals(exposures, groups, corporate: str):
    """Each distinct group's members and summed exposure."""
    seen, result = set(), []
    for members in groups.values():
        if members in seen:
            continue
        seen.add(members)
        amount = sum((exposures.get((corporate, m), Decimal(0)) for m in members), Decimal(0))
        result.append((members, amount))
    return result


def _corporate_entity(meta: Meta) -> str | None:
    rp_name = meta.setting("related_party_entity")
    return meta.entity(rp_name).parent if rp_name and rp_name in meta.entities else None


# -- the dashboard ----------------------------------------------------------------
def dashboard(session, models, meta: Meta, *, today: dt.date | None = None, top: int = 10) -> Dashboard:
    today = today or dt.date.today()
    lim = Limits.of(meta)
    em, t = _project(models, meta)
    in_force = set(in_force_statuses(meta))
    cells = _cells(session, em, t)                       # one grouped pass: status × product × class
    count = sum(n for (status, _, _), (n, _) in cells.items() if status in in_force)
    outstanding = sum((a for (status, _, _), (_, a) in cells.items() if status in in_force), Decimal(0))
    outstanding = Decimal(outstanding).quantize(Decimal("0.01"))
    leverage = ratio(outstanding, lim.net_assets)
    board = Dashboard(as_of=today, limits=lim, outstanding=outstanding, in_force_count=count, leverage=leverage,
                      leverage_status=status_for(leverage, lim.leverage, lim.near_share), year=today.year)
    exposures = customer_exposures(session, models, meta)
    shares = {key: ratio(amount, lim.net_assets) for key, amount in exposures.items()}
    statuses = {key: status_for(s, lim.single, lim.near_share) for key, s in shares.items()}
    board.customers_near = sum(1 for s in statuses.values() if s == NEAR)
    board.customers_breach = sum(1 for s in statuses.values() if s == BREACH)
    ranked = sorted(exposures.items(), key=lambda kv: kv[1], reverse=True)[:top]
    names: dict[str, dict[int, str]] = {}
    for entity in {k[0] for k, _ in ranked}:
        names[entity] = _names(session, models, meta, entity, [k[1] for k, _ in ranked if k[0] == entity])
    board.top_customers = [Exposure(e, i, names[e].get(i, f"#{i}"), amount, shares[(e, i)], statuses[(e, i)])
                           for (e, i), amount in ranked]
    corporate = _corporate_entity(meta)
    if corporate:
        groups = _group_totals(exposures, related_groups(session, models, meta), corporate)
        group_rows = []
        for members, amount in groups:
            share = ratio(amount, lim.net_assets)
            group_rows.append((members, amount, share, status_for(share, lim.group, lim.near_share)))
        board.groups_near = sum(1 for g in group_rows if g[3] == NEAR)
        board.groups_breach = sum(1 for g in group_rows if g[3] == BREACH)
        group_rows.sort(key=lambda g: g[1], reverse=True)
        shown = group_rows[:top]
        member_names = _names(session, models, meta, corporate, {m for g in shown for m in g[0]})
        board.top_groups = [GroupExposure(tuple(sorted(m)), tuple(member_names.get(i, f"#{i}") for i in sorted(m)),
                                          amount, share, status) for m, amount, share, status in shown]
    _ledger_ratios(session, models, meta, board, today)
    board.by_status = _breakdown(cells, 0)
    if em.has_field("product"):
        board.by_product = _breakdown(cells, 1, in_force)
    if em.has_field("risk_class"):
        board.by_risk_class = _breakdown(cells, 2, in_force)
    return board


def _whole_table(session, column):
    """``column`` as SQLite should read it for an aggregate over a large share of
    the table: through a plain scan. SQLite's planner would otherwise walk an
    index (status, a customer reference, the product) and fetch each row by id,
    up to 4× slower here (bench/portfolio.py); ``col + 0`` or ``col || ''`` is the
    same value to it, but no index. PostgreSQL costs the choice itself."""
    if session.get_bind().dialect.name != "sqlite":
        return column
    return column + 0 if isinstance(column.type, sa.Integer) else column.op("||")("")


def _cells(session, em, t) -> dict[tuple, tuple[int, Decimal]]:
    """(status, product, risk class) -> (projects, amount): every figure of the book in one pass."""
    cols = [_whole_table(session, t.c.status)] + [_whole_table(session, t.c[n]) if em.has_field(n) else sa.null()
                                                  for n in ("product", "risk_class")]
    query = sa.select(*cols, sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.amount), 0)).group_by(*cols)
    return {(s, p, r): (n, Decimal(a)) for s, p, r, n, a in session.execute(query)}


def _breakdown(cells, position: int, statuses=None) -> list[tuple[str, int, Decimal]]:
    """Projects and amount by one key of the cells (only ``statuses`` when given), sorted by key."""
    out: dict = {}
    for key, (n, amount) in cells.items():
        if statuses is not None and key[0] not in statuses:
            continue
        count, total = out.get(key[position], (0, Decimal(0)))
        out[key[position]] = (count + n, total + amount)
    return [(k, n, a) for k, (n, a) in sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))]


def _ledger_ratios(session, models, meta: Meta, board: Dashboard, today: dt.date) -> None:
    """代偿率 for the year and 代偿损失率 over all time, from confirmed entries (one grouped query)."""
    table = models.system.get(LEDGER_TABLE)
    if table is None:
        return
    in_year = sa.and_(table.c.booked_on >= dt.date(today.year, 1, 1), table.c.booked_on <= today)
    flag = sa.case((in_year, 1), else_=0)
    query = (sa.select(table.c.kind, table.c.effects, flag, sa.func.sum(table.c.amount * table.c.direction),
                       sa.func.count())
             .where(table.c.state == "confirmed").group_by(table.c.kind, table.c.effects, flag))
    compensation = ended = compensation_total = recovered = Decimal(0)
    for kind, pinned, this_year, amount, count in session.execute(query):
        if amount is None:
            continue
        effects = entry_effects(meta, kind, pinned, count)     # as pinned when made (engines/ledger.py)
        amount = Decimal(amount)
        compensation_total += amount * effects.get("compensation_paid", 0)
        recovered += amount * effects.get("recovered", 0)
        if this_year:
            compensation += amount * effects.get("compensation_paid", 0)
            if effects.get("guarantee_outstanding", 0) < 0:   # release (incl. by compensation) ends a liability
                ended += amount
    cent = Decimal("0.01")
    board.compensation_in_year = compensation.quantize(cent)
    board.ended_in_year = ended.quantize(cent)
    board.compensation_rate = ratio(compensation, ended)
    board.compensation_total = compensation_total.quantize(cent)
    board.recovered_total = recovered.quantize(cent)
    if board.compensation_total:
        board.loss_rate = ratio(board.compensation_total - board.recovered_total, board.compensation_total)


# -- exposures on the customers, for warning rules ---------------------------------
EXPOSURE_FIELDS = ("exposure_amount", "exposure_share", "exposure_status")
GROUP_FIELDS = ("group_exposure_amount", "group_share", "group_status")


def refresh_exposures(session, models, meta: Meta, *, only: tuple[str, int] | None = None) -> int:
    """Write each customer's exposure (and its related group's) where it changed.

    ``only`` limits the writing to one customer and its group (after a
    project comes into force); the sums are always over the whole book.
    Returns the number of customer rows changed. The caller commits.
    """
    lim = Limits.of(meta)
    exposures = customer_exposures(session, models, meta)
    corporate = _corporate_entity(meta)
    groups = related_groups(session, models, meta) if corporate else {}
    group_amount = {members: amount for members, amount in _group_totals(exposures, groups, corporate)} \
        if corporate else {}
    targets = {f.target for f in customer_fields(meta)}
    changed = 0
    for entity in targets:
        em = meta.entity(entity)
        if not all(em.has_field(n) for n in EXPOSURE_FIELDS):
            continue
        t = models.table(entity)
        with_group = entity == corporate and all(em.has_field(n) for n in GROUP_FIELDS)
        cols = [t.c.id, *(t.c[n] for n in EXPOSURE_FIELDS)] + ([t.c[n] for n in GROUP_FIELDS] if with_group else [])
        query = sa.select(*cols)
        if only is not None:
            if only[0] != entity:
                continue
            wanted = set(groups.get(only[1], ())) | {only[1]}
            query = query.where(t.c.id.in_(wanted))
        for row in session.execute(query).all():
            amount = exposures.get((entity, row.id), Decimal(0)).quantize(Decimal("0.01"))
            share = ratio(amount, lim.net_assets)
            new = {"exposure_amount": amount, "exposure_share": share,
                   "exposure_status": status_for(share, lim.single, lim.near_share)}
            if with_group:
                members = groups.get(row.id)
                g_amount = group_amount.get(members, amount) if members else amount
                g_amount = g_amount.quantize(Decimal("0.01"))
                g_share = ratio(g_amount, lim.net_assets)
                new.update(group_exposure_amount=g_amount, group_share=g_share,
                           group_status=status_for(g_share, lim.group, lim.near_share))
            old = {n: getattr(row, n) for n in new}
            if any(_differs(old[n], v) for n, v in new.items()):
                session.execute(t.update().where(t.c.id == row.id).values(**new))
                changed += 1
    return changed


def _differs(old, new) -> bool:
    if isinstance(new, Decimal) and old is not None:
        return Decimal(str(old)) != new
    return old != new


# -- the application-time flag -----------------------------------------------------
def application_flag(session, models, meta: Meta, project) -> str | None:
    """What limit this project would breach if it came into force now, in words; None if none."""
    lim = Limits.of(meta)
    if not lim.net_assets:
        return None
    amount = Decimal(project.amount)
    em, t = _project(models, meta)
    query = sa.select(sa.func.coalesce(sa.func.sum(t.c.amount), 0)).where(t.c.status.in_(in_force_statuses(meta)))
    if project.id is not None:
        query = query.where(t.c.id != project.id)
    outstanding = Decimal(session.execute(query).scalar())
    problems = []
    leverage = ratio(outstanding + amount, lim.net_assets)
    if leverage is not None and leverage > lim.leverage:
        problems.append(Label(f"放大倍数将达 {leverage:.2f} 倍（上限 {lim.leverage} 倍）",
                              f"leverage would reach {leverage:.2f}× (limit {lim.leverage}×)"))
    customer = customer_of(meta, project)
    if customer is not None:
        corporate = _corporate_entity(meta)
        members = related_groups(session, models, meta).get(customer[1]) if customer[0] == corporate else None
        wanted = {customer} | {(corporate, m) for m in members or ()}
        exposures = customer_exposures(session, models, meta, exclude_project=project.id, customers=wanted)
        single = ratio(exposures.get(customer, Decimal(0)) + amount, lim.net_assets)
        if single is not None and single > lim.single:
            problems.append(Label(f"单一客户集中度将达 {single:.2%}（上限 {lim.single:.0%}）",
                                  f"single-customer concentration would reach {single:.2%} (limit {lim.single:.0%})"))
        if members:                                   # a company in a related group
            group = sum((exposures.get((corporate, m), Decimal(0)) for m in members), Decimal(0)) + amount
            share = ratio(group, lim.net_assets)
            if share is not None and share > lim.group:
                problems.append(Label(f"关联集团集中度将达 {share:.2%}（上限 {lim.group:.0%}）",
                                      f"related-group concentration would reach {share:.2%} (limit {lim.group:.0%})"))
    if not problems:
        return None
    return ("；".join(p.zh for p in problems) + " / " + "; ".join(p.en for p in problems))[:500]


# -- the company's position as a record, for warning rules and history ------------
POSITION_CODE = "company"


def position_values(board: Dashboard) -> dict:
    """The dashboard's headline figures as the position record's field values."""
    return {"as_of": board.as_of, "net_assets": board.limits.net_assets, "outstanding": board.outstanding,
            "in_force_count": board.in_force_count,
            "leverage": board.leverage.quantize(Decimal("0.0001"), ROUND_HALF_UP) if board.leverage is not None else None,
            "leverage_limit": board.limits.leverage, "leverage_status": board.leverage_status,
            "max_single_share": max((e.share for e in board.top_customers if e.share is not None), default=None),
            "customers_over": board.customers_breach,
            "max_group_share": max((g.share for g in board.top_groups if g.share is not None), default=None),
            "groups_over": board.groups_breach, "compensation_rate": board.compensation_rate,
            "loss_rate": board.loss_rate}


def write_position(service, board: Dashboard) -> int | None:
    """Rewrite the one position record (setting ``regulatory_position_entity``)
    through the record service, so each day's change is audited and warning
    rules on it stay open while a limit is near or over. Not committed."""
    meta = service.meta
    entity = meta.setting("regulatory_position_entity")
    if not entity or entity not in meta.entities:
        return None
    em = meta.entity(entity)
    values = {k: v for k, v in position_values(board).items() if em.has_field(k)}
    cls = service.models.cls(entity)
    found = service.session.query(cls.id).filter(cls.code == POSITION_CODE).first()
    if found is None:
        obj = service.create(entity, {"code": POSITION_CODE})
        found = (obj.id,)
    service.assign(entity, found[0], values)
    return found[0]
