"""Warning scans on a schedule, inside the server (APScheduler's BackgroundScheduler).

Why in the server: Danbao starts with one command on one machine, and a
warning that depends on the date (a maturity in 30 days) must be found
without an operator setting up cron. Each active warning rule gets one
interval job of its ``every_minutes``; the job scans that rule as of today
in ``DANBAO_TIMEZONE`` in its own database session, and logs — never raises
into the scheduler — when it fails. The first run of a rule comes
``every_minutes`` after its last recorded scan (shortly after start if that
is past), so restarts neither skip nor repeat a daily scan.

A scheduler belongs to one built app: ``create_app`` starts it when
``Settings.scheduler`` is on (``DANBAO_SCHEDULER``), a metadata swap stops
the old app's (``web/switch.py``) and the new app starts its own, and process
exit stops it. Two processes scanning at once cannot open duplicate
warnings (a unique index guards open warnings), but it is wasted work: with
several web workers, leave the scheduler on in one of them only.
"""
from __future__ import annotations

import atexit
import datetime as dt
import logging
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session

from danbao.engines.warnings import scan
from danbao.meta.model import Meta
from danbao.model.system import WARNING_SCAN_TABLE

log = logging.getLogger(__name__)
FIRST_RUN_DELAY = dt.timedelta(seconds=30)
STAGGER = dt.timedelta(seconds=3)      # rules due together start apart (SQLite has one writer)
EXTENSION = "danbao_scheduler"


def job_id(rule: str) -> str:
    return f"warning:{rule}"


#: Approval steps past their time limit are reminded / escalated / decided this often.
WORKFLOW_JOB = "workflow:timeouts"
WORKFLOW_EVERY_MINUTES = 5
#: Overdue marking, five-level class by days overdue, customer exposures: daily.
BUSINESS_JOB = "business:daily"
BUSINESS_EVERY_MINUTES = 24 * 60


class WarningScheduler:
    def __init__(self, engine: sa.Engine, models, meta: Meta, tz: ZoneInfo, *,
                 first_run_delay: dt.timedelta = FIRST_RUN_DELAY):
        self.engine, self.models, self.meta, self.tz = engine, models, meta, tz
        self.first_run_delay = first_run_delay
        self.scheduler = BackgroundScheduler(timezone=tz, daemon=True, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    @property
    def running(self) -> bool:
        return self.scheduler.running

    def start(self) -> "WarningScheduler":
        now = dt.datetime.now(self.tz)
        last = self._last_runs()
        active = sorted((r for r in self.meta.warnings.values() if r.active), key=lambda r: r.code)
        for i, rule in enumerate(active):
            every = dt.timedelta(minutes=rule.every_minutes)
            first = now + self.first_run_delay + i * STAGGER
            if rule.code in last:
                first = max(first, last[rule.code] + every)
            self.scheduler.add_job(self.run_rule, IntervalTrigger(minutes=rule.every_minutes, timezone=self.tz),
                                   args=[rule.code], id=job_id(rule.code), name=f"warning scan {rule.code}",
                                   next_run_time=first)
        if self.meta.workflows:
            self.scheduler.add_job(self.run_workflow_timeouts, IntervalTrigger(minutes=WORKFLOW_EVERY_MINUTES,
                                                                               timezone=self.tz),
                                   id=WORKFLOW_JOB, name="workflow time limits",
                                   next_run_time=now + self.first_run_delay)
        if self.meta.setting("project_entity"):
            self.scheduler.add_job(self.run_business_daily, IntervalTrigger(minutes=BUSINESS_EVERY_MINUTES,
                                                                            timezone=self.tz),
                                   id=BUSINESS_JOB, name="business daily run",
                                   next_run_time=now + self.first_run_delay)
        self.scheduler.start()
        atexit.register(self.shutdown)
        log.info("warning scheduler started: %d rule(s)", len(self.scheduler.get_jobs()))
        return self

    def _last_runs(self) -> dict[str, dt.datetime]:
        """Rule -> when it was last scanned (scan times are stored in server-local time)."""
        scans = self.models.system[WARNING_SCAN_TABLE]
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(scans.c.rule, sa.func.max(scans.c.ran_at)).group_by(scans.c.rule)).all()
        except sa.exc.SQLAlchemyError:
            log.exception("warning scheduler: could not read the last scans; every rule runs soon")
            return {}
        return {rule: ran.astimezone(self.tz) for rule, ran in rows if ran is not None}

    def run_rule(self, code: str):
        """Scan one rule now; the job body. Returns the scan's results, or None if it failed."""
        try:
            as_of = dt.datetime.now(self.tz).date()
            with Session(self.engine) as session:
                results = scan(session, self.models, self.meta, as_of=as_of, rules=[code])
            for r in results:
                log.info("scheduled warning scan %s as of %s: %d matching, %d opened, %d closed",
                         r.rule, as_of, r.matched, r.opened, r.closed)
            return results
        except Exception:   # a failing rule must not stop the scheduler or the other rules
            log.exception("scheduled warning scan %s failed", code)
            return None

    def run_workflow_timeouts(self):
        """Remind, escalate or decide approval steps past their time limit; the job body."""
        from danbao.engines.workflow import WorkflowEngine
        try:
            with Session(self.engine) as session:
                handled = WorkflowEngine(session, self.models, self.meta).process_timeouts()
            if handled:
                log.info("workflow time limits: %d task(s) handled", handled)
            return handled
        except Exception:   # must not stop the scheduler
            log.exception("workflow time limits failed")
            return None

    def run_business_daily(self):
        """Overdue projects, risk classes by days overdue, exposures; the job body."""
        from danbao.engines.business import daily_run
        try:
            with Session(self.engine) as session:
                counts = daily_run(session, self.models, self.meta, dt.datetime.now(self.tz).date())
            log.info("business daily run: %s", counts)
            return counts
        except Exception:   # must not stop the scheduler
            log.exception("business daily run failed")
            return None

    def intervals(self) -> dict[str, dt.timedelta]:
        """Rule -> its job's interval (what is scheduled)."""
        return {job.args[0]: job.trigger.interval for job in self.scheduler.get_jobs()
                if job.id.startswith("warning:")}

    def run_soon(self, code: str) -> None:
        """Move a rule's next run to now (its interval then continues from there)."""
        self.scheduler.modify_job(job_id(code), next_run_time=dt.datetime.now(self.tz))

    def shutdown(self) -> None:
        """Stop; a running scan finishes on its own thread. Safe to call twice."""
        atexit.unregister(self.shutdown)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            log.info("warning scheduler stopped")


def start_for(app, runtime) -> WarningScheduler:
    """Start the scheduler of a freshly built app (called by ``create_app``)."""
    from danbao.config import local_tz
    scheduler = WarningScheduler(runtime.db.engine, runtime.models, runtime.meta, local_tz()).start()
    app.extensions[EXTENSION] = scheduler
    return scheduler


def stop_for(app) -> None:
    """Stop the scheduler of an app being retired (a metadata swap), if it has one."""
    scheduler = app.extensions.pop(EXTENSION, None)
    if scheduler is not None:
        scheduler.shutdown()
