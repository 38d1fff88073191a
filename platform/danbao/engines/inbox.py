"""Whose warning is it (预警收件箱): the inbox, its badge count, acknowledging.

A warning belongs to whoever its rule notifies *now*, decided in SQL at
query time, never copied onto the warning:

* a user holding one of the rule's ``notify_roles``;
* the user named on the record by one of the rule's ``notify_fields``
  (``user`` fields, stored as ``<field>_id``) — so when a project's A角
  changes, the new A角 sees its warnings and the old one no longer does;
* Admins see every warning, also those of rules no longer in the metadata
  (nobody else does: no rule, nobody notified);
* and, with the viewer's data permissions (``access``), only warnings on
  records they may read: a project manager notified by role sees his own
  projects' warnings, not every project's (record_rules.py).

Plain SQLAlchemy over the models; no Flask.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from danbao.engines.coerce import CONTROL_CHARS
from danbao.engines.users import USER_TABLE, display_name
from danbao.engines.warnings import acknowledge
from danbao.meta.model import Label, Meta
from danbao.model.system import WARNING_TABLE

ADMIN_ROLE = "Admin"
LEVELS = ("red", "orange", "yellow")
STATUSES = ("open", "closed", "all")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 100000
MAX_COMMENT = 2000
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1"), ("false", "no", "0")


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the account id and the names of its roles."""
    user_id: int | None
    roles: frozenset[str] = frozenset()
    access: object = field(default=None, compare=False)    # record_rules.RecordAccess, or None: no record rules

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


@dataclass
class InboxQuery:
    status: str = "open"               # open | closed | all
    level: str | None = None
    rule: str | None = None
    acknowledged: bool | None = None   # None: either
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    errors: dict[str, Label] = field(default_factory=dict)


def parse_inbox_args(args) -> InboxQuery:
    """Filters from request arguments (any mapping with ``get``); bad values land in ``errors``."""
    q = InboxQuery()
    status = (args.get("status") or "open").strip()
    if status in STATUSES:
        q.status = status
    else:
        q.errors["status"] = Label(f"应为 {'、'.join(STATUSES)} 之一", f"must be one of {', '.join(STATUSES)}")
    level = (args.get("level") or "").strip()
    if level in LEVELS:
        q.level = level
    elif level:
        q.errors["level"] = Label(f"应为 {'、'.join(LEVELS)} 之一", f"must be one of {', '.join(LEVELS)}")
    rule = (args.get("rule") or "").strip()
    if len(rule) > 64:
        q.errors["rule"] = Label("规则代码过长", "rule code too long")
    elif CONTROL_CHARS.search(rule):
        q.errors["rule"] = Label("含有控制字符", "contains control characters")
    elif rule:
        q.rule = rule
    ack = (args.get("acknowledged") or "").strip().lower()
    if ack in TRUE_WORDS:
        q.acknowledged = True
    elif ack in FALSE_WORDS:
        q.acknowledged = False
    elif ack:
        q.errors["acknowledged"] = Label("应为 true 或 false", "must be true or false")
    q.page = _int_arg(args, "page", 1, 1, MAX_PAGE, q.errors)
    q.page_size = _int_arg(args, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, q.errors)
    return q


def _int_arg(args, name, default, low, high, errors) -> int:
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 9 and low <= int(raw) <= high:
        return int(raw)
    errors[name] = Label(f"应为 {low} 到 {high} 之间的整数", f"must be an integer from {low} to {high}")
    return default


# -- who sees what ---------------------------------------------------------------

def visible(models, meta: Meta, viewer: Viewer):
    """The SQL condition on ``danbao_warning`` for the warnings ``viewer`` may see."""
    w = models.system[WARNING_TABLE]
    if viewer.is_admin:
        return sa.true()
    conditions = []
    by_role = sorted(r.code for r in meta.warnings.values() if viewer.roles & set(r.notify_roles))
    if by_role:
        conditions.append(w.c.rule.in_(by_role))
    if viewer.user_id is not None:
        for rule in meta.warnings.values():
            if rule.code in by_role or not rule.notify_fields or rule.entity not in meta.entities:
                continue
            em = meta.entity(rule.entity)
            table = models.table(rule.entity)
            people = [table.c[em.field(name).column_name] for name in rule.notify_fields
                      if em.has_field(name) and em.field(name).type == "user"]
            if people:
                conditions.append(sa.and_(
                    w.c.rule == rule.code, w.c.entity == rule.entity,
                    sa.exists().where(table.c.id == w.c.record_id,
                                      sa.or_(*(column == viewer.user_id for column in people)))))
    if not conditions:
        return sa.false()
    scoped = _readable(models, meta, viewer.access, w)
    return sa.or_(*conditions) if scoped is None else sa.and_(sa.or_(*conditions), scoped)


