"""Demo data: a believable set of banks and customers, written through the record service.

Deterministic (seeded) so screenshots and tests see the same data; every
record passes the same validation a user's would (valid credit codes and ID
check digits, Chinese names and addresses).
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import sqlalchemy as sa

from danbao.checks import resident_id_check_char, uscc_check_char
from danbao.engines.records import Actor, RecordService
from danbao.engines.users import active_users

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强海燕晓东红梅文博子轩浩然欣怡雨桐思远佳怡俊杰宇航"
CITIES = [("320100", "南京市", "江苏省"), ("320500", "苏州市", "江苏省"), ("330100", "杭州市", "浙江省"),
          ("330200", "宁波市", "浙江省"), ("440100", "广州市", "广东省"), ("440300", "深圳市", "广东省"),
          ("510100", "成都市", "四川省")]
DISTRICTS = ["高新区", "经济开发区", "工业园区", "滨江区", "江宁区", "天河区", "南山区", "武侯区", "鄞州区", "吴中区"]
ROADS = ["人民路", "中山路", "解放路", "建设路", "长江路", "科技大道", "创业路", "新华路", "和平路", "湖滨路"]
TRADE_WORDS = ["精密机械", "新材料", "电子科技", "环保设备", "食品", "纺织", "建设工程", "物流", "软件", "生物医药", "农业开发", "包装材料"]
NAME_WORDS = ["恒达", "华信", "鑫源", "金泰", "宏远", "盛世", "博瑞", "瑞丰", "天成", "嘉禾", "永兴", "中科", "润泽", "信诚", "东方", "汇通"]
INDUSTRY_BY_TRADE = {"精密机械": "C", "新材料": "C", "电子科技": "C", "环保设备": "C", "食品": "C", "纺织": "C",
                     "建设工程": "E", "物流": "G", "软件": "I", "生物医药": "C", "农业开发": "A", "包装材料": "C"}
BANKS = [("中国工商银行", "南京分行"), ("中国农业银行", "苏州分行"), ("中国银行", "杭州分行"), ("中国建设银行", "宁波分行"),
         ("交通银行", "广州分行"), ("招商银行", "深圳分行"), ("江苏银行", "南京河西支行"), ("杭州银行", "科技支行")]

def make_uscc(rng: random.Random, region: str) -> str:
    body = "91" + region + "".join(rng.choice("0123456789") for _ in range(9))
    return body + uscc_check_char(body)


def make_resident_id(rng: random.Random, region: str, birth: dt.date, male: bool) -> str:
    seq = rng.randint(0, 49) * 2 + (1 if male else 0)
    body = f"{region}{birth:%Y%m%d}{rng.randint(0, 9)}{seq:02d}"
    return body + resident_id_check_char(body)


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
STAFF = [("zhangwei", "张", "伟", "project_manager"), ("liuyang", "刘", "洋", "project_manager"),
         ("lina", "李", "娜", "risk_officer"), ("wangqiang", "王", "强", "manager"),
         ("zhaomin", "赵", "敏", "finance"), ("chenjing", "陈", "静", "committee_member"),
         ("zhoujie", "周", "杰", "committee_member"), ("sunli", "孙", "丽", "committee_member"),
         ("wujun", "吴", "军", "committee_member"), ("zhengyu", "郑", "宇", "auditor")]


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


def load_demo_data(app, size: int = 50, seed: int = 20261129) -> int:
    """Load banks and ``size`` customers unless the database already has customers."""
    rt = app.extensions["danbao"]
    meta = rt.meta
    if "corporate_customer" not in meta.entities:
        return 0
    corp_cls = rt.models.cls("corporate_customer")
    if rt.session.execute(sa.select(sa.func.count()).select_from(corp_cls)).scalar_one():
        return 0
    rng = random.Random(seed)
    svc = RecordService(rt.models, rt.session, Actor(user_id=None, username="demo"))
    count = 0
    scored: list[tuple[str, int]] = []
    managers = [uid for uid, _ in active_users(rt.session) if uid in _holders(rt.session, "project_manager")]
    bank_ids = []
    for name, branch in BANKS:
        bank = svc.create("bank", {"name": f"{name}{branch}", "branch": branch,
                                   "credit_line": Decimal(rng.randrange(5, 50)) * Decimal("100000000"),
                                   "margin_ratio": Decimal(rng.choice(["0.100000", "0.150000", "0.200000"])),
                                   "active": True})
        bank_ids.append(bank.id)
        count += 1
    for i in range(size):
        code, city, _prov = rng.choice(CITIES)
        trade = rng.choice(TRADE_WORDS)
        word = rng.choice(NAME_WORDS)
        company = f"{city[:-1]}{word}{trade}有限公司" if i % 3 else f"{city[:-1]}{word}{trade}股份有限公司"
        legal = person_name(rng)
        capital = Decimal(rng.choice([100, 200, 300, 500, 800, 1000, 2000, 5000]))
        employees = rng.randint(8, 600)
        established = dt.date(rng.randint(1998, 2022), rng.randint(1, 12), rng.randint(1, 28))
        shareholders = [{"name": legal, "holder_type": "person", "subscribed_capital": str(capital * Decimal("0.6")),
                         "paid_in_capital": str(capital * Decimal("0.6")), "share_ratio": "0.600000"},
                        {"name": person_name(rng), "holder_type": "person", "subscribed_capital": str(capital * Decimal("0.4")),
                         "paid_in_capital": str(capital * Decimal("0.3")), "share_ratio": "0.400000"}]
        birth = dt.date(rng.randint(1962, 1990), rng.randint(1, 12), rng.randint(1, 28))
        key_persons = [{"name": legal, "role": "legal_rep", "phone": f"13{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}",
                        "id_no": make_resident_id(rng, code, birth, True), "years_in_trade": rng.randint(3, 30)}]
        customer = {
            "name": company, "uscc": make_uscc(rng, code), "company_type": "jsc" if "股份" in company else "llc",
            "legal_rep": legal, "registered_capital": str(capital), "paid_in_capital": str(capital * Decimal("0.9")),
            "established_on": established.isoformat(), "region": code,
            "registered_address": f"{city}{rng.choice(DISTRICTS)}{rng.choice(ROADS)}{rng.randint(1, 999)}号",
            "business_scope": f"{trade}产品的研发、生产与销售；货物进出口。", "industry": INDUSTRY_BY_TRADE[trade],
            "employees": employees,
            "enterprise_size": "micro" if employees < 20 else ("small" if employees < 300 else "medium"),
            "tax_grade": rng.choice("AABBM"), "annual_tax": str(Decimal(rng.randint(5, 900)) * 10000),
            "high_tech": (high_tech := rng.random() < 0.3),
            "high_tech_cert_no": f"GR{rng.randint(2019, 2024)}{code[:2]}{rng.randint(100000, 999999)}" if high_tech else None,
            "debt_ratio": f"{rng.uniform(25, 85):.2f}",
            "basic_bank": rng.choice(bank_ids), "contact_phone": f"0{rng.randint(20, 29)}-{rng.randint(60000000, 89999999)}",
            "shareholders": shareholders, "key_persons": key_persons,
        }
        if meta.entity("corporate_customer").has_field("statements"):
            customer["statements"] = demo_statements(rng, capital, Decimal(customer["debt_ratio"]))
        corp = svc.create("corporate_customer", customer)
        count += 1 + len(shareholders) + len(key_persons) + len(customer.get("statements", ()))
        scored.append(("corporate_customer", corp.id))
        if "guarantee_project" in meta.entities:
            count += demo_project(svc, rng, i, corp, bank_ids, managers)
        male = rng.random() < 0.6
        ibirth = dt.date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
        icode = rng.choice(CITIES)[0]
        married = rng.random() < 0.7
        family = [{"relation": "spouse", "name": person_name(rng), "employer": f"{rng.choice(NAME_WORDS)}商贸有限公司",
                   "monthly_income": str(Decimal(rng.randint(30, 200)) * 100)}] if married else []
        person = svc.create("individual_customer", {
            "name": person_name(rng), "sex": "M" if male else "F", "id_type": "resident_id",
            "id_no": make_resident_id(rng, icode, ibirth, male), "birth_date": ibirth.isoformat(),
            "marital_status": "married" if married else "single",
            "mobile": f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}", "region": icode,
            "address": f"{dict((c[0], c[1]) for c in CITIES)[icode]}{rng.choice(DISTRICTS)}{rng.choice(ROADS)}{rng.randint(1, 300)}号",
            "housing": (housing := rng.choice(["owned", "mortgaged", "rented"])),
            "mortgage_balance": str(Decimal(rng.randint(10, 150)) * 10000) if housing == "mortgaged" else None,
            "annual_income": str(Decimal(rng.randint(8, 120)) * 10000),
            "total_debt": str(Decimal(rng.randint(0, 80)) * 10000), "family_members": family,
        })
        count += 1 + len(family)
        scored.append(("individual_customer", person.id))
    count += score_demo_customers(rt, rng, scored)
    return count


def _holders(session, role: str) -> set[int]:
    from danbao.engines.users import ROLE_TABLE, USER_ROLE_TABLE
    return {r[0] for r in session.execute(sa.select(USER_ROLE_TABLE.c.user_id).select_from(
        USER_ROLE_TABLE.join(ROLE_TABLE, ROLE_TABLE.c.id == USER_ROLE_TABLE.c.role_id)).where(ROLE_TABLE.c.name == role))}


def start_demo_workflows(rt) -> int:
    """Submit every project still 'applying' into its approval workflow, as its A角, and take the
    first review of some, so My tasks and the approval panels have something to show."""
    from danbao.engines.workflow import Refused, WorkflowEngine
    if "guarantee_project" not in rt.meta.entities or not rt.meta.workflows:
        return 0
    eng = WorkflowEngine(rt.session, rt.models, rt.meta)
    table = rt.models.table("guarantee_project")
    names = dict(active_users(rt.session))
    started = 0
    for row in rt.session.execute(sa.select(table.c.id, table.c.a_manager_id).where(
            table.c.status == "applying", table.c.a_manager_id.is_not(None))).all():
        starter = Actor(row.a_manager_id, names.get(row.a_manager_id, "demo"))
        for wf in eng.candidates("guarantee_project", row.id):
            if wf.group != "project_approval" or not eng.may_start(wf, row.id, starter.user_id):
                continue
            try:
                eng.start("guarantee_project", row.id, wf.code, starter, comment="资料已齐，提交审批")
                started += 1
            except Refused:
                rt.session.rollback()
    return started


STATUSES = ["guaranteeing"] * 6 + ["applying", "applying", "approved", "released", "overdue", "compensated"]


def demo_project(svc, rng: random.Random, i: int, corp, bank_ids, managers) -> int:
    """One guarantee project for a demo company, at a random stage; in-force ones
    start so that some fall due within 30 days and some are overdue."""
    today = dt.date.today()
    months = rng.choice([6, 12, 12, 12, 24, 36])
    status = rng.choice(STATUSES)
    start = today - dt.timedelta(days=rng.randint(0, months * 30 + 20))
    amount = Decimal(rng.randrange(50, 3000)) * 10000
    rate = Decimal(rng.choice(["0.015000", "0.020000", "0.025000"]))
    fee = (amount * rate / 4).quantize(Decimal("0.01"))
    fees = []
    if status not in ("applying", "reviewing"):
        for q in range(max(1, months // 3)):
            due = start + dt.timedelta(days=91 * q)
            paid = due < today - dt.timedelta(days=20) or rng.random() < 0.5
            fees.append({"due_on": due.isoformat(), "amount": str(fee),
                         "paid_amount": str(fee) if paid else None, "paid_on": due.isoformat() if paid else None})
    svc.create("guarantee_project", {
        "project_no": f"DB{today.year}{i + 1:04d}", "name": f"{corp.name}流动资金贷款担保",
        "customer_kind": "corporate", "corporate_customer": corp.id, "bank": rng.choice(bank_ids),
        "amount": str(amount), "term_months": months, "start_date": start.isoformat(), "fee_rate": str(rate),
        "status": status, "risk_class": "attention" if status == "overdue" else "normal",
        "a_manager": rng.choice(managers) if managers else None,
        "b_manager": rng.choice(managers) if managers else None, "fee_instalments": fees})
    return 1 + len(fees)


def demo_statements(rng: random.Random, capital: Decimal, debt_ratio: Decimal) -> list[dict]:
    """Two annual statements (万元) consistent with the company's size and debt ratio."""
    today = dt.date.today()
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


def score_demo_customers(rt, rng: random.Random, records) -> int:
    """Score every demo customer once with its entity's scorecards, choosing the analyst's inputs at random."""
    from danbao.engines.scoring import cards_for, score_record
    actor = Actor(user_id=None, username="demo")
    count = 0
    for entity, record_id in records:
        for card in cards_for(rt.meta, entity):
            inputs = {i.code: rng.choices(i.options[:3], weights=(6, 3, 1)[:len(i.options[:3])])[0].value
                      for i in card.indicators if i.input}
            score_record(rt.session, rt.models, rt.meta, card.code, record_id, inputs=inputs, actor=actor,
                         as_of=dt.date.today())
            count += 1
    return count
