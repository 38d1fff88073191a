"""Record-number counters (danbao_sequence) and how the ledger and sequence
tables reach a database made before they existed. SQLite by default,
PostgreSQL with DANBAO_TEST_DATABASE_URL (where eight threads take numbers at once)."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conftest import is_postgres
from danbao.engines import sequences
from danbao.engines.sequences import next_number
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import ensure_schema, plan_migration
from danbao.model.system import LEDGER_REVERSES_INDEX, LEDGER_TABLE, SEQUENCE_TABLE
from metafactory import entity, field, meta

MODELS = build_models(meta(entity("bank", field("name", "string", max_length=100))))
PATHS = {"upsert": next_number, "update_or_insert": sequences._update_or_insert}


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url, pool_size=12) if is_postgres() else make_engine(database_url)
    ensure_schema(eng, MODELS)
    yield eng
    eng.dispose()


def take(path: str, session, name: str, scope: str) -> int:
    table = MODELS.system[SEQUENCE_TABLE]
    return PATHS[path](session, table, name, scope)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_counters_count_per_name_and_scope(engine, path):
    with Session(engine) as s:
        assert [take(path, s, "guarantee_project.project_no", "2026") for _ in range(3)] == [1, 2, 3]
        assert take(path, s, "guarantee_project.project_no", "2027") == 1
        assert take(path, s, "contract.no", "2026") == 1
        s.commit()
    with Session(engine) as s:
        assert take(path, s, "guarantee_project.project_no", "2026") == 4
        s.commit()
        rows = s.execute(sa.select(MODELS.system[SEQUENCE_TABLE]).order_by("name", "scope")).all()
    assert [tuple(r) for r in rows] == [("contract.no", "2026", 1), ("guarantee_project.project_no", "2026", 4),
                                        ("guarantee_project.project_no", "2027", 1)]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_number_taken_in_a_rolled_back_transaction_is_handed_out_again(engine, path):
    with Session(engine) as s:
        assert take(path, s, "n", "*") == 1
        s.commit()
        assert take(path, s, "n", "*") == 2
        assert take(path, s, "fresh", "*") == 1
        s.rollback()
        assert take(path, s, "n", "*") == 2                   # no gap
        assert take(path, s, "fresh", "*") == 1
        s.commit()


def test_names_are_required(engine):
    with Session(engine) as s:
        for name, scope in (("", "*"), (None, "*"), ("n", None)):
            with pytest.raises(ValueError):
                next_number(s, MODELS.system[SEQUENCE_TABLE], name, scope)


def test_update_or_insert_retries_when_a_competitor_inserted_first(engine, monkeypatch):
    """The generic path's race: no row when it looked, a row when it inserts."""
    table = MODELS.system[SEQUENCE_TABLE]
    with Session(engine) as s:
        real_begin_nested = s.begin_nested
        raced = []

        def begin_nested():
            if not raced:                                       # the counter appears just before our insert
                raced.append(True)
                s.execute(table.insert().values(name="race", scope="*", value=5))
            return real_begin_nested()
        monkeypatch.setattr(s, "begin_nested", begin_nested)
        assert sequences._update_or_insert(s, table, "race", "*") == 6
        s.commit()
    assert raced


def _threads(engine, path: str, threads: int, each: int, name: str) -> list:
    barrier = threading.Barrier(threads)
    got: list = []
    errors: list = []
    lock = threading.Lock()

    def run():
        with Session(engine) as s:
            s.execute(sa.text("SELECT 1"))
            barrier.wait()
            try:
                for _ in range(each):
                    n = take(path, s, name, "2026")
                    s.commit()
                    with lock:
                        got.append(n)
            except Exception as exc:                           # noqa: BLE001 - judged by the test
                errors.append(exc)
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not errors, errors
    return got


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL: concurrent sessions on one database")
@pytest.mark.parametrize("path", sorted(PATHS))
def test_eight_threads_get_distinct_numbers(engine, path):
    got = _threads(engine, path, 8, 25, f"concurrent.{path}")     # the first calls race to create the counter
    assert sorted(got) == list(range(1, 201))


def test_threads_on_sqlite_get_distinct_numbers(engine):
    """SQLite has one writer at a time: the others wait (busy timeout) and get the next number."""
    if is_postgres():
        pytest.skip("the PostgreSQL version above runs eight threads")
    got = _threads(engine, "upsert", 4, 10, "concurrent")
    assert sorted(got) == list(range(1, 41))


# -- the tables on an existing database ---------------------------------------------------------
def test_an_older_database_gets_the_ledger_and_sequence_tables(engine):
    """A database made before these tables existed: the planned, safe path adds them."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {LEDGER_TABLE}"))
        conn.execute(sa.text(f"DROP TABLE {SEQUENCE_TABLE}"))
    plan = plan_migration(engine, MODELS)
    assert sorted((op.kind, op.table) for op in plan) == [("create_system_table", LEDGER_TABLE),
                                                          ("create_system_table", SEQUENCE_TABLE)]
    assert all(op.safety == "safe" for op in plan)
    result = ensure_schema(engine, MODELS)
    assert sorted(op.table for op in result.applied) == [LEDGER_TABLE, SEQUENCE_TABLE]
    assert list(plan_migration(engine, MODELS)) == []
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes(LEDGER_TABLE)}
    assert LEDGER_REVERSES_INDEX in names and "ix_danbao_ledger_entry_project" in names
    with Session(engine) as s:
        assert next_number(s, MODELS.system[SEQUENCE_TABLE], "n", "*") == 1
        s.commit()


def test_one_live_reversal_per_entry_is_enforced_by_the_database(engine):
    """The partial unique index: any number of rejected reversals, one other."""
    ledger = MODELS.system[LEDGER_TABLE]
    now = dt.datetime(2026, 1, 1, 9)

    def row(**kw):
        return {"project_entity": "p", "project_id": 1, "kind": "k", "amount": Decimal("1.00"), "direction": 1,
                "state": "confirmed", "booked_on": now.date(), "note": "", "made_by_id": 1, "made_at": now,
                "meta_version": "v", "lock_version": 0, **kw}
    with engine.begin() as conn:
        original = conn.execute(ledger.insert().values(row())).inserted_primary_key[0]
        for _ in range(2):
            conn.execute(ledger.insert().values(row(direction=-1, state="rejected", reverses_id=original)))
        conn.execute(ledger.insert().values(row(direction=-1, state="made", reverses_id=original)))
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(ledger.insert().values(row(direction=-1, state="checked", reverses_id=original)))
    with engine.connect() as conn:
        amounts = conn.execute(sa.select(ledger.c.amount)).scalars().all()
    assert amounts == [Decimal("1.00")] * 4
