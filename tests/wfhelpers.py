"""Drive the approval engine without a web server.

``WfWorld(url)`` builds the core pack's tables on an empty database, adds the
three Flask-AppBuilder tables the engine reads people from (``ab_user``,
``ab_role``, ``ab_user_role`` — normally created by FAB) with a small cast of
users, and offers short helpers: make a customer and a project, find a user's
open task on an instance, read the action log. Time is a ``Clock`` the test
moves by hand and hands to the engine (``clock=``)::

    world = WfWorld(database_url)
    p = world.project(amount="5000000")
    iid = world.wf().start("guarantee_project", p, "project_standard", world.actor("pm2"))
    world.wf().act(world.task("risk", iid), "approve", world.actor("risk"))
"""
from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from danbao.checks import uscc as uscc_code
from danbao.engines.records import Actor, RecordService
from danbao.engines.workflow import WorkflowEngine
from danbao.meta.loader import load_packs
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import ensure_schema
from danbao.model.system import WF_ACTION_TABLE, WF_INSTANCE_TABLE, WF_TASK_TABLE, WF_VOTE_TABLE

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "metadata" / "core"
ENTITY = "guarantee_project"

#: user name -> roles. pm/pm2 start projects (pm is the usual A角, so pm2 or
#: the B角 submits: the A角 must stay free to sign the contract); five
#: committee votes with the chairman (boss).
PEOPLE = {
    "pm": ["project_manager"], "pm2": ["project_manager"], "risk": ["risk_officer"],
    "boss": ["manager"], "gm": ["manager"], "fin": ["finance"],
    "c1": ["committee_member"], "c2": ["committee_member"], "c3": ["committee_member"], "c4": ["committee_member"],
    "clerk": [],
}
ROLES = ("project_manager", "risk_officer", "committee_member", "finance", "manager", "auditor")

FAB = sa.MetaData()
AB_USER = sa.Table("ab_user", FAB, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("username", sa.String(64), nullable=False), sa.Column("first_name", sa.String(64)),
                   sa.Column("last_name", sa.String(64)), sa.Column("active", sa.Boolean, nullable=False))
AB_ROLE = sa.Table("ab_role", FAB, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("name", sa.String(64), nullable=False))
AB_USER_ROLE = sa.Table("ab_user_role", FAB, sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("user_id", sa.Integer, nullable=False), sa.Column("role_id", sa.Integer, nullable=False))

_BUILT: dict[tuple, tuple] = {}


def core_build(packs=(CORE,)):
    """(meta, models) of ``packs``, built once per process."""
    key = tuple(str(p) for p in packs)
    if key not in _BUILT:
        meta = load_packs(list(packs))
        _BUILT[key] = (meta, build_models(meta))
    return _BUILT[key]


def full_cover(amount) -> list[dict]:
    """Counter-guarantee rows covering ``amount`` in full (earnest money counts at 100%),
    so a project passes its product's minimum coverage at first review."""
    return [{"kind": "earnest", "appraised_value": str(amount)}]


def make_uscc(n: int) -> str:
    return uscc_code.build("91", "320100", f"{n:08d}")


class Clock:
    """A clock the test moves: ``clock()`` is now, ``clock.advance(hours=49)``."""

    def __init__(self, start: dt.datetime = dt.datetime(2026, 12, 1, 9, 0)):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


