"""Planned schema migrations: nothing is lost, nothing foreign is touched.

Runs on SQLite by default and on PostgreSQL with DANBAO_TEST_DATABASE_URL.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from danbao.model import ddl
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import (BLOCKED, DESTRUCTIVE, SAFE, MigrationRefused, apply_migration,
                                  ensure_schema, plan_migration, schema_fingerprint)
from metafactory import entity, field, index, meta

from conftest import is_postgres


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def build(*entities, version="1"):
    return build_models(meta(*entities, version=version))


def rows(engine, table: str, order="id") -> list[dict]:
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}"))]


def schema_of(engine) -> dict:
    """Tables, columns with types, and index names: what a failed apply must not change."""
    insp = sa.inspect(engine)
    out = {}
    for t in sorted(insp.get_table_names()):
        cols = tuple((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t))
        ixs = tuple(sorted((i["name"], bool(i["unique"])) for i in insp.get_indexes(t)))
        out[t] = (cols, ixs)
    return out


def state_rows(engine) -> list[dict]:
    return rows(engine, "danbao_schema_state")


def kinds(plan) -> list[tuple]:
    return [(op.kind, op.table, op.column, op.safety) for op in plan]


def sort(items):
    return sorted(items, key=str)


# -- the pack we evolve -------------------------------------------------------

def v1_entities():
    bank = entity("bank", field("name", "string", max_length=100, unique=True),
                  field("branch", "string", max_length=100))
    customer = entity(
        "corporate_customer",
        field("name", "string", max_length=200, required=True),
        field("uscc", "string", max_length=18),
        field("registered_capital", "money"),
        field("fee_rate", "rate"),
        field("debt_ratio", "decimal", precision=8, scale=4),
        field("employees", "integer"),
        field("business_scope", "text"),
        field("high_tech", "boolean"),
        field("established_on", "date"),
        field("last_visit_at", "datetime"),
        field("enterprise_size", "enum", options=("large", "small")),
        field("industry", "code", codelist="industry"),
        field("basic_bank", "reference", target="bank"),
        field("shareholders", "children", target="shareholder"),
        field("documents", "attachments", accept=("document",)),
    )
    shareholder = entity("shareholder", field("name", "string", max_length=50),
                         field("share", "rate"), field("amount", "money"), parent="corporate_customer")
    return bank, customer, shareholder


CUSTOMERS = [
    dict(name="南京紫金科技有限公司", uscc="91320100MA1XXXXX1A", registered_capital=Decimal("5000000.00"),
         fee_rate=Decimal("0.012500"), debt_ratio=Decimal("65.4321"), employees=120,
         business_scope="软件开发；信息技术咨询服务。", high_tech=True, established_on=dt.date(2015, 6, 30),
         last_visit_at=dt.datetime(2024, 3, 15, 14, 30, 5), enterprise_size="small", industry="I65"),
    dict(name="苏州工业园区担保测试企业", uscc="91320594MA1YYYYY2B", registered_capital=Decimal("9999999999999.99"),
         fee_rate=Decimal("0.000001"), debt_ratio=Decimal("-0.0001"), employees=9_000_000_000_000,
         business_scope="制造业 🏭 \"quotes\" and 'apostrophes'", high_tech=False, established_on=dt.date(2000, 2, 29),
         last_visit_at=dt.datetime(2023, 12, 31, 23, 59, 59), enterprise_size="large", industry="C39"),
    dict(name="无锡空值企业", uscc=None, registered_capital=None, fee_rate=None, debt_ratio=None, employees=None,
         business_scope=None, high_tech=None, established_on=None, last_visit_at=None,
         enterprise_size=None, industry=None),
]
SHAREHOLDERS = [  # (customer index, values)
    (0, dict(name="张三", share=Decimal("0.600000"), amount=Decimal("3000000.00"))),
    (0, dict(name="李四", share=Decimal("0.400000"), amount=Decimal("2000000.01"))),
    (1, dict(name="王五", share=Decimal("1.000000"), amount=Decimal("0.01"))),
]


def seed_v1(engine, models):
    Bank, Customer, Holder = (models.cls(n) for n in ("bank", "corporate_customer", "shareholder"))
    with Session(engine) as s:
        banks = [Bank(name="中国银行", branch="南京分行"), Bank(name="江苏银行", branch=None)]
        customers = [Customer(**values) for values in CUSTOMERS]
        customers[0].basic_bank = banks[0]
        customers[1].basic_bank = banks[1]
        for i, values in SHAREHOLDERS:
            customers[i].shareholders.append(Holder(**values))
        s.add_all(banks + customers)
        s.commit()


def assert_values(engine, table, expected: list[dict]):
    """Every expected row is there, every listed value exactly (Decimal == Decimal)."""
    got = rows(engine, table)
    assert len(got) == len(expected), table
    for row, want in zip(got, expected):
        for key, value in want.items():
            have = row[key]
            if isinstance(value, Decimal):
                assert isinstance(have, (Decimal, float, int)), (table, key, have)
                have = Decimal(str(have)).quantize(value) if not isinstance(have, Decimal) else have
            if isinstance(value, bool) and have is not None:
                have = bool(have)
            if isinstance(value, dt.datetime) and isinstance(have, str):
                have = dt.datetime.fromisoformat(have)
            if isinstance(value, dt.date) and isinstance(have, str):
                have = dt.date.fromisoformat(have)
            assert have == value, (table, key, have, value)


def assert_orm_values(engine, models, entity_name, expected: list[dict]):
    """The same, through the ORM's types (money comes back as Decimal)."""
    cls = models.cls(entity_name)
    with Session(engine) as s:
        objs = s.scalars(sa.select(cls).order_by(cls.id)).all()
        assert len(objs) == len(expected)
        for obj, want in zip(objs, expected):
            for key, value in want.items():
                have = getattr(obj, key)
                assert have == value and type(have) is type(value), (entity_name, key, have, value)


