"""A large book: the regulatory dashboard and the project list on 100,000 projects.

Builds the core pack's tables in a fresh database (a temporary SQLite file, or
a PostgreSQL database ``danbao_bench_portfolio`` made on the server of --url
and dropped afterwards) and fills them with bulk Core inserts: 20,000
companies (about a quarter of them in related groups, linked by related_party
rows, some by credit code only), 5,000 individuals, N projects (statuses as a
book of some years has them: most released or in force, a few overdue,
compensated, written off; A角 among 30 managers; amounts from CNY 100,000 to
30m) and confirmed ledger entries (release, compensation, recovery,
underwriting) so 代偿率 and 代偿损失率 have data. Then, --repeat times each:
  - ``regulatory.dashboard()`` as the dashboard page calls it;
  - the project list as the list screen runs it: ``parse_list_args`` with
    ``status=X&a_manager=Y`` (Y cycling through the managers), then
    ``run_list`` (first page, the entity's order);
  - row-level (data permissions, record_rules): the project list (first page and
    count), the same list filtered by status, the workbench's count and the
    customer list as a project manager (own: A角 or B角) and as a department
    head (six managers in his department and the one below it), against the
    same calls without rules in the same run (ratio goal ≤ 1.2×), and against
    the hand-written WHERE the rule stands for;
and prints p50/p95, with each statement these calls run timed again on its
own at the driver (rows fetched, no ORM), which says how much of the time
is the database's and which statement it is. The baseline, in the same process on the same data: the
same calls with the indexes metadata declares for guarantee_project dropped
(the ratio says what they buy). It also prints those indexes — where each
comes from (``index: true``, a reference or user field, ``unique``,
``indexes:``) — and the database's plan for the list's statements with and
without them.

Run: .venv/bin/python bench/portfolio.py [--projects 100000] [--repeat 20]
     [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
Not a timed test: it prints figures; it asserts only that both runs return the same rows.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

from danbao.checks import gb2260, resident, uscc  # noqa: E402
from danbao.engines.query import parse_list_args, run_list  # noqa: E402
from danbao.engines.record_rules import RecordAccess  # noqa: E402
from danbao.engines.regulatory import dashboard  # noqa: E402
from danbao.meta.loader import load_packs  # noqa: E402
from danbao.model.builder import _index_specs, build_models  # noqa: E402
from danbao.model.engine import make_engine  # noqa: E402
from danbao.model.migrate import ensure_schema  # noqa: E402
from danbao.model.naming import index_name  # noqa: E402
from danbao.model.system import LEDGER_TABLE, ledger_effects_text  # noqa: E402

ENTITY = "guarantee_project"
BENCH_DB = "danbao_bench_portfolio"
TODAY = dt.date(2026, 11, 29)
MANAGERS = list(range(1, 31))
REGIONS = ["320100", "320500", "330100", "330200", "440100", "440300", "510100", "110000", "310000", "420100"]
INDUSTRIES = ["34", "29", "39", "35", "13", "17", "47", "48", "54", "65", "27", "01", "22", "51", "38", "36"]
#: a book some years old: mostly released or in force
STATUSES = {"released": 40, "guaranteeing": 34, "overdue": 3, "compensated": 3, "written_off": 1, "applying": 4,
            "reviewing": 5, "approved": 3, "rejected": 7}
PRODUCTS = {"bank_loan": 75, "construction_performance": 15, "litigation_preservation": 10}
CHUNK = 5000
NOW = dt.datetime(2026, 11, 29, 9, 0)


# -- the database ----------------------------------------------------------------------
def fresh_database(url: str | None, tmp: Path) -> tuple[str, callable]:
    """(url of an empty database, cleanup)."""
    if not url or url == "sqlite":
        return f"sqlite:///{tmp / 'portfolio.db'}", lambda: None
    server = sa.engine.make_url(url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DB}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{BENCH_DB}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DB}"'))
        admin.dispose()
    return server.set(database=BENCH_DB).render_as_string(hide_password=False), drop


def insert(conn, table, rows) -> None:
    for i in range(0, len(rows), CHUNK):
        conn.execute(table.insert(), rows[i:i + CHUNK])


def stamp(**row) -> dict:
    return {"version": 1, "created_at": NOW, "updated_at": NOW, **row}


def fill(engine, models, meta, n: int, seed: int = 7) -> dict:
    """Customers, related groups, ``n`` projects and confirmed ledger entries; counts of what was written."""
    rng = random.Random(seed)
    t = models.table
    counts = Counter()
    with engine.begin() as conn:
        banks = [stamp(id=i, name=f"合作银行{i:02d}", branch="分行", active=True) for i in range(1, 13)]
        insert(conn, t("bank"), banks)
        companies = []
        for i in range(1, 20001):
            region = rng.choice(REGIONS)
            companies.append(stamp(id=i, name=f"企业{i:05d}有限公司", uscc=uscc.build("91", region, f"{i:08d}"),
                                   region=region,
                                   industry=rng.choice(INDUSTRIES), registered_capital=Decimal(rng.randint(100, 5000)),
                                   basic_bank_id=rng.randint(1, 12)))
        insert(conn, t("corporate_customer"), companies)
        people = []
        for i in range(1, 5001):
            region = rng.choice(REGIONS)
            county = gb2260.counties_in(region)[i % len(gb2260.counties_in(region))]
            id_no = resident.build(county, dt.date(1960 + i % 40, 1 + i % 12, 1 + i % 28), i % 1000)
            people.append(stamp(id=i, name=f"个人{i:04d}", id_type="resident_id", id_no=id_no,
                                region=region))
        insert(conn, t("individual_customer"), people)
        related, cid = [], 1
        while cid < 20000:                           # a quarter of the companies in groups of 2-4
            size = rng.choice([2, 3, 4])
            if rng.random() < 0.1 and cid + size <= 20000:
                head, members = cid, range(cid + 1, cid + size)
                for m in members:
                    by_code = rng.random() < 0.3     # some only by credit code
                    related.append(stamp(parent_id=head, name=companies[m - 1]["name"], relation="subsidiary",
                                         uscc=companies[m - 1]["uscc"], related_customer_id=None if by_code else m))
                cid += size
            else:
                cid += 1
        insert(conn, t("related_party"), related)
        counts.update(banks=len(banks), companies=len(companies), individuals=len(people), related_parties=len(related))
        projects, entries = [], []
        statuses, weights = zip(*STATUSES.items())
        products, pweights = zip(*PRODUCTS.items())
        in_year = dt.date(TODAY.year, 1, 1)
        for i in range(1, n + 1):
            status = rng.choices(statuses, weights)[0]
            corporate = rng.random() < 0.85
            amount = Decimal(rng.choice([10, 20, 50, 80, 100, 150, 200, 300, 500, 800, 1000, 1500, 2000, 3000])) * 10000
            term = rng.choice([6, 12, 12, 24, 36])
            start = TODAY - dt.timedelta(days=rng.randint(-30, 2000))
            due = start + dt.timedelta(days=term * 30)
            risk = {"overdue": rng.choice(["attention", "substandard", "doubtful"]), "compensated": "doubtful",
                    "written_off": "loss"}.get(status, "normal")
            projects.append(stamp(
                id=i, project_no=f"DB-{start.year}-{i:06d}", name=f"项目{i:06d}", customer_kind="corporate" if corporate
                else "individual", corporate_customer_id=rng.randint(1, 20000) if corporate else None,
                individual_customer_id=None if corporate else rng.randint(1, 5000), bank_id=rng.randint(1, 12),
                amount=amount, term_months=term, start_date=start, due_date=due, fee_rate=Decimal("0.020000"),
                status=status, risk_class=risk, a_manager_id=rng.choice(MANAGERS), b_manager_id=rng.choice(MANAGERS),
                product=rng.choices(products, pweights)[0], coverage_ratio=Decimal(rng.randint(30, 200)) / 100,
                coverage_short=False, next_check_due=start + dt.timedelta(days=90) if status in ("guaranteeing", "overdue")
                else None, overdue_since=due if status in ("overdue", "compensated", "written_off") else None))
            customer = ("corporate_customer", projects[-1]["corporate_customer_id"]) if corporate else \
                ("individual_customer", projects[-1]["individual_customer_id"])

            def entry(kind, value, day):
                entries.append({"project_entity": ENTITY, "project_id": i, "customer_entity": customer[0],
                                "customer_id": customer[1], "kind": kind, "amount": value, "direction": 1,
                                "state": "confirmed", "booked_on": min(day, TODAY), "note": "", "made_by_id": 1,
                                "made_at": NOW, "checked_by_id": 31, "checked_at": NOW, "confirmed_by_id": 32,
                                "confirmed_at": NOW, "meta_version": meta.version[:200], "lock_version": 0,
                                "effects": ledger_effects_text(meta.ledger_kinds[kind].effects)})   # pinned, as make() does
            if status in ("guaranteeing", "overdue", "released", "compensated", "written_off"):
                entry("underwriting", amount, start)
            if status == "released":
                entry("release", amount, max(min(due, TODAY), start))
            if status in ("compensated", "written_off"):
                paid = (amount * Decimal("0.8")).quantize(Decimal("0.01"))
                day = in_year + dt.timedelta(days=rng.randint(0, 300)) if rng.random() < 0.5 else due
                entry("compensation_paid", paid, day)
                entry("release", amount, day)           # the liability ends with the compensation
                entry("recovery_received", (paid * Decimal(rng.randint(5, 60)) / 100).quantize(Decimal("0.01")), TODAY)
        insert(conn, t(ENTITY), projects)
        insert(conn, models.system[LEDGER_TABLE], entries)
        counts.update(projects=len(projects), ledger_entries=len(entries))
        counts.update({f"status {s}": c for s, c in Counter(p["status"] for p in projects).items()})
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in (ENTITY, "corporate_customer", "individual_customer", "related_party", LEDGER_TABLE):
                conn.execute(sa.text(f'ANALYZE "{name}"'))
        for table in ("bank", "corporate_customer", "individual_customer", "related_party", ENTITY):
            with engine.begin() as conn:           # explicit ids: move the sequences past them
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM \"{table}\"))"))
    return counts


# -- what metadata declares -----------------------------------------------------------------
def declared_indexes(meta) -> list[tuple[str, tuple[str, ...], bool, str]]:
    """(index name, columns, unique, where it comes from) for every index the project entity gets."""
    em = meta.entity(ENTITY)
    by_column = {f.column_name: f for f in em.column_fields}
    listed = {tuple(em.field(n).column_name if em.has_field(n) else n for n in ix.fields) for ix in em.indexes}
    out = []
    for cols, unique in _index_specs(em):
        why = []
        f = by_column.get(cols[0]) if len(cols) == 1 else None
        if f is not None:
            why.append("unique: true" if f.unique else "index: true" if f.index else f"{f.type} field (automatic)")
        if cols in listed:
            why.append("indexes: entry")
        out.append((index_name(em.table, cols, unique=unique), cols, unique, " + ".join(why) or "system column"))
    return out


def drop_indexes(engine, names) -> None:
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))


# -- timing -------------------------------------------------------------------------
def captured(engine, fn) -> list[tuple[str, object]]:
    """The statements (SQL and parameters as sent to the driver) ``fn(session)`` runs."""
    seen = []

    def listener(conn, cursor, statement, params, context, executemany):
        seen.append((statement, params))
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with Session(engine) as s:
            fn(s)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    return seen


def driver_time(engine, statement: str, params) -> float:
    """One statement at the driver, rows fetched: the database's share of a call."""
    with engine.connect() as conn:
        t0 = time.perf_counter()
        conn.exec_driver_sql(statement, params).fetchall()
        return time.perf_counter() - t0


