"""Coded refusals: one base error for every engine, one table of codes.

Every refusal a person or a client can meet carries a stable code (``CT001``),
a message in both languages, optionally the field it is about, and a kind.
The HTTP status comes from the kind, never from the message's text, so
rewording a message cannot change what a client sees. ``CODES`` is the
catalogue: the README's table lists it and a test checks every code is both
documented and exercised.
"""
from __future__ import annotations

from dataclasses import dataclass

from danbao.meta.model import Label

#: kind -> HTTP status
KIND_STATUS = {"forbidden": 403, "not_found": 404, "conflict": 409, "invalid": 422}


@dataclass(frozen=True)
class RefusalCode:
    code: str
    kind: str           # a key of KIND_STATUS
    summary: str        # one line for the documentation


CODES: dict[str, RefusalCode] = {}


def refusal_code(code: str, kind: str, summary: str) -> str:
    """Declare a code once (at import); declaring it again differently is a bug."""
    if kind not in KIND_STATUS:
        raise ValueError(f"unknown refusal kind {kind!r}")
    entry = RefusalCode(code, kind, summary)
    if CODES.setdefault(code, entry) != entry:
        raise ValueError(f"refusal code {code} declared twice")
    return code


class Refusal(Exception):
    """The engine will not do this; nothing was changed.

    ``field`` names the field (or ``collection.row.field``) the refusal is
    about, if any; ``details`` carries structured extras (the missing
    documents, the locked fields) for clients that want more than text."""

    def __init__(self, code: str, message: Label, *, field: str | None = None, details: dict | None = None):
        if code not in CODES:
            raise ValueError(f"undeclared refusal code {code}")
        super().__init__(f"{code} {message.en}")
        self.code = code
        self.message = message
        self.field = field
        self.details = dict(details or {})

    @property
    def kind(self) -> str:
        return CODES[self.code].kind

    @property
    def status(self) -> int:
        return KIND_STATUS[self.kind]

    def to_json(self, lang: str) -> dict:
        body = {"code": self.code, "message": self.message.get(lang)}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


# -- the record service's own ------------------------------------------------------
INVALID = refusal_code("RC001", "invalid", "values that fail their field's rules (type, required, unique, checks)")
STALE = refusal_code("RC002", "conflict", "someone else changed the record since it was read")
NOT_FOUND = refusal_code("RC003", "not_found", "no such record")
INTEGRITY = refusal_code("RC004", "conflict", "the database refused the write (a race the checks could not see)")
STILL_REFERENCED = refusal_code("RC005", "conflict", "a record other records refer to cannot be deleted")

# -- controls declared in metadata (``controls:`` on an entity) ---------------------
FIELD_LOCKED = refusal_code("CT001", "conflict", "a field that may not change in the record's current status")
ROLE_MAY_NOT_CHANGE = refusal_code("CT002", "forbidden",
                                   "a field the acting user's roles may not change in the record's current status")
SYSTEM_ROWS = refusal_code("CT004", "conflict", "child rows only the system writes (a fee plan)")
NOT_DELETABLE = refusal_code("CT010", "conflict", "a record that may not be deleted in its current status")
IN_APPROVAL = refusal_code("CT011", "conflict", "a record in a running approval workflow cannot be deleted")
HAS_MONEY = refusal_code("CT012", "conflict", "a record with confirmed ledger entries cannot be deleted")

# -- the guarantee business's step conditions (engines/business.py) -----------------------
STEP_REQUIREMENTS = refusal_code("CT020", "invalid",
                                 "a step's conditions are not met: the message and `details.missing` list what is missing")