def expect_customers(rename=None, drop=()):
    out = []
    for values in CUSTOMERS:
        v = dict(values)
        if rename:
            v[rename[1]] = v.pop(rename[0])
        for key in drop:
            v.pop(key)
        out.append(v)
    return out


# -- THE test: five versions, rows in it --------------------------------------

def test_pack_evolves_through_five_versions_without_losing_a_value(engine, tmp_path):
    bank, customer, shareholder = v1_entities()

    # v1: create everything
    m1 = build(bank, customer, shareholder, version="1")
    plan = plan_migration(engine, m1)
    assert {op.kind for op in plan} == {"create_system_table", "create_table"}
    assert all(op.safety == SAFE for op in plan)
    apply_migration(engine, plan)
    seed_v1(engine, m1)
    holders = [v for _, v in SHAREHOLDERS]
    assert_orm_values(engine, m1, "corporate_customer", expect_customers())
    assert_orm_values(engine, m1, "shareholder", holders)
    assert plan_migration(engine, m1).is_empty

    # v2: new fields, an index, a composite index, a new entity
    customer2 = entity(customer.name, *customer.fields,
                       field("park", "string", max_length=100, index=True),
                       field("contact", "text"),
                       indexes=[index("industry", "enterprise_size")])
    project = entity("guarantee_project", field("project_no", "string", max_length=30, unique=True),
                     field("customer", "reference", target="corporate_customer"),
                     field("amount", "money"))
    m2 = build(bank, customer2, shareholder, project, version="2")
    plan = plan_migration(engine, m2)
    assert sort(kinds(plan)) == sort([
        ("create_table", "guarantee_project", None, SAFE),
        ("add_column", "corporate_customer", "park", SAFE),
        ("add_column", "corporate_customer", "contact", SAFE),
        ("add_index", "corporate_customer", "park", SAFE),
        ("add_index", "corporate_customer", None, SAFE),
    ])
    assert "[safe] add column corporate_customer.park VARCHAR(100)" in plan.describe("en")
    result = apply_migration(engine, plan)
    assert len(result.applied) == 5 and result.backup is None
    assert_orm_values(engine, m2, "corporate_customer", expect_customers())
    assert_orm_values(engine, m2, "shareholder", holders)
    assert plan_migration(engine, m2).is_empty
    with Session(engine) as s:
        s.add(m2.cls("guarantee_project")(project_no="DB2024-001", customer_id=1, amount=Decimal("1500000.50")))
        for c in s.scalars(sa.select(m2.cls("corporate_customer"))):
            c.contact = f"联系人{c.id}"
            c.park = "江宁开发区" if c.id == 1 else None
        s.commit()
    expected2 = expect_customers()
    for i, v in enumerate(expected2, 1):
        v.update(contact=f"联系人{i}", park="江宁开发区" if i == 1 else None)
    project_rows = [dict(project_no="DB2024-001", customer_id=1, amount=Decimal("1500000.50"))]

    # v3: rename a field and an entity — never a drop
    partner_bank = entity("partner_bank", *bank.fields, renamed_from="bank")
    fields3 = [field("company_name", "string", max_length=200, required=True, renamed_from="name")]
    fields3 += [f if f.name != "basic_bank" else field("basic_bank", "reference", target="partner_bank")
                for f in customer2.fields if f.name != "name"]
    customer3 = entity(customer.name, *fields3, title="company_name",
                       indexes=[index("industry", "enterprise_size")])
    m3 = build(partner_bank, customer3, shareholder, project, version="3")
    plan = plan_migration(engine, m3)
    ops = kinds(plan)
    assert ("rename_table", "partner_bank", None, DESTRUCTIVE) in ops
    assert ("rename_column", "corporate_customer", "company_name", DESTRUCTIVE) in ops
    assert not [op for op in plan if op.kind in ("drop_table", "drop_column", "create_table", "add_column")]
    assert not plan.blocked
    before = schema_of(engine)
    with pytest.raises(MigrationRefused):
        apply_migration(engine, plan)
    assert schema_of(engine) == before
    result = apply_migration(engine, plan, allow_destructive=True, backup_dir=tmp_path / "bak3")
    assert result.backup is not None
    expected3 = [dict(v) for v in expected2]
    for v in expected3:
        v["company_name"] = v.pop("name")
    assert_orm_values(engine, m3, "corporate_customer", expected3)
    assert_orm_values(engine, m3, "shareholder", holders)
    assert_orm_values(engine, m3, "guarantee_project", project_rows)
    assert [r["name"] for r in rows(engine, "partner_bank")] == ["中国银行", "江苏银行"]
    assert "bank" not in sa.inspect(engine).get_table_names()
    with Session(engine) as s:  # relationships follow the renames
        c1 = s.get(m3.cls("corporate_customer"), 1)
        assert c1.basic_bank.name == "中国银行" and [h.name for h in c1.shareholders] == ["张三", "李四"]
    assert plan_migration(engine, m3).is_empty

    # v4: widen a string, add a unique on a column without duplicates
    fields4 = [field("park", "string", max_length=300, index=True) if f.name == "park"
               else field("uscc", "string", max_length=18, unique=True) if f.name == "uscc"
               else f for f in customer3.fields]
    customer4 = entity(customer.name, *fields4, title="company_name",
                       indexes=[index("industry", "enterprise_size")])
    m4 = build(partner_bank, customer4, shareholder, project, version="4")
    plan = plan_migration(engine, m4)
    assert sort(kinds(plan)) == sort([
        ("alter_type", "corporate_customer", "park", SAFE),
        ("add_unique", "corporate_customer", "uscc", SAFE),
    ])
    apply_migration(engine, plan)
    assert_orm_values(engine, m4, "corporate_customer", expected3)
    long_park = "园" * 250
    with Session(engine) as s:
        s.get(m4.cls("corporate_customer"), 3).park = long_park
        s.commit()
    expected3[2]["park"] = long_park
    assert_orm_values(engine, m4, "corporate_customer", expected3)
    assert plan_migration(engine, m4).is_empty

    # v5: drop a field (with values) — only with the flag, after a backup
    customer5 = entity(customer.name, *[f for f in customer4.fields if f.name != "contact"],
                       title="company_name", indexes=[index("industry", "enterprise_size")])
    m5 = build(partner_bank, customer5, shareholder, project, version="5")
    plan = plan_migration(engine, m5)
    assert kinds(plan) == [("drop_column", "corporate_customer", "contact", DESTRUCTIVE)]
    assert plan.operations[0].detail["rows"] == 3
    before = schema_of(engine)
    with pytest.raises(MigrationRefused) as refused:
        apply_migration(engine, plan)
    assert "contact" in str(refused.value)
    assert schema_of(engine) == before
    result = apply_migration(engine, plan, allow_destructive=True, backup_dir=tmp_path / "bak5")
    assert "contact" not in {c["name"] for c in sa.inspect(engine).get_columns("corporate_customer")}
    expected5 = [{k: v for k, v in row.items() if k != "contact"} for row in expected3]
    assert_orm_values(engine, m5, "corporate_customer", expected5)
    assert_orm_values(engine, m5, "shareholder", holders)
    assert_orm_values(engine, m5, "guarantee_project", project_rows)
    assert_values(engine, "corporate_customer", expected5)
    assert backed_up_values(engine, result.backup, "corporate_customer", "contact") == ["联系人1", "联系人2", "联系人3"]
    assert plan_migration(engine, m5).is_empty

    # the state table tells the story
    states = state_rows(engine)
    assert [json.loads(r["tables"]) for r in states][-1] == list(m5.entity_tables)
    assert len(states) == 5
    assert "drop column corporate_customer.contact (3 rows have a value)" in json.loads(states[-1]["operations"])
    assert states[-1]["digest"] == schema_fingerprint(m5) and states[-1]["meta_version"] == m5.meta.version


