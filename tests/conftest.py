"""Shared fixtures.

``database_url`` gives each test an empty database: a SQLite file in the
test's tmp dir by default, or a fresh PostgreSQL schema when
``DANBAO_TEST_DATABASE_URL`` points at a PostgreSQL database (CI runs the
suite both ways).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
CORE_PACK = REPO / "metadata" / "core"
EXAMPLE_PACK = REPO / "metadata" / "examples" / "jiangsu_credit"
PG_URL = os.environ.get("DANBAO_TEST_DATABASE_URL", "")


def is_postgres() -> bool:
    return PG_URL.startswith("postgresql")


def _fresh_database(folder: Path):
    """Yield the URL of an empty database: a SQLite file, or a new PostgreSQL schema."""
    if not is_postgres():
        yield f"sqlite:///{folder / 'danbao.db'}"
        return
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def database_url(tmp_path):
    yield from _fresh_database(tmp_path)


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory):
    yield from _fresh_database(tmp_path_factory.mktemp("db"))


@pytest.fixture
def world(database_url):
    """The core pack on an empty database with a cast of users (tests/wfhelpers.py);
    test modules with their own ``world`` fixture override this one."""
    from wfhelpers import WfWorld
    w = WfWorld(database_url)
    yield w
    w.s.close()
    w.engine.dispose()
