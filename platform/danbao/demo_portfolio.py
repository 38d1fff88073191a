"""The demo portfolio: customers and N guarantee projects at every stage of their life.

``build_portfolio(session, models, meta, size, …)`` writes, through the record
service (so the save hooks compute coverage, next check dates and limit
flags) and the ledger service (made by the project's A角, checked by a risk
officer, confirmed by finance):

* companies (N/2) with registration, overview, statements, bank credits,
  accounts, credit-bureau records, lawsuits (one 失信被执行人), shareholders and
  related parties — some companies form related groups;
* individuals (N/5) with occupation, career, shops, assets and family;
* N projects over the three products, each at a stage: applying, reviewing
  (submitted afterwards by ``start_demo_workflows``), approved, rejected,
  guaranteeing, released, overdue, compensated, written off — with
  counter-guarantees around the product's minimum coverage, the fee plan
  from the product's schemes, post-guarantee check rounds, compensation,
  recovery and asset preservation, and the ledger entries of each step on
  the day it happened.

Everything is drawn from one seeded ``random.Random`` and dated relative to
``today``, so a given size, seed and day always give the same book.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from danbao.demo import GIVEN, SURNAMES, demo_statements, make_resident_id, make_uscc, person_name
from danbao.engines.records import Actor, RecordService
from danbao.expr.functions import fn_add_months

CENT = Decimal("0.01")
WAN = Decimal(10000)

#: (region code, city, short name, province abbreviation, districts)
CITIES = [
    ("320100", "南京市", "南京", "苏", ["玄武区", "秦淮区", "建邺区", "鼓楼区", "江宁区", "浦口区", "栖霞区"]),
    ("320500", "苏州市", "苏州", "苏", ["姑苏区", "吴中区", "相城区", "虎丘区", "吴江区"]),
    ("330100", "杭州市", "杭州", "浙", ["上城区", "拱墅区", "西湖区", "滨江区", "余杭区", "萧山区"]),
    ("330200", "宁波市", "宁波", "浙", ["海曙区", "江北区", "鄞州区", "北仑区", "镇海区"]),
    ("440100", "广州市", "广州", "粤", ["天河区", "越秀区", "海珠区", "白云区", "番禺区", "黄埔区"]),
    ("440300", "深圳市", "深圳", "粤", ["福田区", "南山区", "罗湖区", "宝安区", "龙岗区", "龙华区"]),
    ("510100", "成都市", "成都", "川", ["锦江区", "青羊区", "武侯区", "成华区", "双流区", "郫都区"]),
]
CITY = {c[0]: c for c in CITIES}
AREA_CODES = {"320100": "25", "320500": "512", "330100": "571", "330200": "574", "440100": "20", "440300": "755",
              "510100": "28"}
ROADS = ["人民路", "中山路", "解放路", "建设路", "长江路", "科技大道", "创业路", "新华路", "和平路", "湖滨路",
         "工业大道", "文昌路", "金山路", "望江路", "东湖路", "学府路"]
#: (trade word, GB/T 4754 division, business scope, main products)
TRADES = [
    ("精密机械", "34", "通用机械设备、精密零部件的研发、生产与销售", "数控机床零部件、精密传动部件"),
    ("新材料", "29", "高分子材料、改性塑料的研发、生产与销售", "改性工程塑料粒子、塑料制品"),
    ("电子科技", "39", "电子元器件、通信设备的研发、生产与销售", "印制电路板组件、通信模块"),
    ("环保设备", "35", "环保设备、水处理设备的设计、制造与安装", "污水处理成套设备、除尘设备"),
    ("食品", "13", "农副产品收购；食品生产与销售", "冷冻调理食品、粮油制品"),
    ("纺织", "17", "纺织品、服装面料的生产与销售", "化纤混纺面料、家纺产品"),
    ("建设工程", "47", "房屋建筑工程、市政公用工程施工", "房屋建筑施工、装饰装修工程"),
    ("路桥工程", "48", "公路工程、桥梁工程、市政道路施工", "市政道路及桥梁施工"),
    ("物流", "54", "普通货运；仓储服务（不含危险化学品）", "城际零担运输、仓储配送"),
    ("软件", "65", "软件开发、信息系统集成服务", "企业管理软件、系统集成"),
    ("生物医药", "27", "化学药品制剂、医疗器械的研发、生产与销售", "化学药品制剂、诊断试剂"),
    ("农业开发", "01", "农作物种植、农产品初加工与销售", "蔬菜及水果种植、农产品分拣"),
    ("包装材料", "22", "纸制品、包装材料的生产与销售", "瓦楞纸箱、彩印包装"),
    ("商贸", "51", "五金交电、建筑材料、金属材料的批发与零售", "钢材、建材批发"),
    ("电气", "38", "输配电及控制设备的研发、生产与销售", "高低压开关柜、箱式变电站"),
    ("汽车零部件", "36", "汽车零部件的研发、生产与销售", "汽车内饰件、冲压件"),
]
HOLDING = ("控股集团", "72", "实业投资；企业管理咨询；股权投资", "对下属企业的投资与管理")
NAME_WORDS = ["恒达", "华信", "鑫源", "金泰", "宏远", "盛世", "博瑞", "瑞丰", "天成", "嘉禾", "永兴", "中科", "润泽",
              "信诚", "东方", "汇通", "锦程", "正泰", "海纳", "立信", "明德", "弘毅", "新锐", "安泰"]
#: partner banks: (bank, branch, city code)
BANKS = [("中国工商银行", "南京分行", "320100"), ("中国农业银行", "苏州分行", "320500"),
         ("中国银行", "杭州分行", "330100"), ("中国建设银行", "宁波分行", "330200"),
         ("交通银行", "广州分行", "440100"), ("招商银行", "深圳分行", "440300"),
         ("江苏银行", "南京河西支行", "320100"), ("杭州银行", "科技支行", "330100"),
         ("成都银行", "高新支行", "510100"), ("中国邮政储蓄银行", "成都分行", "510100"),
         ("苏州银行", "工业园区支行", "320500"), ("宁波银行", "鄞州支行", "330200")]
LOAN_PURPOSES = ["采购原材料，补充流动资金", "支付供应商货款", "购置生产设备", "支付工程款及人工费用",
                 "扩大生产规模，补充营运资金", "采购库存商品"]
CAUSES = ["买卖合同纠纷", "建设工程施工合同纠纷", "借款合同纠纷", "租赁合同纠纷", "劳动争议", "承揽合同纠纷"]
CHECK_FINDINGS = {
    "normal": ["企业经营正常，订单饱满，银行账户流水与申报收入基本一致；反担保抵押物现状良好，未发现新增对外担保。",
               "实地查看生产车间，设备运转正常，存货周转正常；按期支付利息，无逾期记录。",
               "电话回访实际控制人，经营情况稳定；复核最新财务报表，资产负债率变化不大。"],
    "attention": ["主要客户回款放缓，应收账款较上期增加约三成；已提示企业加强催收并按月报送资金计划。",
                  "企业新增一笔银行借款，对外担保余额上升；需关注后续现金流。"],
    "risk": ["企业停产半月，工资发放延迟，实际控制人联系不畅；建议启动风险预案并查封反担保物。",
             "银行账户被冻结，已有供应商起诉；建议提前与银行沟通并准备代偿资金。"],
}
#: stage -> share of the projects; the order is the one small books are filled in. A
#: believable book: most projects in force or released, a few in default (代偿率 of a
#: sound company is a few per cent), every stage present so every screen has something
STAGE_SHARES = [("guaranteeing", 0.40), ("applying", 0.05), ("released", 0.30), ("overdue", 0.04),
                ("reviewing", 0.07), ("compensated", 0.03), ("approved", 0.05), ("rejected", 0.04),
                ("written_off", 0.02)]
#: business line -> (customer kinds, amount range in 万元, terms in months)
PROFILES = {
    "loan": {"corporate": (100, 3000), "individual": (10, 300), "terms": [6, 12, 12, 12, 12, 24, 36]},
    "performance": {"corporate": (50, 2000), "terms": [12, 12, 18, 24, 36]},
    "litigation": {"corporate": (5, 1000), "individual": (2, 200), "terms": [6, 12, 12, 18, 24]},
}


class Clock:
    """A settable clock: records and entries get the day they happened as their time."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self.real = now

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, day: dt.date, hour: int = 9, minute: int = 0) -> "Clock":
        self.now = min(dt.datetime.combine(day, dt.time(hour, minute)), self.real)
        return self