def backed_up_values(engine, backup, table, column) -> list:
    """The values of ``column`` as kept by the backup (file or table)."""
    assert backup is not None
    if engine.dialect.name == "sqlite":
        (path,) = backup.files
        assert path.exists()
        con = sqlite3.connect(str(path))
        try:
            return [r[0] for r in con.execute(f"SELECT {column} FROM {table} ORDER BY id")]
        finally:
            con.close()
    (bak,) = [t for t in backup.tables if t.endswith(table)]
    from_table = [r[column] for r in rows(engine, bak)]
    (dump,) = [p for p in backup.files if p.name.startswith(bak)]
    from_file = [json.loads(line)[column] for line in dump.read_text(encoding="utf-8").splitlines()]
    as_text = [None if v is None else str(v) for v in from_table]
    assert as_text == from_file  # the JSON dump keeps Decimals as exact strings
    return from_table


# -- blocked changes change nothing -------------------------------------------

def _one(name, *fields):
    return build(entity(name, *fields))


def _seed(engine, table, *values: dict):
    reflected = sa.Table(table, sa.MetaData(), autoload_with=engine)  # typed: Decimal binds
    with engine.begin() as c:
        c.execute(reflected.insert(), [dict(v, version=1) for v in values])


def test_narrowing_that_does_not_fit_is_blocked(engine):
    apply_migration(engine, plan_migration(engine, _one("memo", field("title", "string", max_length=200),
                                                        field("ratio", "decimal", precision=18, scale=4),
                                                        field("code", "text"))))
    _seed(engine, "memo", {"title": "长" * 60, "ratio": Decimal("1.2345"), "code": "12"},
          {"title": "短", "ratio": Decimal("2.5000"), "code": "abc"},
          {"title": "很" * 51, "ratio": Decimal("3.10"), "code": None})
    before_schema, before_rows = schema_of(engine), rows(engine, "memo")
    narrowed = _one("memo", field("title", "string", max_length=50),
                    field("ratio", "decimal", precision=18, scale=2),
                    field("code", "integer"))
    plan = plan_migration(engine, narrowed)
    by_col = {op.column: op for op in plan}
    assert {op.safety for op in plan} == {BLOCKED}
    assert by_col["title"].reason.en == "memo.title: 2 rows are longer than 50 characters"
    assert "memo.title" in by_col["title"].reason.zh and "2 行" in by_col["title"].reason.zh
    assert "memo.ratio: 1 rows have more than 2 decimal places" in by_col["ratio"].reason.en
    assert "memo.code: 1 rows hold a value that is not a whole number" in by_col["code"].reason.en
    with pytest.raises(MigrationRefused) as refused:
        apply_migration(engine, plan, allow_destructive=True)
    assert len(refused.value.reasons) == 3
    assert any("memo.title: 2 rows" in r for r in refused.value.reasons)
    assert refused.value.messages("zh")[0].startswith("已阻止")
    assert schema_of(engine) == before_schema and rows(engine, "memo") == before_rows


