"""Warning scan: SQL pushdown against per-row evaluation, same rules, same rows.

Builds a synthetic `project` table (default 1,000,000 rows) and 10 warning
conditions, then times
  - pushdown: one `SELECT id WHERE <rule as SQL>` per rule (what `danbao
    warnings scan` runs), and
  - baseline: one pass reading every row, evaluating the 10 already-compiled
    expressions in Python per row,
checks both find the same ids, and prints the ratio. SQLite by default;
`--url postgresql+psycopg://postgres@127.0.0.1:5432/DB` for PostgreSQL.

Run: .venv/bin/python bench/warnings_scan.py  (not warnings.py: that name would shadow the standard library when run as a script) [--rows N] [--url URL]
Not a timed test: it prints figures, it asserts only that both paths agree.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

RULES = [
    "status == 'in_force' and days_between(today(), maturity_date) <= 30",
    "status == 'in_force' and maturity_date < today()",
    "amount >= 10000000",
    "fee_rate < 0.01 and amount > 1000000",
    "overdue_days > 90",
    "flagged and status != 'released'",
    "add_months(start_date, term_months) < today()",
    "coverage < 1.2",
    "status in ['compensated', 'written_off']",
    "round_money(amount * fee_rate) < 1000",
]

PACK = """entity: project
label: {zh: 项目, en: Project}
title: code
fields:
  - {name: code, type: string, label: {zh: 编号, en: Code}, max_length: 20}
  - {name: amount, type: money, label: {zh: 金额, en: Amount}}
  - {name: fee_rate, type: rate, label: {zh: 费率, en: Fee rate}}
  - {name: coverage, type: decimal, precision: 10, scale: 4, label: {zh: 覆盖率, en: Coverage}}
  - {name: status, type: enum, label: {zh: 状态, en: Status}, options: [
      {value: in_force, label: {zh: 在保, en: In force}}, {value: released, label: {zh: 解保, en: Released}},
      {value: compensated, label: {zh: 代偿, en: Compensated}}, {value: written_off, label: {zh: 核销, en: Written off}}]}
  - {name: start_date, type: date, label: {zh: 起始日, en: Start}}
  - {name: maturity_date, type: date, label: {zh: 到期日, en: Maturity}}
  - {name: term_months, type: integer, label: {zh: 期限, en: Term}}
  - {name: overdue_days, type: integer, label: {zh: 逾期天数, en: Overdue days}}
  - {name: flagged, type: boolean, label: {zh: 标记, en: Flagged}}
"""


def build(url: str, rows: int, tmp: Path):
    from danbao.expr import Scope, compile_expression
    from danbao.meta.loader import load_packs
    from danbao.model.builder import build_models
    from danbao.model.engine import make_engine
    pack = tmp / "p"
    pack.mkdir()
    (pack / "pack.yaml").write_text('name: bench\nversion: "1"\nlabel: {zh: 基准, en: Bench}\nrequires: []\n', encoding="utf-8")
    (pack / "project.yaml").write_text(PACK, encoding="utf-8")
    meta = load_packs([pack])
    models = build_models(meta)
    engine = make_engine(url)
    models.metadata.drop_all(engine, tables=[models.table("project")])
    models.metadata.create_all(engine, tables=[models.table("project")])
    rng = random.Random(7)
    statuses = ["in_force"] * 6 + ["released"] * 2 + ["compensated", "written_off"]
    table = models.table("project")
    t0 = time.perf_counter()
    batch = []
    base = dt.date(2024, 1, 31)
    with engine.begin() as conn:
        for i in range(rows):
            start = base + dt.timedelta(days=rng.randint(0, 900))
            term = rng.choice([6, 12, 24, 36])
            batch.append({"code": f"DB-{i:07d}", "amount": Decimal(rng.randint(1, 3000)) * 10000,
                          "fee_rate": Decimal(rng.randint(5, 30)) / 1000, "coverage": Decimal(rng.randint(50, 300)) / 100,
                          "status": rng.choice(statuses), "start_date": start,
                          "maturity_date": start + dt.timedelta(days=term * 30), "term_months": term,
                          "overdue_days": rng.choice([0] * 8 + [rng.randint(1, 400)] * 2), "flagged": rng.random() < 0.05,
                          "version": 1})
            if len(batch) == 20000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    print(f"inserted {rows:,} rows in {time.perf_counter() - t0:.1f} s ({engine.dialect.name})")
    scope = Scope.for_entity(meta, "project")
    compiled = [compile_expression(r, scope, expect="boolean") for r in RULES]
    return engine, meta, models, compiled


def pushdown(engine, meta, models, compiled, today):
    from danbao.expr import entity_columns
    table = models.table("project")
    cols = entity_columns(meta.entity("project"), table)
    found = []
    with engine.connect() as conn:
        for rule in compiled:
            q = sa.select(table.c.id).where(rule.to_sql(cols, today=today, dialect_name=engine.dialect.name))
            found.append({r[0] for r in conn.execute(q)})
    return found


def per_row(engine, meta, models, compiled, today):
    from danbao.expr import row_values
    em = meta.entity("project")
    table = models.table("project")
    found = [set() for _ in compiled]
    with engine.connect().execution_options(stream_results=True, yield_per=20000) as conn:
        for row in conn.execute(sa.select(table)).mappings():
            values = row_values(em, row)
            for i, rule in enumerate(compiled):
                if rule.evaluate(values, today=today) is True:
                    found[i].add(row["id"])
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'w.db'}"
        engine, meta, models, compiled = build(url, args.rows, Path(tmp))
        today = dt.date(2026, 11, 29)
        t0 = time.perf_counter()
        sql_sets = pushdown(engine, meta, models, compiled, today)
        t_sql = time.perf_counter() - t0
        t0 = time.perf_counter()
        py_sets = per_row(engine, meta, models, compiled, today)
        t_py = time.perf_counter() - t0
        agree = all(a == b for a, b in zip(sql_sets, py_sets))
        print(f"{len(RULES)} rules over {args.rows:,} rows ({engine.dialect.name}):")
        for rule, s in zip(RULES, sql_sets):
            print(f"  {len(s):>9,}  {rule}")
        print(f"SQL pushdown : {t_sql:8.2f} s")
        print(f"per-row eval : {t_py:8.2f} s   (baseline: compiled expressions evaluated in Python per row)")
        print(f"ratio        : {t_py / t_sql:8.1f}x faster with pushdown;  same ids: {agree}")
        if args.url:
            models.metadata.drop_all(engine, tables=[models.table("project")])
        engine.dispose()
        if not agree:
            sys.exit(1)


if __name__ == "__main__":
    main()