@dataclass
class Staff:
    """The demo's people, by role: managers are A/B角 and ledger makers; the risk
    officer checks entries and handles defaults; finance confirms."""
    managers: list[Actor]
    risk: Actor | None
    finance: Actor | None

    @property
    def can_book(self) -> bool:
        return bool(self.managers and self.risk and self.finance
                    and len({self.risk.user_id, self.finance.user_id}) == 2
                    and not {self.risk.user_id, self.finance.user_id} & {m.user_id for m in self.managers})


@dataclass(eq=False)
class Customer:
    """A customer of the plan; ``id`` is set once it is written (just before its first project)."""
    kind: str                       # corporate | individual
    region: str
    trade: tuple = ()               # a company's TRADES row
    group: int | None = None        # index of its related group
    holding: bool = False           # the group's holding company (names the others as related parties)
    dishonest: bool = False         # has a 失信被执行人 case
    word: str = ""
    controller: str = ""
    manager: Actor | None = None
    members: list = field(default_factory=list)
    id: int | None = None
    name: str = ""
    uscc: str | None = None
    projects: list = field(default_factory=list)

    @property
    def industry(self) -> str:
        return self.trade[1] if self.trade else ""


@dataclass
class Job:
    """One project of the plan: who, at what stage, which product, how much, how long, and when."""
    customer: Customer
    stage: str
    product: str
    line: str
    amount: Decimal
    term: int
    dates: dict


@dataclass
class Result:
    records: int = 0
    entries: int = 0
    customers: list[Customer] = field(default_factory=list)
    submit: list[int] = field(default_factory=list)         # applications to send into the approval workflow
    stages: dict[str, int] = field(default_factory=dict)


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, ROUND_HALF_UP)


def round_to(value: Decimal, step: int) -> Decimal:
    return (Decimal(value) / step).quantize(Decimal(1), ROUND_HALF_UP) * step


def ceil_to(value: Decimal, step: int) -> Decimal:
    return (Decimal(value) / step).to_integral_value(rounding=ROUND_CEILING) * step


def stage_plan(n: int) -> list[str]:
    """How many projects of each stage: shares of ``n`` by largest remainder, every stage at least
    once when ``n`` allows; a book smaller than the stages takes them in STAGE_SHARES order."""
    if n < len(STAGE_SHARES):
        return [s for s, _ in STAGE_SHARES[:n]]
    exact = {s: n * w for s, w in STAGE_SHARES}
    counts = {s: max(1, int(v)) for s, v in exact.items()}
    by_rest = sorted(STAGE_SHARES, key=lambda sw: exact[sw[0]] - int(exact[sw[0]]), reverse=True)
    i = 0
    while sum(counts.values()) < n:
        counts[by_rest[i % len(by_rest)][0]] += 1
        i += 1
    share = dict(STAGE_SHARES)
    while sum(counts.values()) > n:          # the minimum of one took more than there is: from the most over its share
        counts[max((s for s in counts if counts[s] > 1), key=lambda s: counts[s] / share[s])] -= 1
    return [s for s, _ in STAGE_SHARES for _ in range(counts[s])]