def _readable(models, meta: Meta, access, w):
    """Warnings whose record the viewer may read; None when that is all of them."""
    if access is None:
        return None
    limited = []
    for entity in sorted({r.entity for r in meta.warnings.values() if r.entity in meta.entities}):
        cond = access.condition(entity, "read")
        if cond is not None:
            table = models.table(entity)
            limited.append((entity, sa.exists().where(table.c.id == w.c.record_id, cond)))
    if not limited:
        return None
    return sa.or_(w.c.entity.not_in([e for e, _ in limited]),
                  *(sa.and_(w.c.entity == e, cond) for e, cond in limited))


def open_count(session, models, meta: Meta, viewer: Viewer) -> int:
    """Open warnings nobody has acknowledged yet, of those ``viewer`` sees (the menu badge)."""
    w = models.system[WARNING_TABLE]
    query = (sa.select(sa.func.count()).select_from(w)
             .where(w.c.status == "open", w.c.acknowledged_at.is_(None), visible(models, meta, viewer)))
    return session.execute(query).scalar_one()


# -- the inbox ---------------------------------------------------------------------

@dataclass
class InboxItem:
    id: int
    rule: str
    rule_label: Label | None            # None: the rule is no longer in the metadata
    entity: str
    entity_label: Label | None
    record_id: int
    level: str
    message_zh: str
    message_en: str
    status: str
    opened_at: dt.datetime
    opened_as_of: dt.date
    closed_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None         # the login
    acknowledged_by_name: str | None    # as people read it
    ack_comment: str | None
    link_entity: str | None = None      # the page showing the record (a child's parent)
    link_id: int | None = None
    record_title: str | None = None

    def message(self, lang: str | None) -> str:
        return self.message_en if (lang or "zh").startswith("en") and self.message_en else self.message_zh

    def to_dict(self, lang: str | None) -> dict:
        iso = lambda v: v.isoformat() if v is not None else None   # noqa: E731
        return {
            "id": self.id, "rule": self.rule,
            "rule_label": self.rule_label.get(lang) if self.rule_label else self.rule,
            "level": self.level, "message": self.message(lang), "status": self.status,
            "entity": self.entity, "record_id": self.record_id,
            "link": f"/e/{self.link_entity}/{self.link_id}" if self.link_entity else None,
            "record_title": self.record_title,
            "opened_at": iso(self.opened_at), "opened_as_of": iso(self.opened_as_of), "closed_at": iso(self.closed_at),
            "acknowledged_at": iso(self.acknowledged_at), "acknowledged_by": self.acknowledged_by,
            "ack_comment": self.ack_comment,
        }


@dataclass
class InboxPage:
    items: list[InboxItem]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def inbox(session, models, meta: Meta, viewer: Viewer, query: InboxQuery | None = None) -> InboxPage:
    """The viewer's warnings matching ``query``, newest first, one page."""
    q = query or InboxQuery()
    w = models.system[WARNING_TABLE]
    where = [visible(models, meta, viewer)]
    if q.status != "all":
        where.append(w.c.status == q.status)
    if q.level:
        where.append(w.c.level == q.level)
    if q.rule:
        where.append(w.c.rule == q.rule)
    if q.acknowledged is True:
        where.append(w.c.acknowledged_at.is_not(None))
    elif q.acknowledged is False:
        where.append(w.c.acknowledged_at.is_(None))
    total = session.execute(sa.select(sa.func.count()).select_from(w).where(*where)).scalar_one()
    rows = session.execute(sa.select(w).where(*where).order_by(w.c.opened_at.desc(), w.c.id.desc())
                           .limit(q.page_size).offset((q.page - 1) * q.page_size)).all()
    return InboxPage(_items(session, models, meta, rows), total, q.page, q.page_size)


def get_visible(session, models, meta: Meta, viewer: Viewer, warning_id) -> InboxItem | None:
    """One warning if it exists and ``viewer`` may see it."""
    if not isinstance(warning_id, int) or isinstance(warning_id, bool) or not 0 < warning_id < 2**31:
        return None
    w = models.system[WARNING_TABLE]
    row = session.execute(sa.select(w).where(w.c.id == warning_id, visible(models, meta, viewer))).first()
    return _items(session, models, meta, [row])[0] if row is not None else None


