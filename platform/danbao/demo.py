"""Demo data: staff, partner banks and a believable portfolio (demo_portfolio.py),
written through the record and ledger services, then scored and run through the
daily run; applications are then submitted into their approval workflows.

Deterministic (seeded, dated relative to today) so screenshots and tests see
the same data; every record passes the same validation a user's would (valid
credit codes and ID check digits, Chinese names and addresses).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from danbao.checks import gb2260, resident, uscc
from danbao.engines.records import Actor, RecordService
from danbao.engines.users import active_users

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强海燕晓东红梅文博子轩浩然欣怡雨桐思远佳怡俊杰宇航"


def make_uscc(rng: random.Random, region: str, prefix: str = "91") -> str:
    """A valid 统一社会信用代码: ``91`` a company, ``92`` an individual business (个体工商户),
    built as GB 32100 builds one (the organisation code has its own check character)."""
    return uscc.build(prefix, region, "".join(rng.choice("0123456789") for _ in range(8)))


def make_resident_id(rng: random.Random, region: str, birth: dt.date, male: bool) -> str:
    """A valid resident ID of someone registered in ``region``: a county of it, since
    GB 11643 numbers carry county-level codes (a city's own code, 320500, never)."""
    county = rng.choice(gb2260.counties_in(region))
    seq = rng.randint(0, 499) * 2 + (1 if male else 0)
    return resident.build(county, birth, seq)


def person_name(rng: random.Random) -> str:
    given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else "")
    return rng.choice(SURNAMES) + given


def ensure_admin(app, password: str) -> bool:
    """Create the ``admin`` user with the Admin role if absent; True when created."""
    sm = app.appbuilder.sm
    if sm.find_user(username="admin") is not None:
        return False
    role = sm.find_role("Admin") or sm.add_role("Admin")
    sm.add_user("admin", "系统", "管理员", "admin@danbao.local", role, password)
    return True


#: Demo staff: (login, family name, given name, role). They share the admin's password.
#: Two risk officers and two managers, so every approval level has someone who
#: did not sign the level before it.
STAFF = [("zhangwei", "张", "伟", "project_manager"), ("liuyang", "刘", "洋", "project_manager"),
         ("lina", "李", "娜", "risk_officer"), ("wangqiang", "王", "强", "manager"),
         ("zhaomin", "赵", "敏", "finance"), ("chenjing", "陈", "静", "committee_member"),
         ("zhoujie", "周", "杰", "committee_member"), ("sunli", "孙", "丽", "committee_member"),
         ("wujun", "吴", "军", "committee_member"), ("zhengyu", "郑", "宇", "auditor"),
         ("zhaolei", "赵", "磊", "department_head"),
         # separation of duties: 复审 is not the 初审 risk officer, 总经理审批 not the 复审 manager
         ("huangmin", "黄", "敏", "risk_officer"), ("yangfan", "杨", "帆", "manager")]
#: Demo departments (部门): name, code, head, members. Data permissions follow them:
#: 赵磊 (业务一部部长) sees 张伟's projects, not 刘洋's.
DEPARTMENTS = [("业务一部", "BD1", "zhaolei", [("zhangwei", "客户经理")]),
               ("业务二部", "BD2", None, [("liuyang", "客户经理")])]


def ensure_staff(app, password: str) -> list[str]:
    """Create the demo staff (one or more per metadata role) when absent; their logins."""
    sm = app.appbuilder.sm
    made = []
    for login, family, given, role_name in STAFF:
        if sm.find_user(username=login) is not None:
            continue
        role = sm.find_role(role_name)
        if role is None:
            continue
        sm.add_user(login, given, family, f"{login}@danbao.local", role, password)
        made.append(login)
    return made


def ensure_departments(app) -> int:
    """Create the demo departments when the department tree is declared and empty; how many."""
    from danbao.engines.record_rules import organisation_entity
    rt = app.extensions["danbao"]
    org_em = organisation_entity(rt.meta)
    if org_em is None or rt.session.execute(sa.select(sa.func.count()).select_from(
            rt.models.table(org_em.name))).scalar_one():
        return 0
    org = org_em.organisation
    child = rt.meta.entity(org_em.field(org.members).target)
    sm = app.appbuilder.sm
    uid = {login: (sm.find_user(username=login).id if sm.find_user(username=login) else None)
           for login in {x for _n, _c, head, members in DEPARTMENTS for x in [head] + [m for m, _ in members] if x}}
    svc = RecordService(rt.models, rt.session, Actor(user_id=None, username="demo"))
    for name, code, head, members in DEPARTMENTS:
        rows = [{org.member_user: uid[m], **({"position": title} if child.has_field("position") else {})}
                for m, title in members if uid.get(m)]
        data = {"name": name, org.head: uid.get(head), org.members: rows}
        if org_em.has_field("code"):
            data["code"] = code
        svc.create(org_em.name, data)
    return len(DEPARTMENTS)