def test_narrowing_that_fits_is_destructive_and_keeps_data(engine, tmp_path):
    apply_migration(engine, plan_migration(engine, _one("memo", field("title", "string", max_length=200),
                                                        field("ratio", "decimal", precision=18, scale=4),
                                                        field("code", "text"))))
    _seed(engine, "memo", {"title": "担保", "ratio": Decimal("1.2300"), "code": " 42 "},
          {"title": "x" * 50, "ratio": Decimal("-7.5000"), "code": "-7"})
    narrowed = _one("memo", field("title", "string", max_length=50),
                    field("ratio", "decimal", precision=18, scale=2), field("code", "integer"))
    plan = plan_migration(engine, narrowed)
    assert {op.safety for op in plan} == {DESTRUCTIVE}
    apply_migration(engine, plan, allow_destructive=True, backup_dir=tmp_path)
    assert_orm_values(engine, narrowed, "memo", [
        dict(title="担保", ratio=Decimal("1.23"), code=42),
        dict(title="x" * 50, ratio=Decimal("-7.50"), code=-7)])
    assert plan_migration(engine, narrowed).is_empty


def test_incompatible_type_change_blocked_unless_empty(engine):
    apply_migration(engine, plan_migration(engine, _one("memo", field("note", "string"), field("day", "string"))))
    _seed(engine, "memo", {"note": "2024-01-01", "day": None})
    plan = plan_migration(engine, _one("memo", field("note", "date"), field("day", "date")))
    by_col = {op.column: op for op in plan}
    assert by_col["note"].safety == BLOCKED and "1 rows have a value" in by_col["note"].reason.en
    assert by_col["day"].safety == SAFE  # no value to lose


