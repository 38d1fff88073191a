"""Warning scans (预警): each active rule checked over its whole table in SQL.

For every rule, one query finds the ids whose condition holds (the rule's
expression translated to SQL, so a million rows cost one query, not a
million Python calls). A newly matching record gets an open warning; an
open one is left alone (never a duplicate); an open warning whose record no
longer matches is closed and kept as history.

Scans remember the day they last ran. A rule that reads ``today()`` is also
checked for every day missed since then (up to ``CATCH_UP_DAYS``), so a
condition that was true on a day no scan ran is still reported — the
date-triggered alert other platforms skip. No Flask here.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from jinja2.sandbox import SandboxedEnvironment

from danbao.expr import entity_columns, row_values
from danbao.meta.expressions import warning_key
from danbao.meta.model import Meta, WarningRuleMeta
from danbao.model.system import WARNING_SCAN_TABLE, WARNING_TABLE

CATCH_UP_DAYS = 31
log = logging.getLogger(__name__)
_TEMPLATES = SandboxedEnvironment(autoescape=False)


@dataclass
class RuleResult:
    rule: str
    matched: int
    opened: int
    closed: int


def scan(session, models, meta: Meta, *, as_of: dt.date, now: dt.datetime | None = None,
         rules: list[str] | None = None) -> list[RuleResult]:
    """Scan the active rules (or those named) as of ``as_of``; commit; return counts per rule."""
    now = now or dt.datetime.now()
    results = []
    for rule in meta.warnings.values():
        if not rule.active or (rules is not None and rule.code not in rules):
            continue
        result = _scan_rule_once(session, models, meta, rule, as_of, now)
        if result is not None:
            results.append(result)
    return results


def _scan_rule_once(session, models, meta: Meta, rule: WarningRuleMeta, as_of: dt.date, now) -> RuleResult | None:
    """One rule in its own transaction. Another process scanning the same rule at
    the same time can open the same warning first: the unique index on open
    warnings refuses ours, this rule is rolled back and scanned again (now seeing
    the other's rows); if that fails too it is skipped until the next scan.
    Other database errors are raised (after rolling back)."""
    for attempt in (1, 2):
        try:
            result = _scan_rule(session, models, meta, rule, as_of, now)
            session.commit()
            return result
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
            session.rollback()
            if not _lost_race(exc):
                raise
            log.warning("warning rule %s: concurrent scan (attempt %d), rolled back: %s",
                        rule.code, attempt, str(exc.orig).splitlines()[0][:200])
    log.error("warning rule %s skipped: another scan kept conflicting", rule.code)
    return None


def _lost_race(exc: sa.exc.DBAPIError) -> bool:
    """Another transaction got there first: the open-warning index refused ours,
    SQLite's write lock stayed taken, or PostgreSQL broke a deadlock."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "deadlock" in text or "could not serialize" in text


def _scan_rule(session, models, meta: Meta, rule: WarningRuleMeta, as_of: dt.date, now) -> RuleResult:
    warnings = models.system[WARNING_TABLE]
    compiled = meta.expressions[warning_key(rule.code)]
    em = meta.entity(rule.entity)
    table = models.table(rule.entity)
    columns = entity_columns(em, table)
    dialect = session.get_bind().dialect.name

    def matching(day: dt.date) -> set[int]:
        query = sa.select(table.c.id).where(compiled.to_sql(columns, today=day, dialect_name=dialect))
        return {row[0] for row in session.execute(query)}

    open_ids = {r[0] for r in session.execute(sa.select(warnings.c.record_id).where(
        warnings.c.rule == rule.code, warnings.c.status == "open"))}
    matched = matching(as_of)
    found: dict[int, dt.date] = {rid: as_of for rid in matched}
    if "today" in compiled.functions:
        for day in _missed_days(session, models, rule.code, as_of):
            for rid in matching(day) - matched:
                found.setdefault(rid, day)
    new = {rid: day for rid, day in found.items() if rid not in open_ids}
    _open(session, models, meta, rule, em, table, new, now)
    # matched only on a missed day: reported above, and closed now that it no longer holds
    to_close = (open_ids | set(new)) - matched
    if to_close:
        session.execute(warnings.update().where(
            warnings.c.rule == rule.code, warnings.c.status == "open",
            warnings.c.record_id.in_(sorted(to_close))).values(status="closed", closed_at=now))
    session.execute(models.system[WARNING_SCAN_TABLE].insert().values(
        rule=rule.code, ran_at=now, as_of=as_of, matched=len(matched), opened=len(new), closed=len(to_close)))
    return RuleResult(rule.code, len(matched), len(new), len(to_close))


def _missed_days(session, models, code: str, as_of: dt.date) -> list[dt.date]:
    scans = models.system[WARNING_SCAN_TABLE]
    last = session.execute(sa.select(sa.func.max(scans.c.as_of)).where(
        scans.c.rule == code, scans.c.as_of < as_of)).scalar()
    if last is None:
        return []
    start = max(last + dt.timedelta(days=1), as_of - dt.timedelta(days=CATCH_UP_DAYS))
    return [start + dt.timedelta(days=i) for i in range((as_of - start).days)]


def _open(session, models, meta, rule, em, table, new: dict[int, dt.date], now) -> None:
    if not new:
        return
    rows = []
    ids = sorted(new)
    for chunk in range(0, len(ids), 1000):
        part = ids[chunk:chunk + 1000]
        for row in session.execute(sa.select(table).where(table.c.id.in_(part))).mappings():
            values = row_values(em, row)
            rows.append({
                "rule": rule.code, "entity": rule.entity, "record_id": row["id"], "level": rule.level,
                "message_zh": _render(rule.message.zh, values), "message_en": _render(rule.message.en, values),
                "status": "open", "opened_at": now, "opened_as_of": new[row["id"]],
                "meta_version": meta.version[:200]})
    session.execute(models.system[WARNING_TABLE].insert(), rows)


def _render(template: str, values: dict) -> str:
    """Message templates run sandboxed: metadata may not reach Python through them."""
    try:
        return _TEMPLATES.from_string(template).render(**values)[:2000]
    except Exception as exc:   # a bad template must not stop the scan; say what went wrong
        return f"{template} [template error: {type(exc).__name__}]"


def acknowledge(session, models, warning_id: int, *, user: str, comment: str, now=None) -> bool:
    """Record that someone has seen a warning, with their comment; the warning stays as history."""
    warnings = models.system[WARNING_TABLE]
    result = session.execute(warnings.update().where(warnings.c.id == warning_id).values(
        acknowledged_at=now or dt.datetime.now(), acknowledged_by=user, ack_comment=comment[:2000]))
    session.commit()
    return result.rowcount == 1