@dataclass
class DemoLoaded:
    records: int = 0                                  # rows written: records, children, ledger entries, scores
    submit: list[int] = field(default_factory=list)   # applications for start_demo_workflows
    stages: dict[str, int] = field(default_factory=dict)


def load_demo_data(app, size: int = 50, seed: int = 20261129, today: dt.date | None = None) -> DemoLoaded:
    """Load banks, customers and ``size`` projects at every stage unless the database already
    has customers; then score the customers, run the daily run and refresh exposures."""
    from danbao.demo_portfolio import BANKS, build_portfolio
    rt = app.extensions["danbao"]
    meta = rt.meta
    if "corporate_customer" not in meta.entities:
        return DemoLoaded()
    corp_cls = rt.models.cls("corporate_customer")
    if rt.session.execute(sa.select(sa.func.count()).select_from(corp_cls)).scalar_one():
        return DemoLoaded()
    today = today or dt.date.today()
    rng = random.Random(seed)
    with loading_session(rt) as session:
        staff = demo_staff(session)
        svc = RecordService(rt.models, session, Actor(user_id=None, username="demo"))
        banks = []
        for name, branch, city in BANKS:
            bank = svc.create("bank", {"name": f"{name}{branch}", "branch": branch,
                                       "credit_line": Decimal(rng.randrange(5, 50)) * Decimal("100000000"),
                                       "margin_ratio": Decimal(rng.choice(["0.100000", "0.150000", "0.200000"])),
                                       "active": True})
            banks.append((bank.id, bank.name, city))
        result = build_portfolio(session, rt.models, meta, size, staff=staff, banks=banks, seed=seed, today=today)
        count = len(banks) + result.records + result.entries
        scored = [(f"{c.kind}_customer", c.id) for c in result.customers if c.id is not None]
        count += score_demo_customers(rt.models, meta, session, rng, scored, today)
        if "guarantee_project" in meta.entities:
            from danbao.engines.business import daily_run
            from danbao.engines.regulatory import refresh_exposures
            daily_run(session, rt.models, meta, today)
            refresh_exposures(session, rt.models, meta)
            session.commit()
    return DemoLoaded(count, result.submit, dict(result.stages))