def test_widening_is_safe(engine):
    apply_migration(engine, plan_migration(engine, _one("memo", field("title", "string", max_length=20),
                                                        field("n", "decimal", precision=10, scale=2))))
    _seed(engine, "memo", {"title": "甲乙丙", "n": Decimal("12345678.91")})
    wider = _one("memo", field("title", "text"), field("n", "decimal", precision=14, scale=4))
    plan = plan_migration(engine, wider)
    assert {(op.kind, op.safety) for op in plan} == {("alter_type", SAFE)}
    ensure_schema(engine, wider)
    assert_orm_values(engine, wider, "memo", [dict(title="甲乙丙", n=Decimal("12345678.9100"))])


def test_unique_over_duplicates_is_blocked(engine):
    m = _one("person", field("id_no", "string", max_length=18), field("name", "string"))
    apply_migration(engine, plan_migration(engine, m))
    _seed(engine, "person", {"id_no": "320102199001011234", "name": "甲"},
          {"id_no": "320102199001011234", "name": "乙"}, {"id_no": "320102199001011234", "name": "丙"},
          {"id_no": "110101198001010011", "name": "丁"}, {"id_no": None, "name": "戊"}, {"id_no": None, "name": "己"})
    before = schema_of(engine)
    plan = plan_migration(engine, _one("person", field("id_no", "string", max_length=18, unique=True),
                                       field("name", "string")))
    (op,) = plan.operations
    assert (op.kind, op.safety) == ("add_unique", BLOCKED)
    assert op.reason.en == "person(id_no): 3 rows share 1 duplicated values; cannot be unique"
    with pytest.raises(MigrationRefused):
        apply_migration(engine, plan, allow_destructive=True)
    with pytest.raises(MigrationRefused):
        ensure_schema(engine, plan.models)
    assert schema_of(engine) == before


def test_drop_without_flag_is_refused_and_with_flag_backed_up(engine, tmp_path):
    keep = entity("bank", field("name", "string"))
    gone = entity("old_rating", field("grade", "string"), field("score", "money"))
    m1 = build(keep, gone, entity("note", field("text", "text"), field("secret", "string")))
    apply_migration(engine, plan_migration(engine, m1))
    _seed(engine, "old_rating", {"grade": "AA", "score": Decimal("98.50")}, {"grade": "B", "score": Decimal("60.25")})
    _seed(engine, "note", {"text": "保留", "secret": "机密一"}, {"text": "保留二", "secret": None})
    m2 = build(keep, entity("note", field("text", "text")))
    plan = plan_migration(engine, m2)
    assert kinds(plan) == [("drop_column", "note", "secret", DESTRUCTIVE),
                           ("drop_table", "old_rating", None, DESTRUCTIVE)]
    assert plan.operations[1].describe("en") == "drop table old_rating (2 rows)"
    assert plan.operations[1].describe("zh") == "删除表 old_rating（2 行）"
    before = schema_of(engine)
    with pytest.raises(MigrationRefused) as refused:
        apply_migration(engine, plan)
    assert len(refused.value.reasons) == 2
    with pytest.raises(MigrationRefused):
        ensure_schema(engine, m2)
    assert schema_of(engine) == before
    assert [r["secret"] for r in rows(engine, "note")] == ["机密一", None]

    result = apply_migration(engine, plan, allow_destructive=True, backup_dir=tmp_path / "backups")
    assert "old_rating" not in sa.inspect(engine).get_table_names()
    assert [r["text"] for r in rows(engine, "note")] == ["保留", "保留二"]
    assert backed_up_values(engine, result.backup, "note", "secret") == ["机密一", None]
    scores = backed_up_values(engine, result.backup, "old_rating", "score")
    assert [Decimal(str(s)) for s in scores] == [Decimal("98.50"), Decimal("60.25")]
    assert result.backup.describe()
    assert plan_migration(engine, m2).is_empty