def _items(session, models, meta: Meta, rows) -> list[InboxItem]:
    links = _links(session, models, meta, [(r.entity, r.record_id) for r in rows])
    names = _names_by_login(session, {r.acknowledged_by for r in rows if r.acknowledged_by})
    items = []
    for r in rows:
        rule = meta.warnings.get(r.rule)
        em = meta.entities.get(r.entity)
        link = links.get((r.entity, r.record_id))
        items.append(InboxItem(
            id=r.id, rule=r.rule, rule_label=rule.label if rule else None, entity=r.entity,
            entity_label=em.label if em else None, record_id=r.record_id, level=r.level,
            message_zh=r.message_zh, message_en=r.message_en, status=r.status, opened_at=r.opened_at,
            opened_as_of=r.opened_as_of, closed_at=r.closed_at, acknowledged_at=r.acknowledged_at,
            acknowledged_by=r.acknowledged_by,
            acknowledged_by_name=names.get(r.acknowledged_by, r.acknowledged_by) if r.acknowledged_by else None,
            ack_comment=r.ack_comment,
            link_entity=link[0] if link else None, link_id=link[1] if link else None,
            record_title=link[2] if link else None))
    return items


def _links(session, models, meta: Meta, refs) -> dict[tuple[str, int], tuple[str, int, str]]:
    """(entity, id) -> (page entity, page id, title): a child row leads to its
    top-level parent's page. Records that no longer exist get no link."""
    wanted: dict[str, set[int]] = {}
    for entity, rid in refs:
        if entity in meta.entities:
            wanted.setdefault(entity, set()).add(rid)
    out = {}
    for entity, ids in wanted.items():
        em = meta.entity(entity)
        # follow parent_id up to the top-level record (children may nest)
        current = {rid: rid for rid in ids}          # original id -> id at the current level
        seen = set()
        while em.is_child and current and em.name not in seen:
            seen.add(em.name)
            table = models.table(em.name)
            parents = dict(session.execute(sa.select(table.c.id, table.c.parent_id)
                                           .where(table.c.id.in_(sorted(set(current.values()))))).all())
            current = {orig: parents[cid] for orig, cid in current.items() if parents.get(cid) is not None}
            em = meta.entities.get(em.parent)
            if em is None:
                current = {}
        if not current or em is None or em.is_child:
            continue
        table = models.table(em.name)
        title_col = table.c[em.field(em.title).column_name] if em.has_field(em.title) else table.c.id
        titles = dict(session.execute(sa.select(table.c.id, title_col)
                                      .where(table.c.id.in_(sorted(set(current.values()))))).all())
        for orig, top in current.items():
            if top in titles:
                value = titles[top]
                out[(entity, orig)] = (em.name, top, str(value) if value not in (None, "") else f"#{top}")
    return out


def _names_by_login(session, logins: set[str]) -> dict[str, str]:
    if not logins:
        return {}
    u = USER_TABLE
    rows = session.execute(sa.select(u.c.username, u.c.first_name, u.c.last_name)
                           .where(u.c.username.in_(sorted(logins)))).all()
    return {r.username: display_name(r.first_name, r.last_name, r.username) for r in rows}


# -- acknowledging -------------------------------------------------------------------

class CommentInvalid(Exception):
    """The acknowledgement's comment is missing or too long; ``message`` says which."""

    def __init__(self, message: Label):
        super().__init__(message.en)
        self.message = message


def check_comment(comment) -> str:
    if not isinstance(comment, str) or not comment.strip():
        raise CommentInvalid(Label("请填写处理意见", "a comment is required"))
    comment = comment.strip()
    if CONTROL_CHARS.search(comment):
        raise CommentInvalid(Label("处理意见含有控制字符", "the comment contains control characters"))
    if len(comment) > MAX_COMMENT:
        raise CommentInvalid(Label(f"处理意见不能超过 {MAX_COMMENT} 个字", f"at most {MAX_COMMENT} characters"))
    return comment


def acknowledge_visible(session, models, meta: Meta, viewer: Viewer, warning_id, *, username: str,
                        comment, now: dt.datetime | None = None) -> InboxItem | None:
    """Acknowledge a warning the viewer sees; None when there is none such (not found
    or not theirs — the same answer, so no one learns what others' inboxes hold).
    Raises ``CommentInvalid`` for an empty or too long comment. Acknowledging
    again replaces the earlier comment; the warning stays open until its
    condition stops holding, and closed ones can be commented on as history."""
    if get_visible(session, models, meta, viewer, warning_id) is None:
        return None
    text = check_comment(comment)
    acknowledge(session, models, warning_id, user=username, comment=text, now=now)
    return get_visible(session, models, meta, viewer, warning_id)
