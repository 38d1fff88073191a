"""Approval workflow: many applications driven through the standard route by
people acting at the same time, with nothing lost or done twice.

Builds the core pack's tables in a fresh database (a new PostgreSQL schema,
dropped afterwards, or a temporary SQLite file), adds the three
Flask-AppBuilder tables the engine reads people from, 14 users (2 risk
officers, 2 managers who chair the committee, 4 committee members, 2 finance,
4 project managers) and N guarantee projects in bulk (amounts 500,000 to
9,990,000, so about three in four reach the 3,000,000 committee threshold;
fee rate and loan date filled in). Then, timed:
  - start: every project submitted into ``project_standard`` (by a project
    manager who is not its A角), by --threads threads at once;
  - drive: --threads threads, each with its own session and connection, act
    as the users on their open tasks until every instance has finished:
    first review (any) → second review (the other risk officer: the
    managers leave it to risk, so separation of duties keeps them free to
    chair and sign off) → committee (six votes, all agree) or manager sign-off → fee
    collection → contract signing (the A角) → loan confirmation → in force.
    The tasks are shared out by id, so two threads do act on one instance at
    the same moment (several approvals of a step); the loser gets Conflict
    and tries again on its next pass.
Prints transitions (steps entered) per second and actions per second, the
conflicts met, then proves nothing was lost or doubled: every instance ended
in_force on round 6 with status guaranteeing; the counts of start, approve,
vote and meeting_passed rows, of votes and of steps entered equal the
expected numbers; no task was acted on twice.

Run: .venv/bin/python bench/workflow.py [--applications 1000] [--threads 8]
     [--url postgresql+psycopg://postgres@127.0.0.1:5432/danbao_test | sqlite]
Not a timed test: it prints figures, it asserts only that the counts add up.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

from danbao.checks import uscc as uscc_code  # noqa: E402
from danbao.engines.records import Actor, Conflict, RecordService  # noqa: E402
from danbao.engines.workflow import Refused, WorkflowEngine  # noqa: E402
from danbao.meta.loader import load_packs  # noqa: E402
from danbao.model.builder import build_models  # noqa: E402
from danbao.model.engine import make_engine  # noqa: E402
from danbao.model.migrate import ensure_schema  # noqa: E402
from danbao.model.system import WF_ACTION_TABLE, WF_INSTANCE_TABLE, WF_TASK_TABLE, WF_VOTE_TABLE  # noqa: E402

ENTITY, CODE = "guarantee_project", "project_standard"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/danbao_test"
PEOPLE = {"risk1": "risk_officer", "risk2": "risk_officer", "boss": "manager", "gm": "manager",
          "c1": "committee_member", "c2": "committee_member", "c3": "committee_member", "c4": "committee_member",
          "fin1": "finance", "fin2": "finance", "pm1": "project_manager", "pm2": "project_manager",
          "pm3": "project_manager", "pm4": "project_manager"}
PMS = ["pm1", "pm2", "pm3", "pm4"]
SECOND_REVIEW = 1                      # the risk officer who did not do the first review
MEETING = 6                            # c1..c4 and the two chairmen
BUSY = (Conflict, sa.exc.OperationalError)   # a lost race; SQLite's "database is locked"

FAB = sa.MetaData()
AB_USER = sa.Table("ab_user", FAB, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("username", sa.String(64)), sa.Column("first_name", sa.String(64)),
                   sa.Column("last_name", sa.String(64)), sa.Column("active", sa.Boolean))
AB_ROLE = sa.Table("ab_role", FAB, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("name", sa.String(64)))
AB_USER_ROLE = sa.Table("ab_user_role", FAB, sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("user_id", sa.Integer), sa.Column("role_id", sa.Integer))


def fresh_database(url: str, tmp: Path) -> tuple[str, callable]:
    """(url of an empty database, cleanup)."""
    if url == "sqlite":
        return f"sqlite:///{tmp / 'workflow.db'}", lambda: None
    schema = "bench_wf_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}", drop


def setup(engine, models, n: int, seed: int = 11) -> tuple[dict, list[int], int]:
    """Users, one customer, ``n`` projects in bulk; (user ids, project ids, how many reach the committee)."""
    FAB.create_all(engine)
    uid = {name: i for i, name in enumerate(PEOPLE, 1)}
    roles = {r: i for i, r in enumerate(sorted(set(PEOPLE.values())), 1)}
    with engine.begin() as conn:
        conn.execute(AB_ROLE.insert(), [{"id": i, "name": r} for r, i in roles.items()])
        conn.execute(AB_USER.insert(), [{"id": uid[u], "username": u, "first_name": u, "last_name": "",
                                         "active": True} for u in PEOPLE])
        conn.execute(AB_USER_ROLE.insert(), [{"user_id": uid[u], "role_id": roles[r]} for u, r in PEOPLE.items()])
    with Session(engine) as s:
        corp = RecordService(models, s, Actor(None, "bench")).create(
            "corporate_customer", {"name": "基准企业", "uscc": uscc_code.build("91", "320100", "00000001")}).id
    rng = random.Random(seed)
    now = dt.datetime(2026, 12, 1, 9, 0)
    rows, big = [], 0
    for i in range(n):
        amount = Decimal(rng.randrange(50, 1000)) * 10_000            # 500,000 .. 9,990,000
        big += amount >= 3_000_000
        rows.append({"project_no": f"B{i:07d}", "name": f"基准项目{i}", "customer_kind": "corporate",
                     "corporate_customer_id": corp, "amount": amount, "term_months": 12,
                     "start_date": dt.date(2026, 12, 15), "due_date": dt.date(2027, 12, 15),
                     "fee_rate": Decimal("0.015"), "status": "applying", "risk_class": "normal", "product": "bank_loan",
                     "a_manager_id": uid[PMS[i % len(PMS)]], "created_at": now, "updated_at": now, "version": 1})
    table = models.table(ENTITY)
    with engine.begin() as conn:
        for k in range(0, n, 5000):
            conn.execute(table.insert(), rows[k:k + 5000])
        ids = [r[0] for r in conn.execute(sa.select(table.c.id).order_by(table.c.id))]
        # earnest money covering each amount in full: the product's minimum coverage holds at first review
        cover = models.table("counter_guarantee")
        amounts = dict(conn.execute(sa.select(table.c.id, table.c.amount)).all())
        guarantees = [{"parent_id": pid, "kind": "earnest", "appraised_value": amounts[pid], "created_at": now,
                       "updated_at": now, "version": 1} for pid in ids]
        for k in range(0, n, 5000):
            conn.execute(cover.insert(), guarantees[k:k + 5000])
    return uid, ids, big


def start_all(engine, models, meta, uid, ids, threads: int) -> Counter:
    stats = Counter()

    def work(part):
        with Session(engine) as s:
            wf = WorkflowEngine(s, models, meta)
            for pid in part:
                a_manager = PMS[(pid - ids[0]) % len(PMS)]
                starter = PMS[(PMS.index(a_manager) + 1) % len(PMS)]     # not the A角: the A角 signs later
                for _ in range(20):
                    try:
                        wf.start(ENTITY, pid, CODE, Actor(uid[starter], starter))
                        stats["start"] += 1
                        break
                    except BUSY:
                        s.rollback()
                        stats["busy"] += 1
    run_threads([lambda p=ids[i::threads]: work(p) for i in range(threads)])
    return stats


def drive(engine, models, meta, uid, threads: int, batch: int = 200) -> Counter:
    """Each thread acts as every user on the open tasks whose id ≡ its number
    (mod threads) until no instance is running."""
    tasks, instances = models.system[WF_TASK_TABLE], models.system[WF_INSTANCE_TABLE]
    stats = Counter()
    lock = threading.Lock()
    names = list(PEOPLE)

    def work(me: int):
        local = Counter()
        rng = random.Random(me)
        with Session(engine) as s:
            wf = WorkflowEngine(s, models, meta)
            while True:
                found = 0
                for name in rng.sample(names, len(names)):
                    rows = s.execute(sa.select(tasks.c.id, tasks.c.step).where(
                        tasks.c.user_id == uid[name], tasks.c.status == "open",
                        tasks.c.id % threads == me).order_by(tasks.c.id).limit(batch)).all()
                    s.commit()
                    found += len(rows)
                    actor = Actor(uid[name], name)
                    for task_id, step in rows:
                        if step == "second_review" and PEOPLE[name] == "manager":
                            continue                               # left to risk (see the docstring)
                        try:
                            if step == "committee":
                                wf.vote(task_id, "agree", actor, comment="同意")
                                local["vote"] += 1
                            else:
                                wf.act(task_id, "approve", actor)
                                local["approve"] += 1
                        except BUSY:
                            s.rollback()
                            local["conflict"] += 1                 # still open: the next pass tries again
                        except Refused:
                            s.rollback()
                            local["refused"] += 1                  # moved on meanwhile (e.g. mode any)
                if not found:
                    running = s.execute(sa.select(sa.func.count()).select_from(instances).where(
                        instances.c.state == "running")).scalar_one()
                    s.commit()
                    if not running:
                        break
                    time.sleep(0.01)
        with lock:
            stats.update(local)
    run_threads([lambda i=i: work(i) for i in range(threads)])
    return stats


def run_threads(jobs) -> None:
    errors = []

    def guard(job):
        try:
            job()
        except BaseException as exc:          # noqa: BLE001 - re-raised below
            errors.append(exc)
    threads = [threading.Thread(target=guard, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def verify(engine, models, n: int, big: int) -> list[str]:
    """Every count that must hold; the problems found (none if all is well)."""
    inst, task, action, vote = (models.system[t] for t in (WF_INSTANCE_TABLE, WF_TASK_TABLE, WF_ACTION_TABLE,
                                                           WF_VOTE_TABLE))
    project = models.table(ENTITY)
    small = n - big
    problems = []
    with engine.connect() as c:
        def one(q):
            return c.execute(q).scalar_one()

        def count(table, *where):
            return one(sa.select(sa.func.count()).select_from(table).where(*where))

        ended = dict(c.execute(sa.select(inst.c.state, sa.func.count()).group_by(inst.c.state)).all())
        checks = [
            ("instances in_force on round 6", count(inst, inst.c.state == "approved", inst.c.step == "in_force",
                                                    inst.c.round == 6), n),
            ("instances in any other state", sum(ended.values()) - ended.get("approved", 0), 0),
            ("projects guaranteeing", count(project, project.c.status == "guaranteeing"), n),
            ("start rows", count(action, action.c.action == "start"), n),
            ("approve rows", count(action, action.c.action == "approve"), n * (1 + SECOND_REVIEW + 3) + small),
            ("vote rows", count(action, action.c.action == "vote"), big * MEETING),
            ("votes", count(vote), big * MEETING),
            ("meeting_passed rows", count(action, action.c.action == "meeting_passed"), big),
            ("other actions", count(action, action.c.action.notin_(("start", "approve", "vote", "meeting_passed"))),
             0),
            ("steps entered (rounds with tasks)", one(sa.select(sa.func.count()).select_from(
                sa.select(task.c.instance_id, task.c.round).distinct().subquery())), n * 6),
            ("tasks still open or waiting", count(task, task.c.status.in_(("open", "waiting"))), 0),
            ("tasks acted on twice", one(sa.select(sa.func.count()).select_from(
                sa.select(action.c.task_id).where(action.c.action.in_(("approve", "vote")))
                .group_by(action.c.task_id).having(sa.func.count() > 1).subquery())), 0),
            ("approved tasks without exactly one log row", count(task, task.c.status.in_(("approved", "voted")))
             - count(action, action.c.action.in_(("approve", "vote"))), 0),
        ]
        for what, got, want in checks:
            mark = "ok" if got == want else "WRONG"
            print(f"  {what:45s} {got:>10,}  expected {want:>10,}  {mark}")
            if got != want:
                problems.append(what)
    return problems


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)      # figures appear as they come, also into a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL database (a schema is made and dropped), "
                                                           "or 'sqlite' for a temporary SQLite file")
    args = parser.parse_args()
    meta = load_packs([REPO / "metadata" / "core"])
    models = build_models(meta)
    with tempfile.TemporaryDirectory() as tmp:
        url, cleanup = fresh_database(args.url, Path(tmp))
        engine = make_engine(url, pool_size=args.threads + 2, max_overflow=4) if not url.startswith("sqlite") \
            else make_engine(url)
        try:
            ensure_schema(engine, models)
            t0 = time.perf_counter()
            uid, ids, big = setup(engine, models, args.applications)
            print(f"database : {engine.dialect.name}; threads: {args.threads}; applications: {len(ids):,} "
                  f"({big:,} to the committee, {len(ids) - big:,} to sign-off); set up in "
                  f"{time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            started = start_all(engine, models, meta, uid, ids, args.threads)
            start_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            stats = drive(engine, models, meta, uid, args.threads)
            drive_s = time.perf_counter() - t0
            transitions = len(ids) * 6                     # steps entered after the first
            actions = stats["approve"] + stats["vote"]
            print(f"start    : {start_s:8.1f} s  {started['start'] / start_s:9,.0f} starts/s "
                  f"({started['busy']:,} busy retries)")
            print(f"drive    : {drive_s:8.1f} s  {transitions / drive_s:9,.0f} transitions/s  "
                  f"{actions / drive_s:9,.0f} approvals+votes/s")
            print(f"overall  : {start_s + drive_s:8.1f} s  {(transitions + len(ids)) / (start_s + drive_s):9,.0f} "
                  f"transitions/s (starts included)")
            print(f"races    : {stats['conflict']:,} conflicts (retried), {stats['refused']:,} refused "
                  f"(the step had moved on)")
            print("counts   :")
            problems = verify(engine, models, len(ids), big)
        finally:
            engine.dispose()
            cleanup()
    if problems:
        raise SystemExit(f"lost or doubled: {', '.join(problems)}")
    print("nothing lost, nothing doubled")


if __name__ == "__main__":
    main()