def test_sqlite_backup_defaults_next_to_database(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite file backup")
    apply_migration(engine, plan_migration(engine, _one("memo", field("a", "string"), field("b", "string"))))
    _seed(engine, "memo", {"a": "1", "b": "2"})
    result = apply_migration(engine, plan_migration(engine, _one("memo", field("a", "string"))),
                             allow_destructive=True)
    (path,) = result.backup.files
    assert path.parent.name == "backups" and path.exists()


# -- foreign tables, idempotence, crash safety ---------------------------------

def test_foreign_tables_are_never_touched(engine):
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE ab_user (id INTEGER PRIMARY KEY, username VARCHAR(64) NOT NULL)")
        c.exec_driver_sql("CREATE TABLE legacy_report (id INTEGER PRIMARY KEY, total NUMERIC(10, 2))")
        c.exec_driver_sql("CREATE INDEX ix_ab_user_username ON ab_user (username)")
        c.exec_driver_sql("INSERT INTO ab_user (id, username) VALUES (1, 'admin')")
        c.exec_driver_sql("INSERT INTO legacy_report (id, total) VALUES (1, 10.50)")
    foreign_before = {t: v for t, v in schema_of(engine).items() if t in ("ab_user", "legacy_report")}
    m1 = build(entity("bank", field("name", "string")), entity("temp", field("x", "string")))
    plan = plan_migration(engine, m1)
    assert not [op for op in plan if op.table in ("ab_user", "legacy_report")]
    apply_migration(engine, plan)
    # an entity goes away: only Danbao's own table is proposed for drop
    m2 = build(entity("bank", field("name", "string")))
    plan = plan_migration(engine, m2)
    assert kinds(plan) == [("drop_table", "temp", None, DESTRUCTIVE)]
    apply_migration(engine, plan, allow_destructive=True)
    # an entity whose name is taken by a table Danbao does not manage is blocked
    m3 = build(entity("bank", field("name", "string")), entity("legacy_report", field("total", "money")))
    plan = plan_migration(engine, m3)
    assert kinds(plan) == [("create_table", "legacy_report", None, BLOCKED)]
    assert "not managed by Danbao" in plan.operations[0].reason.en
    assert {t: v for t, v in schema_of(engine).items() if t in ("ab_user", "legacy_report")} == foreign_before
    assert rows(engine, "ab_user") == [{"id": 1, "username": "admin"}]


def test_planning_twice_after_apply_is_empty(engine):
    bank, customer, shareholder = v1_entities()
    models = build(bank, customer, shareholder)
    first = ensure_schema(engine, models)
    assert first.state_id is not None and len(first.applied) == len(models.system) + 3
    assert plan_migration(engine, models).is_empty
    assert plan_migration(engine, build(bank, customer, shareholder)).is_empty
    again = ensure_schema(engine, models)
    assert again.applied == [] and again.state_id is None  # nothing new, no new state row
    assert len(state_rows(engine)) == 1


def test_crash_mid_apply_leaves_schema_unchanged(engine, monkeypatch):
    bank, customer, shareholder = v1_entities()
    m1 = build(bank, customer, shareholder)
    apply_migration(engine, plan_migration(engine, m1))
    seed_v1(engine, m1)
    customer2 = entity(customer.name, *customer.fields, field("park", "string", max_length=100, index=True))
    m2 = build(bank, customer2, shareholder, entity("extra", field("x", "string")))
    plan = plan_migration(engine, m2)
    assert [op.kind for op in plan] == ["create_table", "add_column", "add_index"]
    before, before_rows = schema_of(engine), rows(engine, "corporate_customer")

    def boom(ops, op):
        raise RuntimeError("disk full")

    monkeypatch.setitem(ddl.APPLIERS, "add_index", boom)  # after the table and column exist
    with pytest.raises(RuntimeError, match="disk full"):
        apply_migration(engine, plan)
    assert schema_of(engine) == before
    assert rows(engine, "corporate_customer") == before_rows
    assert len(state_rows(engine)) == 1
    monkeypatch.undo()
    apply_migration(engine, plan)
    assert "park" in {c["name"] for c in sa.inspect(engine).get_columns("corporate_customer")}


def test_destructive_crash_keeps_data(engine, monkeypatch, tmp_path):
    """A failure after a rename and a drop ran rolls both back."""
    m1 = build(entity("memo", field("a", "string"), field("b", "string")))
    apply_migration(engine, plan_migration(engine, m1))
    _seed(engine, "memo", {"a": "甲", "b": "乙"})
    m2 = build(entity("memo2", field("a2", "string", renamed_from="a"), field("c", "string", index=True),
                      renamed_from="memo"))
    plan = plan_migration(engine, m2)
    assert [op.kind for op in plan] == ["rename_table", "rename_column", "add_column", "add_index", "drop_column"]
    before = schema_of(engine)
    monkeypatch.setitem(ddl.APPLIERS, "drop_column", lambda ops, op: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        apply_migration(engine, plan, allow_destructive=True, backup_dir=tmp_path)
    assert schema_of(engine) == before
    assert rows(engine, "memo")[0]["b"] == "乙"


def test_plan_is_rechecked_when_applied(engine):
    m = _one("person", field("code", "string", max_length=20))
    apply_migration(engine, plan_migration(engine, m))
    _seed(engine, "person", {"code": "A"})
    plan = plan_migration(engine, _one("person", field("code", "string", max_length=20, unique=True)))
    assert plan.operations[0].safety == SAFE
    _seed(engine, "person", {"code": "A"})  # a duplicate arrives between plan and apply
    before = schema_of(engine)
    with pytest.raises(MigrationRefused, match="changed since the plan"):
        apply_migration(engine, plan)
    assert schema_of(engine) == before


def test_child_entity_with_rows_cannot_get_parent(engine):
    m1 = build(entity("head", field("name", "string")), entity("line", field("x", "string")))
    apply_migration(engine, plan_migration(engine, m1))
    _seed(engine, "line", {"x": "1"})
    m2 = build(entity("head", field("name", "string"), field("lines", "children", target="line")),
               entity("line", field("x", "string"), parent="head"))
    plan = plan_migration(engine, m2)
    blocked = [op for op in plan if op.safety == BLOCKED]
    assert [(op.kind, op.column) for op in blocked] == [("add_column", "parent_id")]
    assert "1 rows" in blocked[0].reason.en


def test_required_field_needs_nothing_at_database_level(engine):
    apply_migration(engine, plan_migration(engine, _one("memo", field("a", "string"))))
    _seed(engine, "memo", {"a": None})
    assert plan_migration(engine, _one("memo", field("a", "string", required=True))).is_empty


def test_descriptions_in_both_languages(engine):
    m = _one("memo", field("a", "string", max_length=100))
    plan = plan_migration(engine, m)
    zh, en = plan.describe("zh"), plan.describe("en")
    assert "[安全] 新建表 memo（7 列）" in zh and "[safe] create table memo (7 columns)" in en
    apply_migration(engine, plan)
    m2 = _one("memo", field("a", "string", max_length=100), field("park", "string", max_length=100))
    (op,) = plan_migration(engine, m2).operations
    assert op.describe("en") == "add column memo.park VARCHAR(100)"
    assert op.describe("zh") == "新增列 memo.park VARCHAR(100)"


@pytest.mark.skipif(not is_postgres(), reason="PostgreSQL backup tables")
def test_postgres_backup_table_names_are_bounded(engine, tmp_path):
    long = "guarantee_counter_collateral_real_estate_mortgage_registration"
    apply_migration(engine, plan_migration(engine, _one(long, field("a", "string"), field("b", "string"))))
    _seed(engine, long, {"a": "1", "b": "2"})
    result = apply_migration(engine, plan_migration(engine, _one(long, field("a", "string"))),
                             allow_destructive=True)
    (name,) = result.backup.tables
    assert len(name) <= 63 and name.startswith("danbao_bak_")
    assert rows(engine, name)[0]["b"] == "2"


def test_concurrent_ensure_schema_is_serialised(engine):
    """Two workers starting at once: one creates the tables, the other finds them."""
    import threading
    bank, customer, shareholder = v1_entities()
    models = build(bank, customer, shareholder)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def start():
        try:
            barrier.wait()
            results.append(ensure_schema(engine, models))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(len(r.applied) for r in results) == [0, len(models.system) + 3]
    assert len(state_rows(engine)) == 1
    assert plan_migration(engine, models).is_empty


def test_reference_retargeted_needs_matching_rows(engine):
    a, b = entity("bank", field("name", "string")), entity("bank2", field("name", "string"))
    m1 = build(a, b, entity("cust", field("name", "string"), field("bank", "reference", target="bank")))
    apply_migration(engine, plan_migration(engine, m1))
    _seed(engine, "bank", {"name": "甲"}, {"name": "乙"})
    _seed(engine, "bank2", {"name": "丙"})
    _seed(engine, "cust", {"name": "c1", "bank_id": 1}, {"name": "c2", "bank_id": 2})
    m2 = build(a, b, entity("cust", field("name", "string"), field("bank", "reference", target="bank2")))
    plan = plan_migration(engine, m2)
    assert kinds(plan) == [("drop_foreign_key", "cust", "bank_id", SAFE),
                           ("add_foreign_key", "cust", "bank_id", BLOCKED)]
    assert plan.operations[1].reason.en == "cust.bank_id: 1 rows refer to records that do not exist"
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE cust SET bank_id = 1")
    apply_migration(engine, plan_migration(engine, m2))
    with Session(engine) as s:
        assert [c.bank.name for c in s.scalars(sa.select(m2.cls("cust")))] == ["丙", "丙"]
    assert plan_migration(engine, m2).is_empty


def test_start_up_skips_the_diff_when_the_recorded_schema_matches(database_url):
    """A restart on an unchanged schema plans nothing; a dropped table is noticed and recreated."""
    engine = make_engine(database_url)
    models = build_models(meta(entity("thing", field("name", "string"))))
    assert ensure_schema(engine, models).applied
    assert ensure_schema(engine, models).applied == []
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE thing"))
    assert [op.kind for op in ensure_schema(engine, models).applied] == ["create_table"]
    engine.dispose()


# -- the ledger's pinned effects on an old database ------------------------------------------

def _old_ledger(database_url):
    """A ledger database as an older build left it: entries, but no ``effects``
    column (and a recorded schema that is not the current one)."""
    from decimal import Decimal as D
    from ledgerhelpers import LedgerWorld
    world = LedgerWorld(database_url)
    p = world.project(status="guaranteeing")
    world.book(p, "deposit_received", "100.00")
    world.book(p, "deposit_refunded", "30.00")
    drawn = world.book(p, "loan_drawn", "1000.00")
    world.book(p, "recovery", "5.00")
    world.book(p, "recovery", "7.00", confirmer=None)
    world.ledger().reverse(drawn, world.actor("fin"), "录错")
    world.s.commit()
    before = world.ledger().balances(p)
    assert before["deposit_held"] == D("70.00") and before["recovered"] == D("5.00")
    world.s.close()
    with world.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE danbao_ledger_entry DROP COLUMN effects")
        conn.exec_driver_sql("UPDATE danbao_schema_state SET digest = 'an older build'")
    return world, p, before


def test_an_old_ledger_gets_its_entries_effects_pinned(database_url):
    from ledgerhelpers import KINDS
    from danbao.model.system import LEDGER_TABLE, ledger_effects_text
    world, p, before = _old_ledger(database_url)
    try:
        models = build_models(world.lmeta)
        plan = plan_migration(world.engine, models)
        assert kinds(plan) == [("add_system_column", LEDGER_TABLE, "effects", SAFE)]
        apply_migration(world.engine, plan)
        entries = rows(world.engine, LEDGER_TABLE)
        assert len(entries) == 6
        assert all(e["effects"] == ledger_effects_text(KINDS[e["kind"]].effects) for e in entries)
        assert world.ledger().balances(p) == before
        assert plan_migration(world.engine, models).is_empty
    finally:
        world.close()


def test_an_old_ledger_with_entries_of_a_removed_kind_is_refused(database_url):
    """Entries of a kind the metadata no longer declares have no effects to be
    given: the upgrade (and so the app's start) is refused, naming the kind and
    how many entries, and changes nothing; declared again, the kind's entries
    are pinned and it can then be removed without losing them."""
    from ledgerhelpers import KINDS, ledger_meta
    from danbao.model.system import LEDGER_TABLE
    world, p, before = _old_ledger(database_url)
    try:
        without = ledger_meta(world.meta, kinds={c: k for c, k in KINDS.items() if c != "recovery"})
        models = build_models(without)
        schema, data = schema_of(world.engine), rows(world.engine, LEDGER_TABLE)
        plan = plan_migration(world.engine, models)
        assert kinds(plan) == [("add_system_column", LEDGER_TABLE, "effects", BLOCKED)]   # db plan says so
        assert "“recovery”" in plan.operations[0].reason.zh and "2 entries" in plan.operations[0].reason.en
        for attempt in (lambda: apply_migration(world.engine, plan), lambda: ensure_schema(world.engine, models)):
            with pytest.raises(MigrationRefused) as err:
                attempt()
            [message] = err.value.labels
            assert "“recovery”" in message.zh and "2 条" in message.zh
            assert "'recovery'" in message.en and "2 entries" in message.en
            assert schema_of(world.engine) == schema and rows(world.engine, LEDGER_TABLE) == data
        ensure_schema(world.engine, build_models(world.lmeta))          # declared again: pinned
        assert world.ledger(meta=without).balances(p) == before         # then removing it loses nothing
    finally:
        world.close()
