"""The ledger (台账): a project's money movements, booked maker-checker.

An entry is **made** by one person, **checked** by a second and **confirmed**
by a third (or **rejected** with a reason while made or checked); only
confirmed entries count. Each kind of entry (``ledger_kinds`` in the packs)
says which balances it moves: a balance is Σ amount × direction × effect over
the project's confirmed entries.

An entry's effects are pinned in its row when it is made (a reversal takes
those of the entry it reverses), so editing a kind in the metadata changes
only new entries, and removing a kind leaves its entries counting as before.
Rows from before effects were pinned are given them by the migration that
adds the column (model/system.py); one still without them (written by an
older process after that) counts with its kind's current effects, and if the
kind is gone the balance is refused rather than computed without it.

Rules that hold whatever the metadata says:

* maker, checker and confirmer are three different people, each allowed by the
  settings ``ledger_maker`` / ``ledger_checker`` / ``ledger_confirmer``
  (``{roles: [...], fields: [...]}``: holders of a role, or the users named in
  the project's ``user`` fields), and active;
* a confirmed entry is never changed or deleted — this module has no such
  path. A mistake is undone by ``reverse``: a new entry with direction -1,
  the same kind and amount, going through the same three hands. An entry is
  reversed at most once (a unique index on ``reverses_id`` over entries not
  rejected decides between two people reversing at once);
* an amount is a Decimal with at most two places, above zero unless the kind
  allows negative amounts;
* a kind books only in the project statuses it lists, or when it lists none
  in any status but the ``ledger_closed_statuses``;
* an amount may not exceed the kind's ``not_above`` balance (a refund no more
  than the deposit held), and a reversal may not take a balance some kind
  caps below zero (reversing a receipt already refunded). Both are checked
  when the entry is made
  and again when it is confirmed, with the project row locked (``SELECT … FOR
  NO KEY UPDATE`` on PostgreSQL; SQLite has one writer at a time and the
  entry's own write comes before the check), so two refunds confirmed at once
  never take out more than is held;
* every state change is a compare-and-set on ``lock_version``: of two people
  acting on one entry at once, one gets through and the other is refused
  (``conflict``) with nothing of theirs written;
* a refusal changes nothing: the whole action is one transaction.

No Flask here; the web layer maps ``LedgerRefused.kind`` to pages and HTTP codes.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from danbao.engines.coerce import CONTROL_CHARS
from danbao.engines.projects import customer_of
from danbao.engines.records import NotFound
from danbao.engines.transactions import all_or_nothing
from danbao.engines.users import USER_TABLE, role_names
from danbao.meta.model import LEDGER_BALANCES, Assignees, Label, LedgerKindMeta, Meta
from danbao.model.system import LEDGER_TABLE, ledger_effects_text, unpinned_ledger_refusal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("9999999999999999.99")         # Numeric(18, 2)
MAX_TEXT = 4000
STATES = ("made", "checked", "confirmed", "rejected")
#: who acts at each step: the setting naming them, and the words for the action
ROLES = {"make": "ledger_maker", "check": "ledger_checker", "confirm": "ledger_confirmer"}
ACTION_LABELS = {"make": Label("制单", "make"), "check": Label("复核", "check"), "confirm": Label("确认", "confirm"),
                 "reject": Label("退回", "reject"), "reverse": Label("冲销", "reverse")}
STATE_LABELS = {"made": Label("已制单", "made"), "checked": Label("已复核", "checked"),
                "confirmed": Label("已确认", "confirmed"), "rejected": Label("已退回", "rejected")}
BALANCE_LABELS = {
    "review_fee": Label("评审费", "review fee"), "guarantee_fee": Label("担保费", "guarantee fee"),
    "deposit_held": Label("保证金余额", "deposit held"), "loan_outstanding": Label("贷款余额", "loan outstanding"),
    "guarantee_outstanding": Label("在保余额", "guarantee outstanding"),
    "compensation_paid": Label("代偿金额", "compensation paid"), "recovered": Label("追偿回收", "recovered"),
    "written_off": Label("核销金额", "written off"),
}
REFUSAL_KINDS = ("forbidden", "invalid", "state", "conflict")


class LedgerRefused(Exception):
    """The action is not allowed; nothing was changed. ``message`` says why in
    both languages; ``kind`` is forbidden | invalid | state | conflict."""

    def __init__(self, message: Label, kind: str):
        super().__init__(message.en)
        self.message = message
        self.kind = kind


def _refused(kind: str, zh: str, en: str) -> LedgerRefused:
    return LedgerRefused(Label(zh, en), kind)


def entry_effects(meta: Meta, kind: str, pinned: str | None, count: int = 1) -> Mapping[str, int]:
    """The balances an entry moves (balance -> +1/-1): those pinned in its row
    (``effects``); for a row without them, its kind's current ones. Such a
    row of a kind the metadata no longer declares is refused (naming the kind
    and ``count`` entries), never counted as moving nothing."""
    if pinned is not None:
        return _decoded(pinned)
    km = meta.ledger_kinds.get(kind)
    if km is None:
        raise LedgerRefused(unpinned_ledger_refusal(kind, count), "state")
    return km.effects


@functools.lru_cache(maxsize=1024)
def _decoded(text: str) -> Mapping[str, int]:
    return MappingProxyType({str(balance): int(sign) for balance, sign in json.loads(text).items()})


def assignees(value) -> Assignees:
    """A ``{roles: [...], fields: [...]}`` setting as Assignees (empty when unset)."""
    if isinstance(value, Assignees):
        return value
    if isinstance(value, Mapping):
        return Assignees(roles=tuple(value.get("roles") or ()), fields=tuple(value.get("fields") or ()))
    return Assignees()


def named_for(meta: Meta, step: str, user_id: int | None, roles: set[str], project) -> bool:
    """Whether the settings name this user for ``step`` (make / check / confirm) on
    ``project`` (a row or a record): by one of their roles, or as one of its user fields."""
    if user_id is None:
        return False
    who = assignees(meta.setting(ROLES[step]))
    if roles & set(who.roles):
        return True
    em = meta.entity(meta.setting("project_entity"))
    return any(em.has_field(name) and em.field(name).type == "user"
               and getattr(project, em.field(name).column_name, None) == user_id for name in who.fields)


class LedgerService:
    def __init__(self, session, models, meta: Meta, *, clock=None):
        self.session = session
        self.models = models
        self.meta = meta
        self.clock = clock or dt.datetime.now
        self.table = models.system[LEDGER_TABLE]
        self.project_entity = meta.setting("project_entity", "guarantee_project")
        self.em = meta.entity(self.project_entity)
        self.projects = models.table(self.project_entity)
        #: balances some kind caps (not_above): no reversal may take them below zero
        self.guarded = {k.not_above for k in meta.ledger_kinds.values() if k.not_above}

    def _transaction(self):
        """An action changes everything or nothing."""
        return all_or_nothing(self.session)

    # -- acting ---------------------------------------------------------------------
    def make(self, project_id: int, kind: str, amount: Decimal, actor, *, booked_on: dt.date | None = None,
             note: str = "", reverses_id: int | None = None) -> int:
        """Book a new entry (state ``made``); returns its id. With ``reverses_id``
        it is the reversal of that confirmed entry (see ``reverse``)."""
        km = self._kind(kind)
        amount = self._amount(km, amount)
        note = self._text(note)
        booked_on = self._booked_on(booked_on)
        direction = 1 if reverses_id is None else -1
        now = self.clock()
        with self._transaction():
            effects = km.effects
            if reverses_id is not None:
                effects = self._effects(self._check_reversible(reverses_id, project_id, kind, amount))
            self._may(actor, "make", self._project(project_id))
            project = self._lock(project_id)
            self._check_status(km, project)
            customer_entity, customer_id = self._customer(project)
            try:
                entry_id = self.session.execute(self.table.insert().values(
                    project_entity=self.project_entity, project_id=project_id, customer_entity=customer_entity,
                    customer_id=customer_id, kind=km.code, amount=amount, direction=direction,
                    effects=ledger_effects_text(effects), state="made",
                    booked_on=booked_on, note=note, made_by_id=actor.user_id, made_at=now,
                    reverses_id=reverses_id, meta_version=self.meta.version[:200], lock_version=0)
                    .returning(self.table.c.id)).scalar_one()
            except IntegrityError:
                raise _already_reversed("conflict") from None
            self._check_limits(km, effects, project_id, amount, direction, exclude=entry_id)
        return entry_id

    def book_by_step(self, project_id: int, kind: str, amount: Decimal, actor, *, booked_on: dt.date,
                     note: str) -> int:
        """An entry the workflow books when a step it approved says the money moved
        (放款确认: the bank lent, so the guarantee is on the books). The step's own
        approvals are its checks, so it is confirmed at once, made and confirmed by
        the person who approved the step, with the step in its note. Status and
        limits are checked as for any entry; not committed (the workflow's
        transaction holds it)."""
        km = self._kind(kind)
        amount = self._amount(km, amount)
        project = self._lock(project_id)
        self._check_status(km, project)
        customer_entity, customer_id = self._customer(project)
        now = self.clock()
        entry_id = self.session.execute(self.table.insert().values(
            project_entity=self.project_entity, project_id=project_id, customer_entity=customer_entity,
            customer_id=customer_id, kind=km.code, amount=amount, direction=1,
            effects=ledger_effects_text(km.effects), state="confirmed", booked_on=booked_on, note=self._text(note),
            made_by_id=actor.user_id, made_at=now, confirmed_by_id=actor.user_id, confirmed_at=now,
            meta_version=self.meta.version[:200], lock_version=0).returning(self.table.c.id)).scalar_one()
        self._check_limits(km, km.effects, project_id, amount, 1, exclude=entry_id)
        return entry_id

    def check(self, entry_id: int, actor, *, lock_version: int | None = None) -> None:
        """The second person checks a made entry."""
        with self._transaction():
            entry = self._entry(entry_id, lock_version)
            self._expect(entry, "made", "check")
            self._may(actor, "check", self._project(entry.project_id))
            self._not_again(actor, entry.made_by_id)
            self._cas(entry, state="checked", checked_by_id=actor.user_id, checked_at=self.clock())

    def confirm(self, entry_id: int, actor, *, lock_version: int | None = None) -> None:
        """The third person confirms a checked entry: from now on it counts in the balances."""
        with self._transaction():
            entry = self._entry(entry_id, lock_version)
            self._expect(entry, "checked", "confirm")
            self._may(actor, "confirm", self._project(entry.project_id))
            self._not_again(actor, entry.made_by_id, entry.checked_by_id)
            km = self._kind(entry.kind)
            project = self._lock(entry.project_id)
            self._cas(entry, state="confirmed", confirmed_by_id=actor.user_id, confirmed_at=self.clock())
            self._check_status(km, project)
            self._check_limits(km, self._effects(entry), entry.project_id, entry.amount, entry.direction,
                               exclude=entry.id)
            self._settle(entry, actor)

    def _settle(self, entry, actor) -> None:
        """A confirmed receipt (or its reversal) pays (or unpays) the project's fee plan rows."""
        from danbao.engines.business import settle_fee_plan
        from danbao.engines.records import RecordService
        records = RecordService(self.models, self.session, actor, clock=self.clock)
        self.session.flush()                       # the confirmation counts in the sum the plan is paid from
        settle_fee_plan(records, entry.project_id, entry.kind, entry.booked_on)

    def reject(self, entry_id: int, actor, reason: str, *, lock_version: int | None = None) -> None:
        """Send a made entry back (the checker) or a checked one (the confirmer), with a reason."""
        reason = self._reason(reason)
        with self._transaction():
            entry = self._entry(entry_id, lock_version)
            if entry.state not in ("made", "checked"):
                raise self._wrong_state(entry, "reject")
            step = "check" if entry.state == "made" else "confirm"
            self._may(actor, step, self._project(entry.project_id))
            self._not_again(actor, entry.made_by_id, entry.checked_by_id)
            self._cas(entry, state="rejected", rejected_by_id=actor.user_id, rejected_at=self.clock(),
                      reject_reason=reason)

    def reverse(self, entry_id: int, actor, reason: str) -> int:
        """Make the reversal of a confirmed entry (direction -1, same kind,
        amount and pinned effects, ``reason`` as its note); it is checked and
        confirmed like any entry. Returns the new entry's id."""
        reason = self._reason(reason)
        original = self._entry(entry_id)
        return self.make(original.project_id, original.kind, original.amount, actor, note=reason,
                         reverses_id=original.id)

    # -- reading ------------------------------------------------------------------------
    def balances(self, project_id: int) -> dict[str, Decimal]:
        """Every balance (LEDGER_BALANCES) of the project, from its confirmed entries."""
        t = self.table
        return self._sum(t.c.project_entity == self.project_entity, t.c.project_id == project_id)

    def customer_balances(self, customer_entity: str, customer_id: int) -> dict[str, Decimal]:
        """The balances over all projects of one customer."""
        t = self.table
        return self._sum(t.c.customer_entity == customer_entity, t.c.customer_id == customer_id)

    def entries(self, project_id: int) -> list:
        """The project's entries, oldest first (rows of the ledger table)."""
        t = self.table
        return self.session.execute(sa.select(t).where(t.c.project_entity == self.project_entity,
                                                       t.c.project_id == project_id).order_by(t.c.id)).all()

    def entry(self, entry_id: int):
        return self._entry(entry_id)

    def pending_for(self, user_id: int) -> list:
        """Entries waiting for this user: made ones they may check, checked
        ones they may confirm (never their own), oldest first."""
        if not self._active(user_id):
            return []
        t = self.table
        rows = self.session.execute(sa.select(t).where(t.c.state.in_(("made", "checked")),
                                                       t.c.project_entity == self.project_entity)
                                    .order_by(t.c.id)).all()
        roles = role_names(self.session, user_id)
        projects: dict[int, object] = {}
        out = []
        for row in rows:
            if user_id in (row.made_by_id, row.checked_by_id):
                continue
            if row.project_id not in projects:
                projects[row.project_id] = self.session.execute(
                    sa.select(self.projects).where(self.projects.c.id == row.project_id)).first()
            project = projects[row.project_id]
            step = "check" if row.state == "made" else "confirm"
            if project is not None and self._allowed(user_id, roles, step, project):
                out.append(row)
        return out

    # -- the checks ---------------------------------------------------------------------
    def _kind(self, kind) -> LedgerKindMeta:
        km = self.meta.ledger_kinds.get(kind) if isinstance(kind, str) else None
        if km is None:
            raise _refused("invalid", f"未知的台账类型：{kind}", f"Unknown ledger entry kind: {kind}")
        return km

    def _amount(self, km: LedgerKindMeta, amount) -> Decimal:
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise _refused("invalid", "金额应为数值（Decimal）", "The amount must be a decimal number")
        if abs(amount) > MAX_AMOUNT:
            raise _refused("invalid", "金额超出范围", "The amount is too large")
        try:
            cents = amount.quantize(CENT)
        except InvalidOperation:                        # pragma: no cover - guarded by MAX_AMOUNT
            cents = None
        if cents != amount:
            raise _refused("invalid", "金额最多两位小数", "The amount may have at most two decimal places")
        if cents == 0 or (cents < 0 and not km.allow_negative):
            raise _refused("invalid", "金额必须大于零", "The amount must be greater than zero")
        return cents

    def _text(self, text) -> str:
        if text is None:
            return ""
        if not isinstance(text, str):
            raise _refused("invalid", "说明应为文本", "The note must be text")
        if CONTROL_CHARS.search(text):
            raise _refused("invalid", "说明含有控制字符", "The text contains control characters")
        if len(text) > MAX_TEXT:
            raise _refused("invalid", f"说明最多 {MAX_TEXT} 字", f"The text may have at most {MAX_TEXT} characters")
        return text

    def _reason(self, reason) -> str:
        reason = self._text(reason).strip()
        if not reason:
            raise _refused("invalid", "请填写原因", "A reason is required")
        return reason

    def _booked_on(self, booked_on) -> dt.date:
        if booked_on is None:
            return self.clock().date()
        if not isinstance(booked_on, dt.date) or isinstance(booked_on, dt.datetime):
            raise _refused("invalid", "记账日期应为日期", "The booking date must be a date")
        return booked_on

    def _check_reversible(self, original_id, project_id, kind, amount):
        """The entry to reverse, if this reversal of it may be made."""
        original = self._entry(original_id)
        if original.project_entity != self.project_entity or original.project_id != project_id \
                or original.kind != kind or original.amount != amount:
            raise _refused("invalid", "冲销分录须与原分录的项目、类型和金额一致",
                           "A reversal must have the project, kind and amount of the entry it reverses")
        if original.direction != 1:
            raise _refused("state", "冲销分录不能再被冲销", "A reversal cannot itself be reversed")
        if original.state != "confirmed":
            raise _refused("state", "只能冲销已确认的分录", "Only a confirmed entry can be reversed")
        t = self.table
        live = self.session.execute(sa.select(t.c.id).where(t.c.reverses_id == original.id,
                                                            t.c.state != "rejected")).first()
        if live is not None:
            raise _already_reversed("state")
        return original

    def _check_status(self, km: LedgerKindMeta, project) -> None:
        status = project._mapping.get(self._column("status")) if self.em.has_field("status") else None
        if km.statuses:
            allowed = status in km.statuses
        else:
            allowed = status not in (self.meta.setting("ledger_closed_statuses") or ())
        if not allowed:
            name = self._status_label(status)
            raise _refused("invalid", f"项目状态为“{name.zh}”，不能登记“{km.label.zh}”",
                           f"A '{km.label.en}' entry cannot be booked while the project is '{name.en}'")

    def _check_limits(self, km: LedgerKindMeta, effects: Mapping[str, int], project_id: int, amount: Decimal,
                      direction: int, *, exclude: int) -> None:
        """The kind's cap (an entry) or the capped balances (a reversal, moving
        its pinned ``effects``), over the project's other confirmed entries."""
        if direction == 1 and km.not_above:
            held = self._balances_without(project_id, exclude)
            limit = held.get(km.not_above, ZERO)
            if amount > limit:
                name = BALANCE_LABELS.get(km.not_above, Label(km.not_above, km.not_above))
                raise _refused("invalid", f"金额 {amount} 超过{name.zh} {limit}",
                               f"The amount {amount} exceeds the {name.en} of {limit}")
        if direction == 1 or not (self.guarded & set(effects)):
            return
        held = self._balances_without(project_id, exclude)
        for balance, effect in effects.items():           # a reversal: no capped balance below zero
            change = amount * direction * effect
            if balance in self.guarded and change < 0 and held.get(balance, ZERO) + change < 0:
                name = BALANCE_LABELS.get(balance, Label(balance, balance))
                current = held.get(balance, ZERO)
                raise _refused("invalid", f"该分录将使{name.zh}变为负数（当前 {current}）",
                               f"This entry would take the {name.en} below zero (it is {current})")

    def _balances_without(self, project_id: int, exclude: int | None) -> dict[str, Decimal]:
        t = self.table
        where = [t.c.project_entity == self.project_entity, t.c.project_id == project_id]
        if exclude is not None:
            where.append(t.c.id != exclude)
        return self._sum(*where)

    def _expect(self, entry, state: str, action: str) -> None:
        if entry.state != state:
            raise self._wrong_state(entry, action)

    def _wrong_state(self, entry, action: str) -> LedgerRefused:
        now, act = STATE_LABELS.get(entry.state, Label(entry.state, entry.state)), ACTION_LABELS[action]
        return _refused("state", f"该分录{now.zh}，不能{act.zh}", f"This entry is {now.en}: it cannot be {_past(act.en)}")

    def _not_again(self, actor, *before) -> None:
        if actor.user_id in before:
            raise _refused("forbidden", "制单、复核、确认须由三个不同的人完成",
                           "Making, checking and confirming an entry takes three different people")

    def _may(self, actor, step: str, project) -> None:
        user_id = getattr(actor, "user_id", None)
        if type(user_id) is not int:
            raise _refused("forbidden", "请先登录", "Sign in first")
        setting = ROLES[step]
        if not assignees(self.meta.setting(setting)):
            act = ACTION_LABELS[step]
            raise _refused("forbidden", f"未设置台账{act.zh}人员（设置项 {setting}）",
                           f"Nobody is set to {act.en} ledger entries (setting {setting})")
        if not self._active(user_id) or not self._allowed(user_id, role_names(self.session, user_id), step, project):
            act = ACTION_LABELS[step]
            raise _refused("forbidden", f"您不能{act.zh}该项目的台账分录",
                           f"You may not {act.en} ledger entries of this project")

    def _allowed(self, user_id: int, roles: set[str], step: str, project) -> bool:
        return named_for(self.meta, step, user_id, roles, project)

    def _active(self, user_id) -> bool:
        if type(user_id) is not int:
            return False
        row = self.session.execute(sa.select(USER_TABLE.c.active).where(USER_TABLE.c.id == user_id)).first()
        return row is not None and bool(row[0])

    # -- rows -------------------------------------------------------------------------------
    def _entry(self, entry_id, lock_version: int | None = None):
        row = None
        if isinstance(entry_id, int) and not isinstance(entry_id, bool):
            row = self.session.execute(sa.select(self.table).where(self.table.c.id == entry_id)).first()
        if row is None or row.project_entity != self.project_entity:
            raise NotFound("ledger_entry", entry_id)
        if lock_version is not None and lock_version != row.lock_version:
            raise _conflict()
        return row

    def _project(self, project_id):
        row = None
        if isinstance(project_id, int) and not isinstance(project_id, bool):
            row = self.session.execute(sa.select(self.projects).where(self.projects.c.id == project_id)).first()
        if row is None:
            raise NotFound(self.project_entity, project_id)
        return row

    def _lock(self, project_id: int):
        """The project row, locked until the transaction ends (PostgreSQL; a no-op on SQLite)."""
        row = self.session.execute(sa.select(self.projects).where(self.projects.c.id == project_id)
                                   .with_for_update(key_share=True)).first()
        if row is None:
            raise NotFound(self.project_entity, project_id)
        return row

    def _cas(self, entry, **values) -> None:
        """Compare-and-set: the entry must still be as it was read."""
        t = self.table
        done = self.session.execute(t.update().where(
            t.c.id == entry.id, t.c.lock_version == entry.lock_version, t.c.state == entry.state)
            .values(lock_version=entry.lock_version + 1, **values))
        if done.rowcount != 1:
            raise _conflict()

    def _customer(self, project) -> tuple[str | None, int | None]:
        return customer_of(self.meta, project) or (None, None)

    def _column(self, field: str) -> str:
        return self.em.field(field).column_name

    def _status_label(self, status) -> Label:
        f = self.em.field("status") if self.em.has_field("status") else None
        for option in (getattr(f, "options", None) or ()):
            if option.value == status:
                return option.label
        return Label(str(status), str(status))

    def _effects(self, entry) -> Mapping[str, int]:
        return entry_effects(self.meta, entry.kind, entry.effects)

    def _sum(self, *where) -> dict[str, Decimal]:
        """Σ amount × direction × effect over confirmed entries, summed in SQL by
        kind, direction and pinned effects (a kind's entries may differ in them)."""
        t = self.table
        out = {b: ZERO for b in LEDGER_BALANCES}
        query = (sa.select(t.c.kind, t.c.direction, t.c.effects, sa.func.sum(t.c.amount), sa.func.count())
                 .where(t.c.state == "confirmed", *where).group_by(t.c.kind, t.c.direction, t.c.effects))
        for kind, direction, pinned, total, count in self.session.execute(query):
            if total is None:
                continue
            total = total if isinstance(total, Decimal) else Decimal(str(total))
            for balance, effect in entry_effects(self.meta, kind, pinned, count).items():
                if balance in out:
                    out[balance] += total * direction * effect
        return {b: v.quantize(CENT) for b, v in out.items()}


def _past(verb: str) -> str:
    return {"make": "made", "check": "checked", "confirm": "confirmed", "reject": "rejected",
            "reverse": "reversed"}.get(verb, verb)


def _conflict() -> LedgerRefused:
    return _refused("conflict", "其他人刚刚处理了该分录，请刷新后再试",
                    "Someone else has just acted on this entry: reload and try again")


def _already_reversed(kind: str) -> LedgerRefused:
    return _refused(kind, "该分录已被冲销（或冲销正在审核中）",
                    "This entry has already been reversed (or a reversal is waiting to be checked)")