class Portfolio:
    def __init__(self, session, models, meta, staff: Staff, banks: list[tuple[int, str, str]], *,
                 seed: int, today: dt.date, now: dt.datetime | None = None):
        from danbao.engines.ledger import LedgerService
        self.session, self.models, self.meta, self.staff = session, models, meta, staff
        self.rng = random.Random(seed)
        self.today = today
        real = dt.datetime.now()
        self.clock = Clock(now or (real if today == real.date() else dt.datetime.combine(today, dt.time(18, 0))))
        self.ledger_clock = Clock(self.clock.real)
        self.ledger = LedgerService(session, models, meta, clock=self.ledger_clock) if staff.can_book else None
        self.banks: dict[str, list[int]] = {}      # city code -> partner bank ids
        for bank_id, _name, city in banks:
            self.banks.setdefault(city, []).append(bank_id)
        self.bank_names = {bank_id: name for bank_id, name, _city in banks}
        self.all_banks = [bank_id for bank_id, _name, _city in banks]
        self.result = Result()
        self._services: dict[int | None, RecordService] = {}
        self._names: set[str] = set()
        self._serial = 0
        self._mistakes: list[int] = []              # projects with a rejected entry and with a reversal
        self._expiring = False                      # one asset preservation lapses within the month
        project = meta.setting("project_entity", "guarantee_project")
        self.project_entity = project if project in meta.entities else None

    # -- plumbing ---------------------------------------------------------------
    def service(self, actor: Actor | None) -> RecordService:
        actor = actor or Actor(None, "demo")
        if actor.user_id not in self._services:
            self._services[actor.user_id] = RecordService(self.models, self.session, actor, clock=self.clock, seeding=True)
        return self._services[actor.user_id]

    def create(self, entity: str, data: dict, *, by: Actor | None, on: dt.date, hour: int = 10):
        em = self.meta.entity(entity)
        data = {k: v for k, v in data.items() if em.has_field(k)}
        self.clock.at(on, hour, self.rng.randint(0, 59))
        obj = self.service(by).create(entity, data)
        self.result.records += 1 + sum(len(v) for v in data.values() if isinstance(v, list))
        return obj

    def update(self, entity: str, obj, data: dict, *, by: Actor | None, on: dt.date, hour: int = 15):
        em = self.meta.entity(entity)
        data = {k: v for k, v in data.items() if em.has_field(k)}
        self.clock.at(on, hour, self.rng.randint(0, 59))
        # what the workflows and the daily run own (a project's status): written as they write it
        owned = {k: data.pop(k) for k in list(data) if em.field(k).readonly}
        if owned:
            self.service(by).assign(entity, obj.id, owned)
        obj = self.service(by).update(entity, obj.id, data, expected_version=obj.version)
        self.result.records += sum(len(v) for v in data.values() if isinstance(v, list))
        return obj

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def day(self, lo: int, hi: int) -> dt.date:
        """A day between ``lo`` and ``hi`` days ago."""
        return self.today - dt.timedelta(days=self.rng.randint(lo, hi))

    def address(self, region: str, *, building: bool = False) -> str:
        _code, city, _short, _abbr, districts = CITY[region]
        tail = f"{self.rng.randint(1, 30)}幢{self.rng.randint(1, 28)}{self.rng.randint(1, 4):02d}室" if building else ""
        return f"{city}{self.rng.choice(districts)}{self.rng.choice(ROADS)}{self.rng.randint(1, 999)}号{tail}"

    def phone(self) -> str:
        return f"1{self.rng.choice('3589')}{self.rng.randint(0, 9)}{self.rng.randint(10000000, 99999999)}"

    def company_name(self, region: str, word: str, trade: str, suffix: str = "有限公司") -> str:
        short = CITY[region][2]
        name = f"{short}{word}{trade}{suffix}"
        while name in self._names:
            word = self.rng.choice(NAME_WORDS) + self.rng.choice(NAME_WORDS)[0]
            name = f"{short}{word}{trade}{suffix}"
        self._names.add(name)
        return name

    def court(self, region: str, *, intermediate: bool = False) -> str:
        _code, city, _short, _abbr, districts = CITY[region]
        return f"{city}中级人民法院" if intermediate else f"{city}{self.rng.choice(districts)}人民法院"

    def case_no(self, region: str, year: int, word: str) -> str:
        abbr = CITY[region][3]
        return f"（{year}）{abbr}{region[2:4]}{self.rng.randint(1, 16):02d}{word}{self.rng.randint(100, 9999)}号"

    # -- customers -----------------------------------------------------------------
    def plan_customers(self, companies: int, individuals: int, group_sizes: list[int]) -> list[Customer]:
        """Who the customers will be: related groups first (a holding company and its
        subsidiaries in one city under one controller), then single companies, then individuals."""
        rng, managers = self.rng, self.staff.managers
        out: list[Customer] = []
        for g, size in enumerate(group_sizes):
            if size < 2 or len(out) + size > companies:
                break
            region, word, controller = rng.choice(CITIES)[0], NAME_WORDS[g % len(NAME_WORDS)], person_name(rng)
            manager = rng.choice(managers) if managers else None
            subs = [Customer("corporate", region, rng.choice(TRADES), g, word=word, controller=controller, manager=manager)
                    for _ in range(size - 1)]
            out.append(Customer("corporate", region, HOLDING, g, holding=True, word=word, controller=controller,
                                manager=manager, members=subs))
            out.extend(subs)
        while len(out) < companies:
            out.append(Customer("corporate", rng.choice(CITIES)[0], rng.choice(TRADES),
                                manager=rng.choice(managers) if managers else None))
        singles = [c for c in out if c.group is None]
        if singles:
            singles[-1].dishonest = True
        out.extend(Customer("individual", rng.choice(CITIES)[0], manager=rng.choice(managers) if managers else None)
                   for _ in range(individuals))
        return out

    def ensure(self, cust: Customer, on: dt.date) -> None:
        """Write the customer (a group as a whole: subsidiaries, then the holding company) if not yet written."""
        if cust.id is not None:
            return
        if cust.group is not None:
            head = next(c for c in self.result.customers if c.holding and c.group == cust.group)
            for member in head.members:
                self.company(member, on)
            self.company(head, on)
        elif cust.kind == "corporate":
            self.company(cust, on)
        else:
            self.individual(cust, on)

    def company(self, cust: Customer, on: dt.date) -> None:
        rng = self.rng
        region, holding = cust.region, cust.holding
        trade, industry, scope, products = cust.trade
        jsc = not holding and rng.random() < 0.15
        name = self.company_name(region, cust.word or rng.choice(NAME_WORDS), trade, "股份有限公司" if jsc else "有限公司")
        legal = cust.controller or person_name(rng)
        capital = Decimal(rng.choice([100, 200, 300, 500, 800, 1000, 2000, 3000, 5000])) * (3 if holding else 1)
        employees = rng.randint(30, 120) if holding else rng.randint(8, 650)
        established = dt.date(rng.randint(1998, 2022), rng.randint(1, 12), rng.randint(1, 28))
        if rng.random() < 0.04:
            established = self.day(120, 330)           # a young company: the newly-founded warning
        debt_ratio = Decimal(f"{rng.uniform(25, 85):.2f}")
        statements = [s for s in demo_statements(rng, capital, debt_ratio, self.today)
                      if s["period_end"] > established.isoformat()]          # none before it was founded
        revenue = Decimal(statements[-1]["revenue"]) if statements else money(capital * Decimal("0.4"))
        assets = Decimal(statements[-1]["total_assets"]) if statements else capital
        partner = rng.choice(self.banks.get(region) or self.all_banks)
        second = person_name(rng)
        share = Decimal(rng.choice(["0.600000", "0.700000", "0.800000", "0.510000"]))
        shareholders = [
            {"name": legal, "holder_type": "person", "id_type": "resident_id", "id_no": make_resident_id(rng, region, self._birth(), True),
             "subscribed_capital": money(capital * share), "paid_in_capital": money(capital * share), "share_ratio": share},
            {"name": second, "holder_type": "person", "subscribed_capital": money(capital * (1 - share)),
             "paid_in_capital": money(capital * (1 - share) * Decimal("0.8")), "share_ratio": 1 - share}]
        key_persons = [
            {"name": legal, "role": "legal_rep", "phone": self.phone(),
             "education": rng.choice(["bachelor", "college", "master"]),
             "id_no": make_resident_id(rng, region, self._birth(), True), "years_in_trade": rng.randint(5, 30),
             "share_ratio": share},
            {"name": person_name(rng), "role": "cfo", "phone": self.phone(), "education": "bachelor",
             "years_in_trade": rng.randint(3, 20)}]
        customer = {
            "name": name, "uscc": make_uscc(rng, region), "company_type": "jsc" if jsc else "llc",
            "legal_rep": legal, "registered_capital": capital, "paid_in_capital": money(capital * Decimal("0.9")),
            "established_on": established, "business_term_from": established,
            "registration_authority": f"{CITY[region][1]}市场监督管理局", "registration_status": "in_business",
            "region": region, "registered_address": self.address(region),
            "operating_address": self.address(region) if rng.random() < 0.3 else None,
            "business_scope": f"{scope}；货物及技术进出口。", "industry": industry, "employees": employees,
            "annual_revenue": money(revenue), "total_assets": money(assets), "enterprise_size": self.enterprise_size(industry, employees, revenue, assets),
            "main_business": products,
            "main_customers": f"{CITY[rng.choice(CITIES)[0]][2]}{rng.choice(NAME_WORDS)}集团有限公司（约{rng.randint(15, 40)}%）等",
            "main_suppliers": f"{CITY[rng.choice(CITIES)[0]][2]}{rng.choice(NAME_WORDS)}贸易有限公司（约{rng.randint(10, 35)}%）等",
            "premises": (premises := rng.choice(["owned", "leased", "partly_owned"])),
            "premises_area": Decimal(rng.randint(300, 30000)),
            "premises_lease_until": self.today + dt.timedelta(days=rng.randint(200, 1500)) if premises != "owned" else None,
            "tax_grade": rng.choice("AAAABBBBMMC"), "annual_tax": Decimal(rng.randint(5, 900)) * WAN,
            "high_tech": (high_tech := industry in ("34", "35", "38", "39", "65", "27") and rng.random() < 0.5),
            "high_tech_cert_no": f"GR{rng.randint(2019, 2025)}{region[:2]}{rng.randint(100000, 999999)}"
            if high_tech else None,
            "debt_ratio": debt_ratio, "basic_bank": partner,
            "last_visit_at": dt.datetime.combine(self.day(3, 200), dt.time(rng.randint(9, 16), 30)),
            "contact_person": legal if rng.random() < 0.5 else key_persons[1]["name"],
            "contact_phone": f"0{AREA_CODES[region]}-{rng.randint(60000000, 89999999)}",
            "actual_controller": legal,
            "financing_history": f"近三年在{rng.randint(1, 4)}家银行融资，按期还本付息，无不良记录。",
            "statements": statements, "shareholders": shareholders, "key_persons": key_persons,
            "bank_credits": self.bank_credits(region, capital),
            "bank_accounts": self.bank_accounts(name, partner, established),
            "credit_records": self.credit_records(capital, bad=cust.dishonest),
            "related_parties": self.related(cust) + self.outside_parties(),
            "lawsuits": self.lawsuits(region, dishonest=cust.dishonest) if cust.dishonest or rng.random() < 0.15 else [],
        }
        obj = self.create("corporate_customer", customer, by=cust.manager, on=on)
        cust.id, cust.name, cust.uscc = obj.id, obj.name, obj.uscc

    def related(self, cust: Customer) -> list[dict]:
        """A holding company's subsidiaries (already written) as related parties; in every other
        group one is named by credit code only, which puts it in the group all the same."""
        rows = [{"name": m.name, "relation": "subsidiary", "uscc": m.uscc, "related_customer": m.id,
                 "share_ratio": Decimal(self.rng.choice(["0.510000", "0.600000", "0.700000", "1.000000"]))}
                for m in cust.members]
        if cust.group is not None and cust.group % 2 and rows:
            rows[-1]["related_customer"] = None
        return rows

    def _birth(self) -> dt.date:
        return dt.date(self.rng.randint(1962, 1992), self.rng.randint(1, 12), self.rng.randint(1, 28))

    def enterprise_size(self, industry: str, staff: int, revenue: Decimal, assets: Decimal) -> str | None:
        """The size by the table in settings (工信部联企业〔2011〕300号), as the save hook decides it."""
        from danbao.engines.enterprise_size import classify, industry_row
        codelist = self.meta.codelists.get("industry_gb4754")
        parents = {i.code: i.parent for i in codelist.items} if codelist else {}
        row = industry_row(self.meta.setting("enterprise_size_table") or [], industry, parents.get)
        return classify(row, {"staff": staff, "revenue": revenue, "assets": assets}) if row else None

    def bank_credits(self, region: str, capital: Decimal) -> list[dict]:
        rng = self.rng
        rows = []
        for _ in range(rng.randint(1, 3)):
            start = self.day(30, 600)
            kind = rng.choice(["loan", "loan", "credit_line", "acceptance", "guarantee_given"])
            amount = round_to(capital * Decimal(str(rng.uniform(0.3, 1.5))) * WAN, 100000) or Decimal(1000000)
            partner = rng.random() < 0.7
            rows.append({
                "bank": rng.choice(self.banks.get(region) or self.all_banks) if partner else None,
                "lender_name": None if partner else rng.choice(
                    [f"{CITY[region][2]}农村商业银行", f"{CITY[region][2]}{rng.choice(NAME_WORDS)}小额贷款有限公司"]),
                "kind": kind, "amount": amount,
                "balance": amount if kind != "loan" else round_to(amount * Decimal(str(rng.uniform(0.4, 1))), 10000),
                "start_on": start, "end_on": fn_add_months(start, rng.choice([12, 12, 24, 36])),
                "guarantee_method": rng.choice(["credit", "surety", "mortgage", "guarantor_company", "combined"]),
                "note": "为关联企业提供连带责任保证" if kind == "guarantee_given" else None})
        return rows

    def bank_accounts(self, name: str, bank_id: int, opened: dt.date) -> list[dict]:
        rng = self.rng
        banks = self.bank_names or {0: f"{CITY[CITIES[0][0]][2]}农村商业银行"}
        def account_no():
            return " ".join(f"{rng.randint(0, 9999):04d}" for _ in range(4)) + f" {rng.randint(100, 999)}"
        rows = [{"bank": banks.get(bank_id, "开户银行"), "account_name": name, "account_no": account_no(),
                 "account_type": "basic", "opened_on": opened + dt.timedelta(days=rng.randint(5, 60))}]
        if rng.random() < 0.7:
            other = rng.choice(list(banks.values()))
            rows.append({"bank": other, "account_name": name, "account_no": account_no(), "account_type": "general",
                         "opened_on": opened + dt.timedelta(days=rng.randint(100, 2000))})
        return rows

    def credit_records(self, capital: Decimal, *, bad: bool = False) -> list[dict]:
        rng = self.rng
        rows = []
        for back in sorted(rng.sample([15, 120, 200, 380], rng.randint(1, 2)), reverse=True):
            overdue = (bad or rng.random() < 0.06) and back < 150
            rows.append({"queried_on": self.today - dt.timedelta(days=back + rng.randint(0, 10)),
                         "current_overdue": round_to(capital * WAN * Decimal("0.05"), 1000) if overdue else Decimal(0),
                         "overdue_count_history": rng.choice([0, 0, 0, 0, 1, 2]),
                         "loan_balance": round_to(capital * WAN * Decimal(str(rng.uniform(0.2, 1.2))), 10000),
                         "guarantee_balance": round_to(capital * WAN * Decimal(str(rng.uniform(0, 0.5))), 10000),
                         "summary": "当前有逾期，关注类贷款 1 笔" if overdue else
                         f"无不良及关注类记录，近半年贷款审批查询 {rng.randint(1, 6)} 次"})
        return rows

    def outside_parties(self) -> list[dict]:
        """Related companies outside our book (an investee, a mutual-guarantee partner)."""
        rng = self.rng
        if rng.random() > 0.3:
            return []
        region = rng.choice(CITIES)[0]
        relation = rng.choice(["investee", "mutual_guarantee", "same_controller"])
        return [{"name": f"{CITY[region][2]}{rng.choice(NAME_WORDS)}{rng.choice(TRADES)[0]}有限公司", "relation": relation,
                 "uscc": make_uscc(rng, region),
                 "share_ratio": Decimal("0.300000") if relation == "investee" else None,
                 "note": "互相提供贷款担保" if relation == "mutual_guarantee" else None}]

    def lawsuits(self, region: str, *, dishonest: bool = False) -> list[dict]:
        rng = self.rng
        year = self.today.year - rng.randint(0, 2)
        rows = [{"case_no": self.case_no(region, year, "民初"), "cause": rng.choice(CAUSES), "court": self.court(region),
                 "role": rng.choice(["plaintiff", "plaintiff", "defendant"]),
                 "amount": Decimal(rng.randint(5, 300)) * WAN, "status": rng.choice(["pending", "judged", "closed"]),
                 "filed_on": self.day(60, 700)}]
        if dishonest:
            rows.append({"case_no": self.case_no(region, self.today.year - 1, "执"), "cause": "借款合同纠纷",
                         "court": self.court(region), "role": "defendant", "amount": Decimal(rng.randint(80, 600)) * WAN,
                         "status": "enforcing", "dishonest": True, "consumption_restricted": True,
                         "filed_on": self.day(90, 300)})
        return rows

    def individual(self, cust: Customer, on: dt.date) -> None:
        rng = self.rng
        region = cust.region
        male = rng.random() < 0.6
        birth = dt.date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
        name = person_name(rng)
        married = rng.random() < 0.7
        self_employed = rng.random() < 0.6
        family = []
        if married:
            family.append({"relation": "spouse", "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                           "id_no": make_resident_id(rng, region, birth + dt.timedelta(days=rng.randint(-900, 900)),
                                                     not male),
                           "employer": f"{CITY[region][2]}{rng.choice(NAME_WORDS)}商贸有限公司",
                           "monthly_income": Decimal(rng.randint(40, 200)) * 100})
            if rng.random() < 0.6:
                family.append({"relation": "child", "name": name[0] + rng.choice(GIVEN) + rng.choice(GIVEN)})
        shops, career = [], []
        if self_employed:
            trade = rng.choice(["五金建材", "餐饮", "超市", "服装", "汽车维修", "茶叶", "家电"])
            for n in range(rng.choice([1, 1, 2])):
                shops.append({"name": f"{name[0]}记{trade}{'店' if n == 0 else '二店'}",
                              "uscc": make_uscc(rng, region, prefix="92"), "address": self.address(region),
                              "area_sqm": Decimal(rng.randint(30, 600)),
                              "lease_until": self.today + dt.timedelta(days=rng.randint(90, 1400))
                              if rng.random() < 0.7 else None,
                              "monthly_turnover": Decimal(rng.randint(5, 120)) * WAN / 10, "staff": rng.randint(1, 25)})
            employer, employer_type, position = shops[0]["name"], "self_employed", "经营者"
        else:
            employer = rng.choice([f"{CITY[region][2]}{rng.choice(NAME_WORDS)}{rng.choice(TRADES)[0]}有限公司",
                                   f"国网{CITY[region][1][:-1]}供电公司", f"{CITY[region][1]}第一人民医院"])
            employer_type = "state_owned" if "国网" in employer else ("public_body" if "医院" in employer else "private")
            position = rng.choice(["销售经理", "工程师", "部门主管", "主治医师", "财务经理"])
            since = self.day(700, 4000)
            career = [{"from_on": since - dt.timedelta(days=rng.randint(900, 3000)), "to_on": since - dt.timedelta(days=30),
                       "employer": f"{CITY[region][2]}{rng.choice(NAME_WORDS)}科技有限公司", "position": "职员"},
                      {"from_on": since, "employer": employer, "position": position}]
        income = Decimal(rng.randint(12, 150)) * WAN
        home = f"{self.address(region, building=True)}，建筑面积{rng.randint(60, 180)}平方米"
        assets = [{"kind": "real_estate", "description": home,
                   "value": Decimal(rng.randint(80, 600)) * WAN, "encumbered": rng.random() < 0.4}]
        if rng.random() < 0.6:
            assets.append({"kind": "vehicle", "description": f"{CITY[region][3]}A·{rng.randint(10000, 99999)} 小型轿车",
                           "value": Decimal(rng.randint(8, 45)) * WAN})
        if rng.random() < 0.5:
            assets.append({"kind": "deposit", "description": "定期存款", "value": Decimal(rng.randint(5, 100)) * WAN})
        housing = rng.choice(["owned", "mortgaged", "rented"])
        data = {
            "name": name, "sex": "M" if male else "F", "id_type": "resident_id",
            "id_no": make_resident_id(rng, region, birth, male), "birth_date": birth, "ethnicity": "01",
            "marital_status": "married" if married else rng.choice(["single", "divorced"]),
            "education": rng.choice(["bachelor", "college", "senior", "vocational", "master"]),
            "mobile": self.phone(), "region": region, "household_address": self.address(region),
            "address": self.address(region, building=True), "housing": housing,
            "mortgage_balance": Decimal(rng.randint(10, 150)) * WAN if housing == "mortgaged" else None,
            "annual_income": income, "total_debt": round_to(income * Decimal(str(rng.uniform(0, 1.1))), 10000),
            "employer": employer, "employer_type": employer_type, "position": position,
            "employed_since": career[-1]["from_on"] if career else self.day(900, 5000),
            "monthly_income": money(income / 12), "family_members": family, "shops": shops,
            "career_history": career, "personal_assets": assets,
        }
        obj = self.create("individual_customer", data, by=cust.manager, on=on)
        cust.id, cust.name = obj.id, obj.name

    # -- projects ------------------------------------------------------------------
    def products(self, kind: str, industry: str) -> str | None:
        """A product for this customer: construction companies ask for performance letters."""
        rng = self.rng
        by_line = {p.business_line: code for code, p in self.meta.products.items()
                   if p.active and p.entity == self.project_entity and kind in (p.scorecards or {kind: None})}
        weights = {"loan": 70, "performance": 60 if industry in ("47", "48") else 8, "litigation": 12}
        lines = [line for line in weights if line in by_line]
        if not lines:
            return next(iter(by_line.values()), None)
        return by_line[rng.choices(lines, weights=[weights[line] for line in lines])[0]]

    def plan_project(self, cust: Customer, stage: str, *, amount_wan: int | None = None,
                     product: str | None = None, cap: Decimal | None = None) -> Job | None:
        """The project's product, amount (at most ``cap``), term and the days of its story
        (nothing written yet); None when no product fits."""
        rng, meta = self.rng, self.meta
        code = product if product in meta.products else self.products(cust.kind, cust.industry)
        pm = meta.products.get(code) if code else None
        if pm is None:
            return None
        line = pm.business_line if pm.business_line in PROFILES else "loan"
        profile = PROFILES[line]
        lo, hi = profile.get(cust.kind, profile["corporate"])
        amount = Decimal(amount_wan or rng.randint(lo, hi)) * WAN
        if pm.amount_min is not None:
            amount = max(amount, pm.amount_min)
        if pm.amount_max is not None:
            amount = min(amount, pm.amount_max)
        if cap is not None:
            amount = min(amount, (cap / WAN).to_integral_value(rounding=ROUND_FLOOR) * WAN)
            if amount <= 0 or (pm.amount_min is not None and amount < pm.amount_min):
                return None
        term = rng.choice(profile["terms"])
        if pm.term_max_months:
            term = min(term, pm.term_max_months)
        return Job(cust, stage, code, line, amount, term, self.dates(stage, term))

    def write_project(self, job: Job) -> int:
        rng, meta = self.rng, self.meta
        cust, stage, code, line, amount, term, dates = (job.customer, job.stage, job.product, job.line, job.amount,
                                                        job.term, job.dates)
        product = meta.products[code]
        self.ensure(cust, dates["applied"] - dt.timedelta(days=rng.randint(7, 40)))
        manager = cust.manager or (rng.choice(self.staff.managers) if self.staff.managers else None)
        n = self.serial()
        region = cust.region
        year = dates["start"].year
        data = {
            "name": f"{cust.name}{_project_title(line, cust.kind)}", "product": code, "customer_kind": cust.kind,
            f"{cust.kind}_customer": cust.id, "amount": amount, "term_months": term, "start_date": dates["start"],
            "fee_rate": self.fee_rate(product, line, amount),
            "source_channel": "existing_customer" if cust.projects else rng.choice(
                ["bank_referral", "bank_referral", "government", "agent", "walk_in"]),
            # the B角 is a colleague of the same department; the demo's two managers are in
            # different ones (demo.DEPARTMENTS), so each sees only his own projects
            "a_manager": manager.user_id if manager else None, "b_manager": None,
            "status": {"applying": "applying", "reviewing": "applying", "rejected": "applying",
                       "approved": "approved"}.get(stage, "guaranteeing"),
            "risk_class": "normal",
            "counter_guarantees": self.counter_guarantees(product, amount, cust, dates["applied"],
                                                          application=stage in ("applying", "reviewing", "rejected")),
        }
        if line == "loan":
            bank = rng.choice(self.banks.get(region) or self.all_banks)
            partial = rng.random() < 0.2
            data.update(bank=bank, bank_branch=f"{rng.choice(CITY[region][4])}支行",
                        loan_amount=round_to(amount / Decimal("0.8"), 10000) if partial else amount,
                        loan_purpose=rng.choice(LOAN_PURPOSES),
                        loan_contract_no=f"{year}年{CITY[region][2]}借字第{n:04d}号",
                        bank_contract_no=f"{year}年{CITY[region][2]}保字第{n:04d}号",
                        entrustment_contract_no=f"{year}委保字第{n:04d}号")
        elif line == "performance":
            data.update(beneficiary=rng.choice([f"{CITY[region][1]}城市建设投资集团有限公司", f"{CITY[region][2]}地铁集团有限公司",
                                                f"{CITY[region][1]}{rng.choice(CITY[region][4])}城市更新建设有限公司"]),
                        letter_no=f"LYBH{year}{n:05d}", entrustment_contract_no=f"{year}委保字第{n:04d}号")
        else:
            data.update(beneficiary=self.court(region), letter_no=f"SSBQ{year}{n:05d}",
                        entrustment_contract_no=f"{year}委保字第{n:04d}号")
        if stage not in ("applying", "reviewing", "rejected"):
            data["fee_instalments"] = self.fee_plan(product, data, stage, dates)
        if data["status"] == "guaranteeing":
            data["post_checks"] = self.post_checks(product, stage, dates, manager)
        obj = self.create(self.project_entity, data, by=manager, on=dates["applied"])
        cust.projects.append(obj.id)
        self.result.stages[stage] = self.result.stages.get(stage, 0) + 1
        self.life(obj, cust, stage, line, data, dates, manager)
        return obj.id

    def fee_rate(self, product, line: str, amount: Decimal) -> Decimal | None:
        scheme = self.meta.fee_schemes.get(product.fee_scheme or "")
        if scheme is None or scheme.basis == "fixed":
            return None
        if line == "loan":
            return Decimal(self.rng.choice(["0.015000", "0.018000", "0.020000", "0.020000", "0.025000"]))
        if scheme.tiers:
            return next((t.rate for t in scheme.tiers if t.below is None or amount < t.below), scheme.tiers[-1].rate)
        return scheme.rate

    def dates(self, stage: str, term: int) -> dict:
        """The days of the project's story, ending no later than today."""
        rng, today = self.rng, self.today

        def on_day28(d: dt.date) -> dt.date:
            return d.replace(day=min(d.day, 28))

        out: dict = {}
        if stage in ("applying", "reviewing", "rejected"):
            applied = self.day(2, 25) if stage != "rejected" else self.day(40, 300)
            start = on_day28(applied + dt.timedelta(days=rng.randint(25, 50)))
        elif stage == "approved":
            applied = self.day(20, 45)
            start = on_day28(today + dt.timedelta(days=rng.randint(3, 20)))
        elif stage == "guaranteeing":
            due = on_day28(today + dt.timedelta(days=rng.randint(1, 30) if rng.random() < 0.15
                                                else rng.randint(31, max(32, term * 30 - 20))))
            start = fn_add_months(due, -term)
            if start > today - dt.timedelta(days=5):
                start = on_day28(today - dt.timedelta(days=rng.randint(5, 30)))
            applied = start - dt.timedelta(days=rng.randint(20, 45))
        elif stage == "released":
            if rng.random() < 0.7:                             # at maturity
                due = on_day28(self.day(10, 540))
                start = fn_add_months(due, -term)
                out["released"] = min(due + dt.timedelta(days=rng.randint(0, 7)), today - dt.timedelta(days=1))
                out["release_kind"] = "normal"
            else:                                              # repaid early
                out["released"] = self.day(10, 400)
                start = on_day28(out["released"] - dt.timedelta(days=rng.randint(90, term * 30 - 20 if term > 4 else 100)))
                out["release_kind"] = "early"
            applied = start - dt.timedelta(days=rng.randint(20, 45))
        else:                                                  # overdue, compensated, written off
            days = {"overdue": rng.choice([8, 20, 45, 75, 120, 200, 300, 420]),
                    "compensated": rng.randint(120, 700), "written_off": rng.randint(800, 1100)}[stage]
            overdue = on_day28(today - dt.timedelta(days=days))
            if rng.random() < 0.65 or term <= 6:               # at maturity
                due = overdue
            else:                                              # an instalment missed mid-term
                due = on_day28(overdue + dt.timedelta(days=rng.randint(30, 150)))
            start = fn_add_months(due, -term)
            applied = start - dt.timedelta(days=rng.randint(20, 45))
            out["overdue"] = overdue
            if stage != "overdue":
                out["compensated"] = min(overdue + dt.timedelta(days=rng.randint(30, 95)), today - dt.timedelta(days=20))
            if stage == "written_off":
                out["written_off"] = self.day(60, 300)
        out.update(applied=applied, start=start, due=fn_add_months(start, term),
                   approved=max(applied + dt.timedelta(days=7), start - dt.timedelta(days=rng.randint(3, 12))))
        out["approved"] = min(out["approved"], today - dt.timedelta(days=1))
        return out

    def counter_guarantees(self, product, amount: Decimal, cust: Customer, on: dt.date, *,
                           application: bool) -> list[dict]:
        """Counter-guarantees whose coverage lands around the product's minimum (some short of it)."""
        rng = self.rng
        kinds = self.meta.counter_guarantee_kinds
        allowed = [k for k in product.counter_guarantees if k in kinds] or list(kinds)
        minimum = product.min_coverage if product.min_coverage is not None else Decimal(1)
        factors = [0.75, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3, 1.5] if application else \
            [1.0, 1.02, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 1.8] * 6 + [0.9]       # approved: short only if revalued since
        target = amount * minimum * Decimal(str(rng.choice(factors)))
        rows = []
        region = cust.region
        primary = next((k for k in ("mortgage", "pledge", "earnest") if k in allowed), None)
        if primary == "mortgage" and rng.random() < 0.35 and "pledge" in allowed:
            primary = "pledge"
        if primary == "earnest" and "pledge" in allowed and rng.random() < 0.5:
            primary = "pledge"
        surety = "surety" in allowed
        share = Decimal(str(rng.uniform(0.65, 0.9))) if surety else Decimal(1)
        if primary:
            rows.append(self.collateral(primary, target * share, cust, on))
        if surety:
            guarantor = person_name(self.rng)
            discount = kinds["surety"].default_discount
            capacity = ceil_to(target * (1 - share) / discount if discount else amount, 10000) or Decimal(100000)
            rows.append({"kind": "surety", "guarantor_kind": "person", "guarantor_name": guarantor,
                         "guarantor_id_type": "resident_id", "guarantor_id_no": make_resident_id(rng, region, self._birth(), rng.random() < 0.7),
                         "guarantor_net_assets": capacity + Decimal(rng.randint(0, 50)) * WAN,
                         "guarantor_contingent_liabilities": Decimal(rng.randint(0, 50)) * WAN,
                         "appraised_value": capacity,
                         "description": "实际控制人及其配偶提供个人无限连带责任保证" if cust.kind == "corporate" else "配偶提供连带责任保证"})
            if cust.group is not None and cust.kind == "corporate" and rng.random() < 0.5:
                rows.append({"kind": "surety", "guarantor_kind": "company", "guarantor_name": "关联企业",
                             "appraised_value": round_to(amount * Decimal("0.5"), 10000),
                             "description": "集团内关联企业提供连带责任保证"})
        if "credit" in allowed and rng.random() < 0.1:
            rows.append({"kind": "credit", "description": "企业主要股东出具承诺函"})
        return rows

    def collateral(self, kind: str, covered: Decimal, cust: Customer, on: dt.date) -> dict:
        rng = self.rng
        km = self.meta.counter_guarantee_kinds[kind]
        region = cust.region
        if kind == "mortgage":
            asset = rng.choice(["real_estate", "real_estate", "real_estate", "land_use_right", "equipment"])
        elif kind == "pledge":
            asset = rng.choice(["deposit", "equity", "receivable", "securities"])
        elif kind == "lien":
            asset = "goods"
        else:
            asset = None
        discount = km.discount(asset) or Decimal("0.5")
        value = ceil_to(covered / discount, 10000) or Decimal(100000)
        row = {"kind": kind, "asset_kind": asset, "appraised_value": value}
        if kind in ("mortgage", "pledge"):
            row.update(owner=cust.name, appraised_on=on - dt.timedelta(days=rng.randint(3, 30)),
                       registered_on=on + dt.timedelta(days=rng.randint(10, 30)),
                       appraiser=f"{CITY[region][2]}{rng.choice(NAME_WORDS)}资产评估有限公司")
        if kind == "mortgage":
            row.update(rank=1 if rng.random() < 0.85 else 2, location=self.address(region),
                       area_sqm=Decimal(rng.randint(90, 8000)),
                       certificate_no=f"{CITY[region][3]}（{on.year - rng.randint(1, 8)}）{CITY[region][2]}市"
                                      f"不动产权第{rng.randint(1000000, 9999999)}号",
                       description={"real_estate": "厂房及办公楼", "land_use_right": "工业用地土地使用权",
                                    "equipment": "生产设备一批"}.get(asset))
        elif kind == "pledge":
            row.update(certificate_no=f"ZY{on.year}{rng.randint(100000, 999999)}",
                       share_percent=Decimal(rng.choice(["0.300000", "0.510000", "1.000000"]))
                       if asset == "equity" else None,
                       description={"deposit": "保证金存单质押", "equity": "股东持有的本企业股权质押",
                                    "receivable": "对优质客户的应收账款质押", "securities": "上市公司股票质押"}.get(asset))
        elif kind == "earnest":
            row.update(description="缴存反担保定金")
        return row

    def fee_plan(self, product, data: dict, stage: str, dates: dict) -> list[dict]:
        """The plan from the product's schemes; what came in, what was waived, as of today."""
        from danbao.engines.fees import FeeError, schedule_lines
        try:
            lines = schedule_lines(product, self.meta, data["amount"], data["term_months"], dates["start"],
                                   rate=data.get("fee_rate"))
        except FeeError:
            return []
        stop = dates.get("overdue")
        rows = []
        for line in lines:
            row = dict(line)
            due = line["due_on"]
            if line["kind"] in ("review_fee", "deposit"):
                paid_on = dates["approved"] + dt.timedelta(days=self.rng.randint(0, 2))
                if stage == "approved" and line["kind"] == "deposit" and self.rng.random() < 0.5:
                    paid_on = None
            elif stage == "approved":
                paid_on = None
            elif stop is not None and due >= stop - dt.timedelta(days=5):
                paid_on = None                                     # nothing came in after the default
            elif stage == "released" and due > dates["released"]:
                paid_on = None
                row["waived_amount"] = line["amount"]              # released early: the rest is waived
            elif due > self.today:
                paid_on = None
            else:
                late = self.rng.random() < 0.06 and due > self.today - dt.timedelta(days=60)
                paid_on = None if late else min(due + dt.timedelta(days=self.rng.randint(0, 6)), self.today)
            if paid_on is not None:
                row.update(paid_amount=line["amount"], paid_on=min(paid_on, self.today))
            elif stage == "written_off":
                row["waived_amount"] = line["amount"]
            rows.append(row)
        return rows

    def post_checks(self, product, stage: str, dates: dict, manager: Actor | None) -> list[dict]:
        """Rounds every product cycle from the start until the project ended (or today); the
        latest round of some projects in force is not done yet (a check overdue)."""
        rng = self.rng
        every = product.check_every_months or 0
        if not every:
            return []
        end = min(self.today, dates.get("released") or dates.get("compensated") or self.today)
        rows, k = [], 1
        while (planned := fn_add_months(dates["start"], every * k)) <= end and k < 40:
            done = planned + dt.timedelta(days=rng.randint(-5, 12))
            bad = dates.get("overdue")
            conclusion = "normal"
            if bad and planned > bad - dt.timedelta(days=120):
                conclusion = "risk" if planned >= bad else "attention"
            elif rng.random() < 0.08:
                conclusion = "attention"
            rows.append({"round_no": k, "planned_on": planned, "done_on": min(done, self.today),
                         "checker": manager.user_id if manager else None,
                         "method": rng.choice(["site_visit", "site_visit", "phone", "document", "interview"]),
                         "findings": rng.choice(CHECK_FINDINGS[conclusion]), "conclusion": conclusion})
            k += 1
        if rows and stage == "guaranteeing" and rows[-1]["planned_on"] > self.today - dt.timedelta(days=40) \
                and rng.random() < 0.3:
            rows[-1].update(done_on=None, findings=None, conclusion=None, method=None)     # not done yet
        return rows

    # -- what happened after ---------------------------------------------------------
    def life(self, obj, cust: Customer, stage: str, line: str, data: dict, dates: dict, manager: Actor | None) -> None:
        """The project's later steps: status changes and their ledger entries, each on its day."""
        entity, risk = self.project_entity, self.staff.risk or manager
        pid = obj.id
        if stage == "reviewing":
            self.result.submit.append(pid)
            return
        if stage == "rejected":
            self.update(entity, obj, {"status": "rejected"}, by=risk, on=dates["applied"] + dt.timedelta(days=12))
            return
        if stage == "applying":
            return
        plan = data.get("fee_instalments", [])
        for row in plan:
            if row["kind"] in ("review_fee", "deposit") and row.get("paid_on"):
                self.book(pid, manager, row["kind"] + "_received", row["amount"], row["paid_on"],
                          "收到评审费" if row["kind"] == "review_fee" else "收到保证金")
        if stage == "approved":
            return
        self.book(pid, manager, "underwriting", data["amount"], dates["start"], "签订保证合同，承保")
        if line == "loan":
            self.book(pid, manager, "loan_disbursed", data["loan_amount"], dates["start"],
                      f"银行放款，借款合同 {data['loan_contract_no']}")
        fees = [r for r in plan if r["kind"] == "guarantee_fee" and r.get("paid_on")]
        for i, row in enumerate(fees):
            recent = row["paid_on"] > self.today - dt.timedelta(days=25) and stage == "guaranteeing"
            leave = self.rng.choice(["made", "checked"]) if recent and self.rng.random() < 0.7 else None
            mistake = None
            if i == 0 and len(fees) > 1 and stage == "guaranteeing" and len(self._mistakes) < 2:
                mistake = ("typo", "duplicate")[len(self._mistakes)]
                self._mistakes.append(pid)
            self.book(pid, manager, "guarantee_fee_received", row["amount"], row["paid_on"],
                      f"收到第 {i + 1} 期担保费", leave=leave, mistake=mistake)
        if stage == "guaranteeing":
            return
        if stage == "released":
            if line == "loan":
                self.book(pid, manager, "loan_repaid", data["loan_amount"], dates["released"] - dt.timedelta(days=1),
                          "借款人归还全部贷款本金")
            obj = self.update(entity, obj, {"status": "released", "released_on": dates["released"],
                                            "release_kind": dates["release_kind"],
                                            "release_note": "借款人已结清贷款，银行出具解除担保责任通知书"
                                            if line == "loan" else "受益人确认担保责任解除"},
                              by=manager, on=dates["released"])
            self.book(pid, manager, "release", data["amount"], dates["released"], "解除担保责任")
            deposit = sum((r["paid_amount"] for r in plan if r["kind"] == "deposit" and r.get("paid_on")), Decimal(0))
            if deposit:
                self.book(pid, manager, "deposit_refunded", deposit,
                          min(dates["released"] + dt.timedelta(days=self.rng.randint(1, 5)), self.today), "解保后退还保证金")
            return
        # overdue, compensated, written off
        from danbao.engines.business import class_by_days
        overdue = dates["overdue"]
        days = (self.today - overdue).days
        klass = class_by_days(self.meta, days)
        owed = round_to(data["amount"] * Decimal(str(self.rng.uniform(0.6, 1.0))), 1000)
        obj = self.update(entity, obj, {"status": "overdue", "overdue_since": overdue, "overdue_amount": owed,
                                        "risk_class": klass,
                                        "risk_class_reason": f"逾期 {days} 天，按公司五级分类政策调整"
                                        if klass != "normal" else None},
                          by=risk, on=min(overdue + dt.timedelta(days=3), self.today))
        if stage == "overdue":
            return
        paid_on = dates["compensated"]
        interest = min(round_to(owed * Decimal(str(self.rng.uniform(0.01, 0.04))), 1), data["amount"] - owed)
        compensation = owed + interest
        region = CITY[cust.region]
        recoveries, preservations = self.recoveries(compensation, paid_on, stage, region[0], dates)
        bank_notice = f"{region[2]}代偿通知〔{paid_on.year}〕第{self.serial():03d}号"
        self.book(pid, manager, "compensation_paid", compensation, paid_on, f"根据银行代偿通知书 {bank_notice} 代偿")
        if line == "loan" and data.get("loan_amount"):
            repaid = data["loan_amount"] - owed
            if repaid > 0:
                self.book(pid, manager, "loan_repaid", repaid, overdue - dt.timedelta(days=1), "借款人逾期前已还部分本金")
            self.book(pid, manager, "loan_repaid", owed, paid_on, "本公司代偿结清银行贷款本金")
        outstanding = self.ledger.balances(pid)["guarantee_outstanding"] if self.ledger else Decimal(0)
        if outstanding > 0:                         # the liability ends with the compensation
            self.book(pid, manager, "release", outstanding, paid_on, "代偿后解除担保责任")
        obj = self.update(entity, obj, {
            "status": "compensated", "released_on": paid_on, "release_kind": "by_compensation",
            "compensations": [{"paid_on": paid_on, "amount": compensation, "principal": owed, "interest": interest,
                               "bank_notice_no": bank_notice, "note": "借款人逾期未还，银行要求履行保证责任"}],
            "recoveries": recoveries, "preservations": preservations,
        }, by=risk, on=paid_on)
        for row in recoveries:
            if row["received"] and (stage != "written_off" or row["acted_on"] <= dates["written_off"]):
                self.book(pid, manager, "recovery_received", row["received"], row["acted_on"],
                          f"追偿收回（{_ACTION_WORDS[row['action']]}）")
        if stage != "written_off":
            return
        before = sum((r["received"] for r in recoveries if r["acted_on"] <= dates["written_off"]), Decimal(0))
        loss = compensation - before
        if loss > 0:
            self.book(pid, manager, "write_off", loss, dates["written_off"], "经董事会批准核销代偿损失")
        self.update(entity, obj, {"status": "written_off", "written_off_on": dates["written_off"],
                                  "write_off_amount": loss, "risk_class": "loss",
                                  "risk_class_reason": "已核销，列入损失类",
                                  "write_off_reason": "债务人无可供执行财产，法院裁定终结本次执行，追偿无望"},
                    by=risk, on=dates["written_off"])
        for row in recoveries:
            if row["received"] and row["acted_on"] > dates["written_off"]:
                self.book(pid, manager, "recovery_received", row["received"], row["acted_on"], "核销后收回")

    def recoveries(self, compensation: Decimal, paid_on: dt.date, stage: str, region: str, dates: dict):
        """Recovery actions after paying the bank (with what each brought in) and the assets preserved."""
        rng = self.rng
        share = Decimal(str(rng.uniform(0.05, 0.3) if stage == "written_off" else rng.uniform(0.0, 0.85)))
        total = round_to(compensation * share, 100)
        span = max((self.today - paid_on).days - 5, 10)
        steps = [("collection", 0.1, "向债务人及反担保人发出催收函，上门催收"),
                 ("lawsuit", 0.25, "向法院提起追偿诉讼，申请财产保全"),
                 ("enforcement", 0.55, "判决生效后申请强制执行"),
                 ("auction", 0.8, "抵押房产经司法拍卖成交"),
                 ("settlement", 0.95, "与债务人达成分期还款和解协议")]
        rows = []
        left = total
        for action, at, text in steps:
            if rng.random() < 0.3 and action not in ("collection", "lawsuit"):
                continue
            on = paid_on + dt.timedelta(days=int(span * at))
            if on > self.today:
                break
            got = Decimal(0)
            if action in ("collection", "auction", "settlement", "enforcement") and left > 0:
                got = left if action in ("auction", "settlement") else round_to(left * Decimal("0.2"), 100)
                left -= got
            cost = round_to(compensation * Decimal("0.008"), 100) if action in ("lawsuit", "auction") else Decimal(0)
            rows.append({"acted_on": on, "action": action, "description": text, "cost": cost or None,
                         "received": got})
        if stage == "written_off" and rows:          # a last sum comes in after the write-off (核销后收回)
            late = min(dates["written_off"] + dt.timedelta(days=rng.randint(10, 50)), self.today)
            rows.append({"acted_on": late, "action": "enforcement", "description": "恢复执行，划扣债务人新发现的存款",
                         "cost": None, "received": round_to(compensation * Decimal("0.02"), 100) or Decimal(100)})
        preservations = []
        sued = next((r for r in rows if r["action"] == "lawsuit"), None)
        if sued:
            start = sued["acted_on"] + dt.timedelta(days=rng.randint(3, 15))
            kind = rng.choice(["seal", "freeze"])
            until = fn_add_months(start, 36 if kind == "seal" else 12)
            if until < self.today and stage != "written_off":          # renewed before it lapsed
                until = self.today + dt.timedelta(days=rng.randint(10, 300))
            if stage != "written_off" and not self._expiring:        # one lapses within the month: renew it!
                until = self.today + dt.timedelta(days=rng.randint(10, 25))
                self._expiring = True
            preservations.append({"kind": kind, "court": self.court(region),
                                  "case_no": self.case_no(region, start.year, "执保"),
                                  "asset_description": "被申请人名下房产一套" if kind == "seal" else "被申请人银行存款",
                                  "value": round_to(compensation * Decimal("0.6"), 10000) or Decimal(10000),
                                  "from_on": start, "until_on": until,
                                  "status": "expired" if until < self.today else "active"})
        return rows, preservations

    # -- the ledger ------------------------------------------------------------------
    def book(self, project_id: int, maker: Actor | None, kind: str, amount: Decimal, on: dt.date, note: str, *,
             leave: str | None = None, mistake: str | None = None) -> int | None:
        """One entry, made by the project's A角, checked by the risk officer and confirmed by
        finance on its day; ``leave`` stops it at ``made`` or ``checked`` (waiting in someone's
        list). ``mistake``: ``typo`` — a wrong amount is made first and sent back by the checker;
        ``duplicate`` — the receipt is booked twice and the copy reversed."""
        if self.ledger is None or kind not in self.meta.ledger_kinds or amount is None or amount <= 0:
            return None
        on = min(on, self.today)
        amount = money(amount)
        if mistake == "typo":
            wrong = self.make(project_id, kind, amount * 10, maker, on, note)
            self.ledger.reject(wrong, self.staff.risk, "金额与收款凭证不符（多录一位），请核对后重新录入")
        entry = self.make(project_id, kind, amount, maker, on, note)
        if leave != "made":
            self.ledger_clock.at(on, 14, self.rng.randint(0, 59))
            self.ledger.check(entry, self.staff.risk)
            if leave != "checked":
                self.ledger_clock.at(on, 16, self.rng.randint(0, 59))
                self.ledger.confirm(entry, self.staff.finance)
        if mistake == "duplicate":
            copy = self.book(project_id, maker, kind, amount, on, note)
            later = min(on + dt.timedelta(days=3), self.today)
            self.ledger_clock.at(later, 9, 30)
            reversal = self.ledger.reverse(copy, maker, "同一笔担保费重复登记，冲销")
            self.result.entries += 1
            self.ledger_clock.at(later, 11, 0)
            self.ledger.check(reversal, self.staff.risk)
            self.ledger_clock.at(later, 15, 0)
            self.ledger.confirm(reversal, self.staff.finance)
        return entry

    def make(self, project_id: int, kind: str, amount: Decimal, maker: Actor, on: dt.date, note: str) -> int:
        self.ledger_clock.at(on, 10, self.rng.randint(0, 59))
        self.result.entries += 1
        return self.ledger.make(project_id, kind, amount, maker, booked_on=on, note=note)