class WfWorld:
    def __init__(self, url: str, *, people=None, packs=(CORE,), engine: sa.Engine | None = None, **engine_kw):
        self.meta, self.models = core_build(packs)
        self.engine = engine or make_engine(url, **engine_kw)
        ensure_schema(self.engine, self.models)
        FAB.create_all(self.engine)
        self.clock = Clock()
        self.s = Session(self.engine)
        self.uid: dict[str, int] = {}
        self.rid: dict[str, int] = {}
        self._seq = itertools.count(1)
        with self.engine.begin() as conn:
            for i, role in enumerate(sorted(set(ROLES) | set(self.meta.roles)), 1):
                conn.execute(AB_ROLE.insert().values(id=i, name=role))
                self.rid[role] = i
        for name, roles in (people or PEOPLE).items():
            self.add_user(name, roles)

    # -- people --------------------------------------------------------------
    def add_user(self, name: str, roles=(), *, active: bool = True) -> int:
        uid = len(self.uid) + 1
        with self.engine.begin() as conn:
            conn.execute(AB_USER.insert().values(id=uid, username=name, first_name=name, last_name="", active=active))
            for role in roles:
                conn.execute(AB_USER_ROLE.insert().values(user_id=uid, role_id=self.rid[role]))
        self.uid[name] = uid
        return uid

    def set_roles(self, name: str, roles) -> None:
        with self.engine.begin() as conn:
            conn.execute(AB_USER_ROLE.delete().where(AB_USER_ROLE.c.user_id == self.uid[name]))
            for role in roles:
                conn.execute(AB_USER_ROLE.insert().values(user_id=self.uid[name], role_id=self.rid[role]))

    def drop_role(self, role: str) -> None:
        """Nobody holds ``role`` any more."""
        with self.engine.begin() as conn:
            conn.execute(AB_USER_ROLE.delete().where(AB_USER_ROLE.c.role_id == self.rid[role]))

    def actor(self, name: str) -> Actor:
        return Actor(self.uid[name], name)

    def name_of(self, user_id: int | None) -> str | None:
        return next((n for n, i in self.uid.items() if i == user_id), None)

    # -- records -------------------------------------------------------------
    def records(self, session: Session | None = None) -> RecordService:
        return RecordService(self.models, session or self.s, Actor(None, "test"), clock=self.clock)

    def customer(self, grade: str | None = None) -> int:
        n = next(self._seq)
        corp = self.records().create("corporate_customer", {"name": f"企业{n}", "uscc": make_uscc(n)})
        if grade is not None:
            self.set("corporate_customer", corp.id, credit_grade=grade)
        return corp.id

    def project(self, amount="5000000", *, a_manager: str | None = "pm", customer: int | None = None,
                documents: bool = True, **values) -> int:
        """A project in application; ``documents``: with its required application and
        contract documents filed and the contract numbers typed (初审 and 签约办理 are
        left only with them), as a complete file arrives."""
        if documents:                   # the contracts' numbers too, so a test may drive it past signing
            values = {"loan_contract_no": "JK-1", "bank_contract_no": "BZ-1", "entrustment_contract_no": "WT-1",
                      "letter_no": "BH-1", **values}
        pid = self._project(amount, a_manager=a_manager, customer=customer, **values)
        if documents and self.meta.entity(ENTITY).has_field("documents"):
            self.file_documents(pid, "application")
            self.file_documents(pid, "contract")
        return pid

    def _project(self, amount="5000000", *, a_manager: str | None = "pm", customer: int | None = None,
                 **values) -> int:
        n = next(self._seq)
        data = {"project_no": f"P{n:06d}", "name": f"项目{n}", "customer_kind": "corporate",
                "corporate_customer": customer or self.customer(), "amount": str(amount), "term_months": 12,
                "a_manager": self.uid[a_manager] if a_manager else None, "start_date": self.clock().date(),
                "counter_guarantees": full_cover(amount), **values}
        return self.records().create(ENTITY, data).id

    def file_documents(self, project: int, stage: str = "application") -> list[str]:
        """The required documents of ``stage`` the project still lacks, as tagged files."""
        from wfapifixtures import file_required
        codes = file_required(self.s, self.models, self.meta, project, stage, self.clock())
        self.s.commit()
        return codes

    def set(self, entity: str, record_id: int, **values) -> None:
        """Write fields as the system would (read-only ones too), committed."""
        self.records().assign(entity, record_id, values)
        self.s.commit()

    def value(self, entity: str, record_id: int, field: str):
        self.s.commit()
        table = self.models.table(entity)
        column = self.meta.entity(entity).field(field).column_name
        return self.s.execute(sa.select(table.c[column]).where(table.c.id == record_id)).scalar_one()

    # -- the engine ------------------------------------------------------------
    def wf(self, session: Session | None = None, meta=None, models=None) -> WorkflowEngine:
        return WorkflowEngine(session or self.s, models or self.models, meta or self.meta, clock=self.clock)

    @property
    def tables(self):
        t = self.models.system
        return t[WF_INSTANCE_TABLE], t[WF_TASK_TABLE], t[WF_ACTION_TABLE], t[WF_VOTE_TABLE]

    def start(self, project: int, code: str = "project_standard", who: str = "pm2", **kw) -> int:
        return self.wf().start(ENTITY, project, code, self.actor(who), **kw)

    def instance(self, iid: int):
        self.s.commit()
        inst = self.tables[0]
        return self.s.execute(sa.select(inst).where(inst.c.id == iid)).first()

    def task(self, name: str, iid: int) -> int:
        """The one open task of ``name`` on instance ``iid``."""
        mine = [t.id for t in self.wf().open_tasks(self.uid[name]) if t.instance_id == iid]
        assert len(mine) == 1, f"{name} has {len(mine)} open tasks on instance {iid}"
        return mine[0]

    def tasks(self, iid: int, *, status=("open", "waiting"), current: bool = True) -> dict[str, str]:
        """user name -> status of the instance's tasks (current round by default)."""
        inst = self.instance(iid)
        rows = self.wf().tasks_of(iid, inst.round if current else None)
        return {self.name_of(t.user_id): t.status for t in rows if status is None or t.status in status}

    def holders(self, iid: int) -> set[str]:
        """Who has an open task on the instance now."""
        return {n for n, s in self.tasks(iid).items() if s == "open"}

    def log(self, iid: int) -> list[tuple]:
        """(action, step, username, target_step) of every action, in order."""
        self.s.commit()
        return [(a.action, a.step, a.username, a.target_step) for a in self.wf().timeline(iid)]

    def actions(self, iid: int) -> list[str]:
        return [a[0] for a in self.log(iid)]

    def close(self) -> None:
        self.s.close()
        self.engine.dispose()