@contextlib.contextmanager
def loading_session(rt):
    """A session for the bulk of the demo's writes, on a connection that does not wait for
    the disk at every commit (SQLite ``synchronous=OFF``, PostgreSQL ``synchronous_commit=off``):
    thousands of small transactions in seconds. Only the demo's own loading uses it."""
    from sqlalchemy.orm import Session
    from danbao.model.engine import make_engine
    engine = make_engine(rt.db.engine.url.render_as_string(hide_password=False))

    @sa.event.listens_for(engine, "connect")
    def _fast(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA synchronous=OFF")
        elif engine.dialect.name == "postgresql":
            cur.execute("SET synchronous_commit TO OFF")
        cur.close()
        if engine.dialect.name == "postgresql":
            dbapi_conn.commit()

    session = Session(engine)
    try:
        yield session
    finally:
        session.close()
        engine.dispose()
        rt.session.expire_all()


def demo_staff(session):
    """The demo's project managers (A/B角, ledger makers), risk officer (checker) and finance (confirmer)."""
    from danbao.demo_portfolio import Staff
    from danbao.engines.users import USER_TABLE
    logins = dict(session.execute(sa.select(USER_TABLE.c.id, USER_TABLE.c.username)
                                  .where(USER_TABLE.c.active.is_(True))).all())

    def holders(role: str, prefer: str | None = None) -> list[Actor]:
        ids = sorted(_holders(session, role) & set(logins), key=lambda uid: (logins[uid] != prefer, uid))
        return [Actor(uid, logins[uid]) for uid in ids]

    managers = holders("project_manager")
    risk = holders("risk_officer", "lina")
    finance = holders("finance", "zhaomin")
    return Staff(managers=managers, risk=risk[0] if risk else None, finance=finance[0] if finance else None)


def _holders(session, role: str) -> set[int]:
    from danbao.engines.users import ROLE_TABLE, USER_ROLE_TABLE
    return {r[0] for r in session.execute(sa.select(USER_ROLE_TABLE.c.user_id).select_from(
        USER_ROLE_TABLE.join(ROLE_TABLE, ROLE_TABLE.c.id == USER_ROLE_TABLE.c.role_id)).where(ROLE_TABLE.c.name == role))}


def start_demo_workflows(rt, project_ids=None) -> int:
    """Submit applications into their approval workflow, as their A角 — the ones the
    portfolio planned as in review (``project_ids``; default: every project still
    'applying') — and take the first review of every other one (the risk officer
    agrees), so My tasks, the approval panels and the second review have something to show."""
    from danbao.engines.refusals import Refusal
    from danbao.engines.workflow import Refused, WorkflowEngine
    from danbao.model.system import WF_TASK_TABLE
    if "guarantee_project" not in rt.meta.entities or not rt.meta.workflows:
        return 0
    eng = WorkflowEngine(rt.session, rt.models, rt.meta)
    table = rt.models.table("guarantee_project")
    names = dict(active_users(rt.session))
    query = sa.select(table.c.id, table.c.a_manager_id, table.c.coverage_short).where(
        table.c.status == "applying", table.c.a_manager_id.is_not(None)).order_by(table.c.id)
    if project_ids is not None:
        query = query.where(table.c.id.in_(list(project_ids) or [0]))
    tasks = rt.models.system[WF_TASK_TABLE]
    started = 0
    for row in rt.session.execute(query).all():
        starter = Actor(row.a_manager_id, names.get(row.a_manager_id, "demo"))
        for wf in eng.candidates("guarantee_project", row.id):
            if wf.group != "project_approval" or not eng.may_start(wf, row.id, starter.user_id):
                continue
            try:
                instance = eng.start("guarantee_project", row.id, wf.code, starter, comment="资料已齐，提交审批")
                started += 1
            except Refused:
                rt.session.rollback()
                break
            if started % 2 == 0 and not row.coverage_short:
                task = rt.session.execute(sa.select(tasks.c.id, tasks.c.user_id).where(
                    tasks.c.instance_id == instance, tasks.c.status == "open").order_by(tasks.c.id)).first()
                if task is not None:
                    try:
                        eng.act(task.id, "approve", Actor(task.user_id, names.get(task.user_id, "demo")),
                                comment="反担保措施充分，资料齐全，同意提交复审")
                    except Refusal:          # Refused, or a step condition: the file is not complete yet
                        rt.session.rollback()
            break
    return started


def demo_statements(rng: random.Random, capital: Decimal, debt_ratio: Decimal,
                    today: dt.date | None = None) -> list[dict]:
    """Two annual statements (万元) consistent with the company's size and debt ratio."""
    today = today or dt.date.today()
    rows = []
    assets = capital * Decimal(str(round(rng.uniform(1.5, 4), 2)))
    revenue = assets * Decimal(str(round(rng.uniform(0.8, 1.6), 2)))
    for years_back in (2, 1):
        growth = Decimal(str(round(rng.uniform(-0.1, 0.3), 3)))
        revenue = revenue * (1 + growth)
        liabilities = assets * debt_ratio / 100
        current = assets * Decimal(str(round(rng.uniform(0.5, 0.7), 2)))
        pbt = revenue * Decimal(str(round(rng.uniform(-0.02, 0.1), 3)))
        cents = Decimal("0.01")
        rows.append({key: str(value.quantize(cents)) for key, value in {
            "total_assets": assets, "current_assets": current,
            "inventory": current * Decimal(str(round(rng.uniform(0.2, 0.4), 2))),
            "accounts_receivable": current * Decimal(str(round(rng.uniform(0.2, 0.4), 2))),
            "total_liabilities": liabilities,
            "current_liabilities": liabilities * Decimal(str(round(rng.uniform(0.6, 0.9), 2))),
            "revenue": revenue, "cost_of_sales": revenue * Decimal(str(round(rng.uniform(0.7, 0.85), 2))),
            "interest_expense": liabilities * Decimal(str(round(rng.uniform(0.04, 0.06), 3))),
            "profit_before_tax": pbt, "net_profit": pbt * Decimal("0.75"),
            "operating_cash_flow": pbt * Decimal(str(round(rng.uniform(0.5, 1.5), 2))),
        }.items()} | {"period_end": dt.date(today.year - years_back, 12, 31).isoformat(),
                      "period_type": "annual", "audited": years_back == 2})
        assets = assets * (1 + growth / 2)
    return rows


def score_demo_customers(models, meta, session, rng: random.Random, records, today: dt.date) -> int:
    """Score every demo customer once with its entity's scorecards, choosing the analyst's inputs at random."""
    from danbao.engines.scoring import cards_for, score_record
    actor = Actor(user_id=None, username="demo")
    count = 0
    for entity, record_id in records:
        for card in cards_for(meta, entity):
            inputs = {i.code: rng.choices(i.options[:3], weights=(6, 3, 1)[:len(i.options[:3])])[0].value
                      for i in card.indicators if i.input}
            score_record(session, models, meta, card.code, record_id, inputs=inputs, actor=actor, as_of=today)
            count += 1
    return count