def pct(values, p) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(values) -> str:
    return f"p50 {pct(values, 50) * 1000:8.1f} ms   p95 {pct(values, 95) * 1000:8.1f} ms"


def time_dashboard(engine, models, meta, repeat: int):
    """dashboard() ``repeat`` times: its times, the last board, and each of its statements'
    times at the driver (in call order)."""
    times, board = [], None
    for _ in range(repeat):
        with Session(engine) as s:
            t0 = time.perf_counter()
            board = dashboard(s, models, meta, today=TODAY)
            times.append(time.perf_counter() - t0)
    statements = captured(engine, lambda s: dashboard(s, models, meta, today=TODAY))
    parts = [(sql, [driver_time(engine, sql, params) for _ in range(max(3, repeat // 4))]) for sql, params in statements]
    return times, board, parts


def time_list(engine, models, meta, status: str, repeat: int):
    """run_list as the list screen calls it, A角 cycling through the managers: the total times,
    the count's and the page's times at the driver, what each call returned, and the two
    statements (with their parameters) of the last call."""
    em = meta.entity(ENTITY)
    total, count, page, ids, statements = [], [], [], [], []
    for i in range(repeat):
        lq = parse_list_args(em, {"status": status, "a_manager": str(MANAGERS[i % len(MANAGERS)])}, meta)
        assert not lq.errors, lq.errors
        with Session(engine) as s:
            t0 = time.perf_counter()
            result = run_list(s, models, em, lq)
            total.append(time.perf_counter() - t0)
            ids.append((result.total, [r.id for r in result.rows]))
        statements = captured(engine, lambda s: run_list(s, models, em, lq))
        count.append(driver_time(engine, *statements[0]))
        page.append(driver_time(engine, *statements[1]))
    return total, count, page, ids, statements


HEADS = list(range(101, 106))            # five department heads (not managers): 6 managers each


def seed_departments(engine, models) -> None:
    """Five departments of six managers; the fifth sits under the fourth (so its head
    sees twelve managers' projects: his own department and the one below)."""
    dept, member = models.table("department"), models.table("department_member")
    with engine.begin() as conn:
        insert(conn, dept, [stamp(id=d, name=f"业务{d}部", head_id=HEADS[d - 1], parent_department_id=4 if d == 5 else None)
                            for d in range(1, 6)])
        insert(conn, member, [stamp(parent_id=(m - 1) // 6 + 1, member_id=m) for m in MANAGERS])


def _p50(fn, repeat: int) -> float:
    fn()                                    # warm: plans, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return pct(times, 50)


def time_row_level(engine, models, meta, repeat: int) -> list[tuple[str, float, float, float | None]]:
    """(case, p50 with rules, p50 without rules, p50 of the hand-written equivalent WHERE)."""
    em = meta.entity(ENTITY)
    cust_em = meta.entity("corporate_customer")
    project = models.table(ENTITY)
    out = []
    for who, uid, roles in (("project manager", MANAGERS[7], {"project_manager"}),
                            ("department head", HEADS[3], {"department_head"})):
        with Session(engine) as s:
            access = RecordAccess(s, models, uid, frozenset(roles))
            people = access.department_users() if "department_head" in roles else [uid]
            own = sa.or_(project.c.a_manager_id == uid, project.c.b_manager_id == uid, project.c.a_manager_id.in_(people))
            for case, args in (("list", {}), ("list status=guaranteeing", {"status": "guaranteeing"})):
                lq = lambda: parse_list_args(em, args, meta)    # noqa: E731  (run_list may clear lq.sort)
                ruled = _p50(lambda: run_list(s, models, em, lq(), access=access), repeat)
                plain = _p50(lambda: run_list(s, models, em, lq()), repeat)
                rows_ruled = run_list(s, models, em, lq(), access=access)
                hand = _p50(lambda: (s.execute(sa.select(sa.func.count()).select_from(project).where(
                    own, *([project.c.status == args["status"]] if args else []))).scalar_one(),
                    s.execute(sa.select(project).where(own, *([project.c.status == args["status"]] if args else []))
                              .order_by(project.c.id.desc()).limit(20)).all()), repeat)
                out.append((f"{who}: project {case} (~{rows_ruled.total:,} of his)", ruled, plain, hand))
            count_ruled = _p50(lambda: s.execute(access.filter(sa.select(sa.func.count()).select_from(project), ENTITY,
                                                               "read", project)).scalar_one(), repeat)
            count_plain = _p50(lambda: s.execute(sa.select(sa.func.count()).select_from(project)).scalar_one(), repeat)
            count_hand = _p50(lambda: s.execute(sa.select(sa.func.count()).select_from(project).where(own)).scalar_one(),
                              repeat)
            out.append((f"{who}: workbench count of projects", count_ruled, count_plain, count_hand))
            cust = lambda: parse_list_args(cust_em, {}, meta)    # noqa: E731
            out.append((f"{who}: customer list (via his projects)",
                        _p50(lambda: run_list(s, models, cust_em, cust(), access=access), repeat),
                        _p50(lambda: run_list(s, models, cust_em, cust()), repeat), None))
    return out


def report_row_level(rows) -> None:
    print("row-level (record rules) p50, with rules / without / hand-written WHERE:")
    for case, ruled, plain, hand in rows:
        extra = f"; {ruled / hand:.2f}x the hand-written WHERE ({hand * 1000:.1f} ms)" if hand else ""
        print(f"  {case:58s} {ruled * 1000:7.1f} ms / {plain * 1000:7.1f} ms = {ruled / plain:.2f}x{extra}")


def explain(engine, statement: str, params) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            return [r[-1] for r in rows]
        rows = conn.exec_driver_sql(f"EXPLAIN {statement}", params).all()
        return [r[0] for r in rows]


def run_all(engine, models, meta, repeat):
    engine.dispose()                       # new connections: no plan or statement cached from before
    time_dashboard(engine, models, meta, 2)
    dash = time_dashboard(engine, models, meta, repeat)
    lists = {}
    for status in ("guaranteeing", "overdue"):
        time_list(engine, models, meta, status, 2)
        lists[status] = time_list(engine, models, meta, status, repeat)
    return dash, lists


def report(label, dash, lists, engine) -> None:
    times, _board, parts = dash
    print(f"{label}:")
    print(f"  dashboard()                              {summary(times)}")
    spent = sum(pct(values, 50) for _statement, values in parts)
    print(f"    its {len(parts)} statements at the driver: {spent * 1000:.1f} ms (p50 each, rows fetched); "
          f"the rest is Python; the slowest:")
    for statement, values in sorted(parts, key=lambda p: -pct(p[1], 50))[:5]:
        text = " ".join(statement.split())
        print(f"    {pct(values, 50) * 1000:7.1f} ms  {text[:150]}{'…' if len(text) > 150 else ''}")
    for status, (total, count, page, ids, statements) in lists.items():
        rows = statistics.mean(t for t, _ in ids)
        print(f"  list status={status:<12} a_manager=Y   {summary(total)}   (~{rows:,.0f} matching)")
        print(f"    count statement at the driver          {summary(count)}")
        print(f"    page statement at the driver           {summary(page)}")
    total, count, page, ids, statements = lists["guaranteeing"]
    for what, (statement, params) in zip(("count", "page"), statements[:2]):
        print(f"    plan of the {what} (status=guaranteeing):")
        for line in explain(engine, statement, params):
            print(f"      {line}")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--url", default=None, help="a PostgreSQL server URL (a database danbao_bench_portfolio is "
                                                    "made there and dropped); default a temporary SQLite file")
    args = parser.parse_args()
    meta = load_packs([REPO / "metadata" / "core"])
    models = build_models(meta)
    with tempfile.TemporaryDirectory() as tmp:
        url, cleanup = fresh_database(args.url, Path(tmp))
        engine = make_engine(url)
        try:
            ensure_schema(engine, models)
            t0 = time.perf_counter()
            counts = fill(engine, models, meta, args.projects)
            print(f"database : {engine.dialect.name}; filled in {time.perf_counter() - t0:.1f} s: "
                  + ", ".join(f"{k} {v:,}" for k, v in counts.items() if not k.startswith("status ")))
            print("statuses : " + ", ".join(f"{k[7:]} {v:,}" for k, v in sorted(counts.items()) if k.startswith("status ")))
            declared = declared_indexes(meta)
            print(f"indexes metadata declares for {ENTITY}:")
            for name, cols, unique, why in declared:
                print(f"  {name:48s} ({', '.join(cols)}){' unique' if unique else ''}  <- {why}")
            dash, lists = run_all(engine, models, meta, args.repeat)
            board = dash[1]
            print(f"dashboard: {board.in_force_count:,} in force, outstanding {board.outstanding:,.2f}, "
                  f"{len(board.top_groups)} top groups, 代偿率 {board.compensation_rate}, 代偿损失率 {board.loss_rate}")
            report(f"with the declared indexes ({args.repeat} runs each)", dash, lists, engine)
            seed_departments(engine, models)
            report_row_level(time_row_level(engine, models, meta, args.repeat))
            droppable = [name for name, _cols, unique, _why in declared if not unique]
            drop_indexes(engine, droppable)
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text(f'ANALYZE "{ENTITY}"'))
            dash0, lists0 = run_all(engine, models, meta, args.repeat)
            report(f"baseline: the {len(droppable)} non-unique declared indexes dropped", dash0, lists0, engine)
            print("ratio (baseline p50 ÷ indexed p50):")
            print(f"  dashboard                 {pct(dash0[0], 50) / pct(dash[0], 50):6.1f}x")
            for status in lists:
                print(f"  list status={status:<12} {pct(lists0[status][0], 50) / pct(lists[status][0], 50):6.1f}x   "
                      f"(count {pct(lists0[status][1], 50) / pct(lists[status][1], 50):.1f}x, "
                      f"page {pct(lists0[status][2], 50) / pct(lists[status][2], 50):.1f}x)")
            same = all(lists[s][3] == lists0[s][3] for s in lists)
            print(f"same rows with and without the indexes: {same}")
        finally:
            engine.dispose()
            cleanup()
    if not same:
        raise SystemExit("the list returned different rows without the indexes")


if __name__ == "__main__":
    main()
