"""REST for the ledger (台账), on the one API blueprint (``web/api.py``).

``GET  /api/v1/<project entity>/<id>/ledger``   — balances and entries (read permission on the project);
``POST /api/v1/<project entity>/<id>/ledger``   — make an entry ``{"kind", "amount", "booked_on", "note"}``;
``POST /api/v1/ledger/<entry id>/check``        — and ``/confirm`` (body optional: ``{"lock_version"}``);
``POST /api/v1/ledger/<entry id>/reject``       — and ``/reverse``: ``{"reason"}``;
``GET  /api/v1/ledger/pending``                 — entries waiting for the caller's check or confirmation.

Every rule is the engine's (``engines/ledger.py``); this layer checks the
shape of the body (422 per field) and maps ``LedgerRefused.kind``:
forbidden → 403, invalid → 422, state and conflict → 409; no such entry or
project → 404. Amounts are strings with two decimals. Described in the
OpenAPI document by ``web/business_spec.py``.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import sqlalchemy as sa
from flask import jsonify, request

from danbao.engines.ledger import LedgerRefused
from danbao.engines.records import Actor, NotFound, ValidationFailed
from danbao.engines.users import user_names
from danbao.meta.model import Label
from danbao.model.system import LEDGER_TABLE
from danbao.web.scope import access_for
from danbao.web.access import can
from danbao.web.api import _body, _error, _invalid, _lang, _record_id, _runtime, _user, bp
from danbao.web.ledger_views import (configured, entry_dict, pending_entries, project_ledger, project_titles,
                                     service)
from danbao.web.workflow_api import MAX_ID, _Fields

MAX_NOTE = 4000
CENT = Decimal("0.01")
LIMIT = Decimal(10) ** 16
AMOUNT = re.compile(r"^-?\d{1,16}(\.\d{1,2})?$")
STATUS = {"forbidden": 403, "invalid": 422, "state": 409, "conflict": 409}
_UNAUTHENTICATED = ("未登录或令牌无效", "not authenticated: send a valid bearer token")


def _path_id(raw: str):
    value = _record_id(raw)
    return value if isinstance(value, int) and 0 < value <= MAX_ID else None


def _actor(user) -> Actor:
    return Actor(user_id=user.id, username=user.username, lang=_lang())


def _refused(exc: LedgerRefused):
    _runtime().session.rollback()
    status = STATUS.get(exc.kind, 409)
    if status == 422:
        return _error(422, exc.message.zh, exc.message.en, errors={"_": exc.message.get(_lang())})
    return _error(status, exc.message.zh, exc.message.en)


def _run(call, *, status: int = 200):
    session = _runtime().session
    try:
        result = call()
    except LedgerRefused as exc:
        return _refused(exc)
    except NotFound as exc:
        session.rollback()
        return _error(404, exc.message.zh, exc.message.en)
    except ValidationFailed as exc:
        return _invalid(exc)
    return jsonify(result), status


def _no_ledger():
    return _error(404, "未启用台账", "there is no ledger in this build")


def _signed_in():
    """(user, None) or (None, error response)."""
    user = _user()
    if user is None:
        return None, _error(401, *_UNAUTHENTICATED)
    if not configured(_runtime().meta):
        return None, _no_ledger()
    return user, None


def _one(entry_id: int) -> dict:
    rt = _runtime()
    row = service(rt).entry(entry_id)
    names = user_names(rt.session, {row.made_by_id, row.checked_by_id, row.confirmed_by_id, row.rejected_by_id})
    table = rt.models.system[LEDGER_TABLE]
    reversal = rt.session.execute(sa.select(table.c.id).where(table.c.reverses_id == row.id,
                                                              table.c.state != "rejected")).scalar()
    title = project_titles(rt, [(row.project_entity, row.project_id)]).get((row.project_entity, row.project_id))
    return entry_dict(rt.meta, row, _lang(), names, reversed_by=reversal, title=title)


# -- a project's ledger ---------------------------------------------------------------------------
def _project_guard(entity: str, record_id: str):
    """(user, project id) or an error response."""
    user, resp = _signed_in()
    if resp:
        return None, resp
    rt = _runtime()
    if entity != rt.meta.setting("project_entity"):
        return None, _error(404, f"{entity} 没有台账", f"{entity} has no ledger")
    if not can("read", entity):
        return None, _error(403, "您没有权限执行此操作", "you are not allowed to do this")
    project_id = _path_id(record_id)
    if project_id is None or not access_for(user).allows(entity, project_id, "read"):
        return None, _error(404, f"记录不存在：{entity} #{record_id}", f"No such record: {entity} #{record_id}")
    return (user, project_id), None


@bp.get("/<entity>/<record_id>/ledger")
def project_ledger_get(entity, record_id):
    ok, resp = _project_guard(entity, record_id)
    if resp:
        return resp
    user, project_id = ok

    def answer():
        data = project_ledger(_runtime(), project_id, user, _lang())
        _runtime().session.rollback()
        return data
    return _run(answer)


@bp.post("/<entity>/<record_id>/ledger")
def project_ledger_make(entity, record_id):
    ok, resp = _project_guard(entity, record_id)
    if resp:
        return resp
    user, project_id = ok
    data, resp = _body()
    if resp:
        return resp
    rt = _runtime()
    fields = _Fields(data, {"kind", "amount", "booked_on", "note"})
    kind = fields.choice("kind", list(rt.meta.ledger_kinds))
    amount = _amount(fields)
    booked_on = _date(fields, "booked_on")
    note = fields.text("note", max_length=MAX_NOTE) or ""
    if fields.errors:
        return _invalid(ValidationFailed(fields.errors))

    def answer():
        entry_id = service(rt).make(project_id, kind, amount, _actor(user), booked_on=booked_on, note=note)
        return {"id": entry_id, "result": _one(entry_id)}
    return _run(answer, status=201)


def _amount(fields: _Fields) -> Decimal | None:
    value = fields.data.get("amount")
    if isinstance(value, str) and AMOUNT.match(value):
        return Decimal(value)
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        number = Decimal(value)
        if number.is_finite() and abs(number) < LIMIT and number == number.quantize(CENT):
            return number.quantize(CENT)
    fields.errors["amount"] = Label("金额应为数字（如 \"1000.00\"），最多两位小数",
                                    "must be a decimal number (e.g. \"1000.00\") with at most two decimal places")
    return None


def _date(fields: _Fields, key: str) -> dt.date | None:
    value = fields.data.get(key)
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    fields.errors[key] = Label("日期格式应为 YYYY-MM-DD", "must be a date (YYYY-MM-DD)")
    return None


# -- acting on an entry --------------------------------------------------------------------------------
def _entry_body(allowed: set[str]):
    """The body (empty allowed when no field is required) as (data, None) or (None, response)."""
    if not request.get_data(cache=True).strip() and "reason" not in allowed:
        return {}, None
    return _body()


def _act(entry_id: str, action: str):
    user, resp = _signed_in()
    if resp:
        return resp
    rt = _runtime()
    eid = _path_id(entry_id)
    if eid is None:
        return _error(404, f"没有此台账分录：#{entry_id}", f"no such ledger entry: #{entry_id}")
    allowed = {"reason"} if action in ("reject", "reverse") else {"lock_version"}
    data, resp = _entry_body(allowed)
    if resp:
        return resp
    fields = _Fields(data, allowed)
    reason = lock_version = None
    if "reason" in allowed:
        reason = fields.text("reason", required=True, max_length=MAX_NOTE,
                             missing=Label("请填写原因", "a reason is required"))
    else:
        raw = data.get("lock_version")
        if raw is not None:
            if type(raw) is not int or not 0 <= raw <= MAX_ID:
                fields.errors["lock_version"] = Label("应为整数", "must be an integer")
            else:
                lock_version = raw
    if fields.errors:
        return _invalid(ValidationFailed(fields.errors))
    svc = service(rt)
    try:
        entry = svc.entry(eid)
    except NotFound:
        rt.session.rollback()
        return _error(404, f"没有此台账分录：#{entry_id}", f"no such ledger entry: #{entry_id}")
    if not can("read", entry.project_entity):
        return _error(403, "您没有权限执行此操作", "you are not allowed to do this")
    if not access_for(user).allows(entry.project_entity, entry.project_id, "read"):
        rt.session.rollback()       # a project outside the user's data permissions: its entries do not exist
        return _error(404, f"没有此台账分录：#{entry_id}", f"no such ledger entry: #{entry_id}")
    actor = _actor(user)
    if action == "reverse":
        def reverse():
            new_id = svc.reverse(eid, actor, reason)
            return {"id": new_id, "result": _one(new_id)}
        return _run(reverse, status=201)
    calls = {"check": lambda: svc.check(eid, actor, lock_version=lock_version),
             "confirm": lambda: svc.confirm(eid, actor, lock_version=lock_version),
             "reject": lambda: svc.reject(eid, actor, reason)}

    def answer():
        calls[action]()
        return {"id": eid, "result": _one(eid)}
    return _run(answer)


@bp.post("/ledger/<entry_id>/check")
def ledger_check(entry_id):
    return _act(entry_id, "check")


@bp.post("/ledger/<entry_id>/confirm")
def ledger_confirm(entry_id):
    return _act(entry_id, "confirm")


@bp.post("/ledger/<entry_id>/reject")
def ledger_reject(entry_id):
    return _act(entry_id, "reject")


@bp.post("/ledger/<entry_id>/reverse")
def ledger_reverse(entry_id):
    return _act(entry_id, "reverse")


@bp.get("/ledger/pending")
def ledger_pending():
    user, resp = _signed_in()
    if resp:
        return resp
    rt = _runtime()
    rows = pending_entries(rt, user, _lang())
    rt.session.rollback()
    return jsonify(count=len(rows), result=rows)
