"""The danbao command: validate, plan, upgrade (refusing drops unless asked), demo."""
from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import CORE_PACK, EXAMPLE_PACK
from danbao.cli import main


@pytest.fixture
def env(database_url, tmp_path, monkeypatch):
    pack = tmp_path / "core"
    shutil.copytree(CORE_PACK, pack)
    monkeypatch.setenv("DANBAO_INSTANCE", str(tmp_path / "inst"))
    monkeypatch.setenv("DANBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("DANBAO_PACKS", str(pack))
    monkeypatch.setenv("DANBAO_SECRET_KEY", "cli-test-secret-0123456789abcdef0123")
    return pack


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_pack_validate_reports_every_problem_with_file_and_line(tmp_path):
    assert run("pack", "validate", str(CORE_PACK), str(EXAMPLE_PACK)).exit_code == 0
    broken = tmp_path / "broken"
    shutil.copytree(CORE_PACK, broken)
    path = broken / "entities" / "bank.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("type: money", "type: monye")
                    .replace("write: [risk_officer]", "write: [nobody]"), encoding="utf-8")
    result = run("pack", "validate", str(broken))
    assert result.exit_code == 1
    lines = [l for l in result.output.splitlines() if ": DB" in l]
    assert any("bank.yaml:" in l and " DB110 " in l and "monye" in l for l in lines)
    assert any(" DB225 " in l for l in lines)
    assert all(l.split(":")[1].isdigit() for l in lines)


def test_db_plan_and_upgrade_refuse_a_drop_until_allowed(env, tmp_path):
    assert "create table bank" in run("db", "plan").output
    result = run("db", "upgrade")
    assert result.exit_code == 0 and "applied" in result.output
    assert run("db", "plan").output.strip() == "no changes"
    url = __import__("os").environ["DANBAO_DATABASE_URL"]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO bank (name, branch, version) VALUES ('江苏银行', '南京分行', 1)"))
    bank = env / "entities" / "bank.yaml"
    text = bank.read_text(encoding="utf-8")
    bank.write_text(text.replace("  - {name: branch, type: string, label: {zh: 分支机构, en: Branch}, max_length: 100}\n", "")
                    .replace("fields: [name, branch, credit_line", "fields: [name, credit_line")
                    .replace("columns: [name, branch, credit_line, active]", "columns: [name, credit_line, active]")
                    .replace("search: [name, branch]", "search: [name]"), encoding="utf-8")
    plan = run("db", "plan").output
    assert "drop column bank.branch (1 rows have a value)" in plan
    refused = run("db", "upgrade")
    assert refused.exit_code == 2 and "refused" in refused.output
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT branch FROM bank")).scalar() == "南京分行"
    done = run("db", "upgrade", "--allow-destructive")
    assert done.exit_code == 0 and "backup:" in done.output
    with engine.connect() as conn:
        assert "branch" not in {c["name"] for c in sa.inspect(conn).get_columns("bank")}
        assert conn.execute(sa.text("SELECT name FROM bank")).scalar() == "江苏银行"
    engine.dispose()


def test_demo_prepares_database_admin_and_data(env, monkeypatch):
    monkeypatch.delenv("DANBAO_ADMIN_PASSWORD", raising=False)
    result = run("demo", "--no-serve", "--size", "5")
    assert result.exit_code == 0, result.output
    assert "admin password (shown once):" in result.output and "demo data:" in result.output
    again = run("demo", "--no-serve")
    assert "admin user exists" in again.output and "shown once" not in again.output
    assert "demo data" not in again.output


def test_warnings_scan_command(env):
    assert run("db", "upgrade").exit_code == 0
    result = run("warnings", "scan", "--as-of", "2026-11-01")
    assert result.exit_code == 0, result.output
    assert "corp_tax_grade_low: 0 matching, 0 opened, 0 closed" in result.output
    bad = run("warnings", "scan", "--as-of", "11/01/2026")
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_daily_command_marks_overdue_projects(env):
    assert run("db", "upgrade").exit_code == 0
    assert run("demo", "--no-serve", "--size", "12").exit_code == 0
    url = __import__("os").environ["DANBAO_DATABASE_URL"]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        live = conn.execute(sa.text("SELECT count(*) FROM guarantee_project WHERE status = 'guaranteeing'")).scalar()
    assert live > 0
    result = run("daily", "--as-of", "2099-12-31")          # every project in force is long past due by then
    assert result.exit_code == 0, result.output
    assert f"overdue: {live}" in result.output
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM guarantee_project WHERE status = 'guaranteeing'")).scalar() == 0
    engine.dispose()
    bad = run("daily", "--as-of", "yesterday")
    assert bad.exit_code == 2 and "not a date" in bad.output