_ACTION_WORDS = {"collection": "催收", "negotiation": "协商", "lawsuit": "诉讼", "enforcement": "执行",
                 "auction": "拍卖", "settlement": "和解"}


def _project_title(line: str, kind: str) -> str:
    if line == "loan":
        return "流动资金贷款担保" if kind == "corporate" else "个人经营性贷款担保"
    return {"performance": "工程履约保函", "litigation": "诉讼财产保全担保"}.get(line, "担保项目")


# -- the whole book -------------------------------------------------------------------
IN_FORCE = ("guaranteeing", "overdue")
#: the first related group's projects in force share this much of the group limit (near it);
#: one company's project is as near the single-customer limit, and an application of the same
#: company would breach it (the application's limit flag); everyone else stays below HEADROOM
NEAR, GROUP_SPLIT, OVER, HEADROOM = Decimal("0.95"), (Decimal("0.42"), Decimal("0.33"), Decimal("0.25")), \
    Decimal("0.12"), Decimal("0.8")


def build_portfolio(session, models, meta, size: int, *, staff: Staff, banks: list[tuple[int, str, str]],
                    seed: int = 20261129, today: dt.date | None = None) -> Result:
    """Customers and ``size`` projects at every stage (see the module docstring)."""
    from danbao.engines.regulatory import Limits
    today = today or dt.date.today()
    pf = Portfolio(session, models, meta, staff, banks, seed=seed, today=today)
    rng = pf.rng
    companies, individuals = max(3, size // 2), max(2, size // 5)
    groups = [3 if g % 2 == 0 else 2 for g in range(companies // 12 if companies >= 12 else int(companies >= 6))]
    customers = pf.plan_customers(companies, individuals, groups)
    pf.result.customers = customers
    if pf.project_entity is None:
        for cust in customers:
            pf.ensure(cust, pf.day(30, 400))
        return pf.result
    lim = Limits.of(meta)
    single, group_limit = lim.net_assets * lim.single, lim.net_assets * lim.group
    pool = stage_plan(size)
    jobs: list[Job] = []
    exposure: dict[object, Decimal] = {}                # customer or ("group", g) -> planned amount in force

    def headroom(cust: Customer) -> Decimal | None:
        if not lim.net_assets:
            return None
        room = single * HEADROOM - exposure.get(id(cust), 0)
        if cust.group is not None:
            room = min(room, group_limit * HEADROOM - exposure.get(("group", cust.group), 0))
        return room

    def add(job: Job) -> None:
        pool.remove(job.stage)
        jobs.append(job)
        if job.stage in IN_FORCE:
            exposure[id(job.customer)] = exposure.get(id(job.customer), 0) + job.amount
            if job.customer.group is not None:
                key = ("group", job.customer.group)
                exposure[key] = exposure.get(key, 0) + job.amount

    def take(cust: Customer, stage: str, **kw) -> None:
        if stage in pool and (job := pf.plan_project(cust, stage, **kw)) is not None:
            add(job)

    def wan(value: Decimal) -> int:
        return int(value / WAN / 10) * 10

    held = set()
    loan = next((code for code, p in meta.products.items() if p.business_line == "loan" and p.active), None)
    if size >= 12 and lim.net_assets:
        first = [c for c in customers if c.group == 0]
        for cust, share in zip(first, GROUP_SPLIT):
            take(cust, "guaranteeing", amount_wan=wan(group_limit * NEAR * share), product=loan)
        big = next((c for c in customers if c.kind == "corporate" and c.group is None and not c.dishonest), None)
        if big is not None:
            take(big, "guaranteeing", amount_wan=wan(single * NEAR), product=loan)
            take(big, "applying", amount_wan=wan(single * OVER), product=loan)
            held.add(id(big))
        held.update(id(c) for c in first)
    for cust in customers:
        if cust.dishonest:
            take(cust, "overdue")
            held.add(id(cust))
    rest = list(pool)
    rng.shuffle(rest)
    fresh = [c for c in customers if id(c) not in held]
    rng.shuffle(fresh)
    repeat = [c for c in fresh if c.kind == "corporate"] * 3 + [c for c in fresh if c.kind == "individual"]
    for stage in rest:
        for attempt in range(10):
            cust = fresh.pop() if fresh and attempt == 0 else rng.choice(repeat or customers)
            room = headroom(cust) if stage in IN_FORCE else None
            job = pf.plan_project(cust, stage, cap=room)
            if job is not None:
                add(job)
                break
    jobs.sort(key=lambda j: (j.dates["applied"], j.stage))
    for job in jobs:
        pf.write_project(job)
    for cust in customers:                          # customers without a project (a tiny book)
        pf.ensure(cust, pf.day(30, 400))
    return pf.result
