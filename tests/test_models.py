"""SQLAlchemy models built from Meta: columns, relationships, indexes, locking."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.naming import MAX_IDENTIFIER
from metafactory import entity, field, index, meta

ALL_TYPES = entity(
    "sample",
    field("name", "string", max_length=120, required=True),
    field("notes", "text"),
    field("count", "integer"),
    field("ratio", "decimal", precision=10, scale=3),
    field("plain_decimal", "decimal"),
    field("amount", "money"),
    field("fee_rate", "rate"),
    field("active", "boolean"),
    field("signed_on", "date"),
    field("visited_at", "datetime"),
    field("size", "enum", options=("large", "small")),
    field("industry", "code", codelist="industry"),
    field("bank", "reference", target="bank"),
    field("lines", "children", target="sample_line"),
    field("files", "attachments", accept=("image",)),
    indexes=[index("industry", "size"), index("name", "signed_on", unique=True)],
)
BANK = entity("bank", field("name", "string", max_length=100, unique=True),
              field("branch", "string", max_length=100, index=True))
LINE = entity("sample_line", field("item", "string", max_length=50), field("qty", "integer"),
              parent="sample")


@pytest.fixture
def models():
    return build_models(meta(ALL_TYPES, BANK, LINE))


@pytest.fixture
def engine(database_url, models):
    eng = make_engine(database_url)
    models.metadata.create_all(eng)
    yield eng
    eng.dispose()


def test_column_types(models):
    t = models.table("sample")
    c = t.c
    assert isinstance(c.name.type, sa.String) and c.name.type.length == 120
    assert isinstance(c.notes.type, sa.Text)
    assert isinstance(c["count"].type, sa.BigInteger)
    assert (c.ratio.type.precision, c.ratio.type.scale, c.ratio.type.asdecimal) == (10, 3, True)
    assert (c.plain_decimal.type.precision, c.plain_decimal.type.scale) == (18, 4)
    assert (c.amount.type.precision, c.amount.type.scale) == (18, 2)
    assert (c.fee_rate.type.precision, c.fee_rate.type.scale) == (12, 6)
    assert isinstance(c.active.type, sa.Boolean)
    assert isinstance(c.signed_on.type, sa.Date) and not isinstance(c.signed_on.type, sa.DateTime)
    assert isinstance(c.visited_at.type, sa.DateTime)
    assert c.size.type.length == 64 and c.industry.type.length == 64
    assert isinstance(c.bank_id.type, sa.Integer)
    fk = next(iter(c.bank_id.foreign_keys))
    assert fk.target_fullname == "bank.id" and fk.ondelete == "RESTRICT"
    # children and attachments have no column; every field column is nullable
    assert "lines" not in c and "files" not in c and "lines_id" not in c
    for f in ALL_TYPES.column_fields:
        assert c[f.column_name].nullable, f.name


def test_system_columns(models):
    t = models.table("sample_line")
    assert t.c.id.primary_key
    for name in ("created_at", "updated_at"):
        assert isinstance(t.c[name].type, sa.DateTime)
    for name in ("created_by_id", "updated_by_id"):
        assert isinstance(t.c[name].type, sa.Integer) and not t.c[name].foreign_keys
    assert not t.c.version.nullable
    assert sa.inspect(models.cls("sample_line")).version_id_col is t.c.version
    assert not t.c.parent_id.nullable
    fk = next(iter(t.c.parent_id.foreign_keys))
    assert fk.target_fullname == "sample.id" and fk.ondelete == "CASCADE"
    assert any(ix.name == "ix_sample_line_parent_id" for ix in t.indexes)
    assert "parent_id" not in models.table("sample").c
    assert set(models.system) == {"danbao_audit", "danbao_attachment", "danbao_schema_state", "danbao_warning", "danbao_score", "danbao_score_item",
                                  "danbao_warning_scan", "danbao_wf_instance", "danbao_wf_task", "danbao_wf_action",
                                  "danbao_wf_vote", "danbao_ledger_entry", "danbao_sequence",
                                  "danbao_document_tag", "danbao_sensitive_view"}
    assert models.entity_tables == ("sample", "bank", "sample_line")


def test_class_shape(models):
    Sample = models.cls("sample")
    assert Sample.__name__ == "Sample"
    assert Sample.__danbao_entity__ is ALL_TYPES
    s = Sample(name="江苏某某科技有限公司")
    assert str(s) == "江苏某某科技有限公司" and "江苏某某科技有限公司" in repr(s)
    with pytest.raises(KeyError, match="unknown entity"):
        models.cls("nope")


def _sample(models, **kw):
    values = dict(
        name="南京担保测试", notes="经营范围：软件开发", count=12, ratio=Decimal("12.345"),
        plain_decimal=Decimal("1.0001"), amount=Decimal("1234567890123.45"),
        fee_rate=Decimal("0.012345"), active=True, signed_on=dt.date(2024, 2, 29),
        visited_at=dt.datetime(2024, 3, 1, 9, 30, 15), size="large", industry="I65",
        created_at=dt.datetime(2024, 1, 1), updated_at=dt.datetime(2024, 1, 1))
    values.update(kw)
    return models.cls("sample")(**values)


def test_round_trip_values(models, engine):
    with Session(engine) as s:
        s.add(_sample(models))
        s.commit()
    with Session(engine) as s:
        got = s.scalars(sa.select(models.cls("sample"))).one()
        assert got.amount == Decimal("1234567890123.45") and isinstance(got.amount, Decimal)
        assert got.fee_rate == Decimal("0.012345") and got.ratio == Decimal("12.345")
        assert got.signed_on == dt.date(2024, 2, 29) and got.active is True
        assert got.name == "南京担保测试" and got.version == 1


def test_reference_relationship(models, engine):
    Bank, Sample = models.cls("bank"), models.cls("sample")
    with Session(engine) as s:
        bank = Bank(name="中国银行", branch="南京分行")
        s.add(_sample(models, bank=bank))
        s.commit()
        bank_id = bank.id
    with Session(engine) as s:
        sample = s.scalars(sa.select(Sample)).one()
        assert sample.bank_id == bank_id and sample.bank.name == "中国银行"
        # RESTRICT: a referenced bank cannot be deleted
        s.delete(sample.bank)
        with pytest.raises(sa.exc.IntegrityError):
            s.flush()


def test_children_cascade(models, engine):
    Sample, Line = models.cls("sample"), models.cls("sample_line")
    with Session(engine) as s:
        sample = _sample(models)
        sample.lines = [Line(item="甲", qty=1), Line(item="乙", qty=2)]
        s.add(sample)
        s.commit()
        assert [line.item for line in sample.lines] == ["甲", "乙"]
        assert sample.lines[0].parent is sample
    with Session(engine) as s:  # ORM cascade with the children loaded
        sample = s.scalars(sa.select(Sample)).one()
        sample.lines.remove(sample.lines[0])      # delete-orphan
        s.commit()
        assert s.scalar(sa.select(sa.func.count()).select_from(Line)) == 1
        s.delete(sample)
        s.commit()
        assert s.scalar(sa.select(sa.func.count()).select_from(Line)) == 0
    with Session(engine) as s:  # database cascade without loading them
        sample = _sample(models)
        sample.lines = [Line(item="丙", qty=3)]
        s.add(sample)
        s.commit()
    with Session(engine) as s:
        s.execute(sa.delete(Sample))
        s.commit()
        assert s.scalar(sa.select(sa.func.count()).select_from(Line)) == 0


def test_indexes_exist_in_database(models, engine):
    insp = sa.inspect(engine)
    sample = {ix["name"]: (tuple(ix["column_names"]), bool(ix["unique"])) for ix in insp.get_indexes("sample")}
    assert sample["ix_sample_industry_size"] == (("industry", "size"), False)
    assert sample["uq_sample_name_signed_on"] == (("name", "signed_on"), True)
    assert sample["ix_sample_bank_id"] == (("bank_id",), False)
    bank = {ix["name"]: (tuple(ix["column_names"]), bool(ix["unique"])) for ix in insp.get_indexes("bank")}
    assert bank["uq_bank_name"] == (("name",), True)
    assert bank["ix_bank_branch"] == (("branch",), False)
    with Session(engine) as s:
        s.add(models.cls("bank")(name="工商银行"))
        s.add(models.cls("bank")(name="工商银行"))
        with pytest.raises(sa.exc.IntegrityError, match="(?i)uq_bank_name|bank.name"):
            s.flush()


def test_stale_update_raises(models, engine):
    Bank = models.cls("bank")
    with Session(engine) as s:
        s.add(Bank(name="农业银行"))
        s.commit()
    s1, s2 = Session(engine), Session(engine)
    try:
        b1 = s1.scalars(sa.select(Bank)).one()
        b2 = s2.scalars(sa.select(Bank)).one()
        b1.branch = "苏州分行"
        s1.commit()
        assert b1.version == 2
        b2.branch = "无锡分行"
        with pytest.raises(StaleDataError):
            s2.commit()
    finally:
        s1.close()
        s2.close()


def test_two_builds_are_independent():
    m = meta(ALL_TYPES, BANK, LINE)
    a, b = build_models(m), build_models(m)
    assert a.metadata is not b.metadata and a.registry is not b.registry
    for name in m.entities:
        assert a.cls(name) is not b.cls(name)
        assert a.table(name) is not b.table(name)
        assert sa.inspect(a.cls(name)).local_table is a.table(name)
    rel = sa.inspect(a.cls("sample")).relationships["lines"]
    assert rel.mapper.class_ is a.cls("sample_line")


def test_references_in_any_order():
    # a child declared before its parent, a reference before its target, a self reference
    m = meta(entity("z_line", field("what", "string"), parent="a_head"),
             entity("a_head", field("title", "string"), field("other", "reference", target="b_other"),
                    field("boss", "reference", target="a_head"),
                    field("lines", "children", target="z_line")),
             entity("b_other", field("name", "string")))
    models = build_models(m)
    head = sa.inspect(models.cls("a_head"))
    assert head.relationships["boss"].direction.name == "MANYTOONE"
    assert head.relationships["lines"].direction.name == "ONETOMANY"


def test_long_names_are_bounded(database_url):
    long = "guarantee_counter_collateral_real_estate_mortgage_registration"
    m = meta(entity(long, field("certificate_number_of_real_estate_registration", "string", unique=True),
                    field("registration_authority_name_full", "string", index=True),
                    indexes=[index("certificate_number_of_real_estate_registration",
                                   "registration_authority_name_full")]))
    models = build_models(m)

    def names(t):
        return sorted([ix.name for ix in t.indexes] + [c.name for c in t.constraints if c.name])

    got = names(models.table(long))
    assert got and all(len(n) <= MAX_IDENTIFIER for n in got)
    assert len(set(got)) == len(got)
    assert got == names(build_models(m).table(long))  # deterministic
    eng = make_engine(database_url)
    models.metadata.create_all(eng)
    assert len(sa.inspect(eng).get_indexes(long)) == 3
    eng.dispose()


def test_build_speed():
    """300 entities x 30 fields (with references) — see the module docstring of builder."""
    kinds = ["string", "text", "integer", "decimal", "money", "rate", "boolean", "date",
             "datetime", "enum", "code"]
    ents = []
    for i in range(300):
        fields = [field(f"f{j}", kinds[j % len(kinds)]) for j in range(28)]
        fields.append(field("prev", "reference", target=f"e{max(i - 1, 0)}"))
        fields.append(field("other", "reference", target=f"e{(i * 7) % 300}"))
        ents.append(entity(f"e{i}", *fields))
    m = meta(*ents)
    models = build_models(m)     # its time: bench/boot.py (per-entity growth), not a timed test
    assert len(models.classes) == 300
