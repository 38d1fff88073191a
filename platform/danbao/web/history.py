"""A record's change history (修改记录) as people read it: one entry per save —
when, who, and what changed (field: old → new) — newest first, instead of one
line per field. The audit table keeps a row per field; the rows of one save
share the record version it made (and its time and user)."""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

#: saves shown at first; ``?history=all`` shows every save the page reads
SHOWN = 20
#: audit rows read for one page (a save of a big record writes a row per field)
READ_LIMIT = 3000
#: a save listing more changes than this starts folded (a creation, a fee plan)
FOLD_ABOVE = 6


@dataclass
class Change:
    at: object
    username: str | None
    action: str                                   # create | update | delete (of the first row)
    rows: list = field(default_factory=list)

    @property
    def folded(self) -> bool:
        return len(self.rows) > FOLD_ABOVE


def changes_of(session, audit: sa.Table, entity: str, record_id: int) -> tuple[list[Change], bool]:
    """The saves of a record (its child rows' included), newest first, and whether
    the page read fewer rows than there are."""
    rows = session.execute(sa.select(audit).where(audit.c.root_entity == entity, audit.c.root_id == record_id)
                           .order_by(audit.c.id.desc()).limit(READ_LIMIT + 1)).all()
    cut = len(rows) > READ_LIMIT
    groups: list[Change] = []
    for row in rows[:READ_LIMIT]:
        last = groups[-1] if groups else None
        if last is not None and _same_save(last.rows[-1], row):
            last.rows.append(row)
        else:
            groups.append(Change(row.at, row.username, row.action, [row]))
    for g in groups:
        g.rows.reverse()                          # within a save: in the order it was written
    return groups, cut


def _same_save(a, b) -> bool:
    """Rows of one save: the record version it made (rows written before versions
    were recorded: the same time and user)."""
    if a.root_version is not None and b.root_version is not None:
        return (a.root_version, a.username) == (b.root_version, b.username)
    return (a.at, a.username) == (b.at, b.username)
