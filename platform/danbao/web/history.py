"""A record's change history (修改记录) as people read it: one entry per save —
when, who, and what changed (field: old → new) — newest first, instead of one
line per field. The audit table keeps a row per field; the rows of one save
share the record version it made (and its time and user)."""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

#: saves shown at first; ``?history=all`` shows every save the page reads
SHOWN = 20
#: audit rows read for "all" (a save of a big record writes a row per field)
READ_LIMIT = 3000
#: audit rows read at a time for the latest saves
BATCH = 200
#: a save listing more changes than this starts folded (a creation, a fee plan)
FOLD_ABOVE = 6


@dataclass
class Change:
    at: object
    username: str | None
    action: str                                   # create | update | delete (of the newest row read first)
    rows: list = field(default_factory=list)

    @property
    def folded(self) -> bool:
        return len(self.rows) > FOLD_ABOVE


@dataclass
class HistoryPage:
    changes: list[Change]
    more: int = 0                                 # saves not shown (the link to all of them says how many)
    cut: bool = False                             # "all" read fewer rows than there are


def history_page(session, audit: sa.Table, entity: str, record_id: int, *, everything: bool) -> HistoryPage:
    """The saves of a record (its child rows' included), newest first: the latest
    ``SHOWN`` (read a batch at a time, so a long history costs the page no more
    than the saves it shows, plus one count), or ``everything`` up to ``READ_LIMIT`` rows."""
    mine = (audit.c.root_entity == entity, audit.c.root_id == record_id)
    if everything:
        rows = session.execute(sa.select(audit).where(*mine).order_by(audit.c.id.desc()).limit(READ_LIMIT + 1)).all()
        return HistoryPage(_grouped(rows[:READ_LIMIT]), cut=len(rows) > READ_LIMIT)
    rows, before = [], None
    while True:
        query = sa.select(audit).where(*mine).order_by(audit.c.id.desc()).limit(BATCH)
        batch = session.execute(query if before is None else query.where(audit.c.id < before)).all()
        rows += batch
        groups = _grouped(rows)
        if len(groups) > SHOWN or len(batch) < BATCH:
            break
        before = batch[-1].id
    if len(groups) <= SHOWN:
        return HistoryPage(groups)
    return HistoryPage(groups[:SHOWN], more=_saves(session, audit, mine) - SHOWN)


def _grouped(rows) -> list[Change]:
    """Audit rows (newest first) as saves, each listing its rows in the order written."""
    groups: list[Change] = []
    for row in rows:
        last = groups[-1] if groups else None
        if last is not None and _same_save(last.rows[0], row):
            last.rows.insert(0, row)
        else:
            groups.append(Change(row.at, row.username, row.action, [row]))
    return groups


def _saves(session, audit: sa.Table, mine) -> int:
    """How many saves the record's audit rows hold, counted in SQL as ``_same_save`` groups them."""
    versioned = session.execute(sa.select(sa.func.count(sa.distinct(audit.c.root_version)))
                                .where(*mine, audit.c.root_version.isnot(None))).scalar()
    older = sa.select(audit.c.at, audit.c.username).where(*mine, audit.c.root_version.is_(None)).distinct()
    return versioned + session.execute(sa.select(sa.func.count()).select_from(older.subquery())).scalar()


def _same_save(a, b) -> bool:
    """Rows of one save: the record version it made (rows written before versions
    were recorded: the same time and user)."""
    if a.root_version is not None and b.root_version is not None:
        return (a.root_version, a.username) == (b.root_version, b.username)
    return (a.at, a.username) == (b.at, b.username)
