"""The signed-in user's data permissions and masks, once per request.

Screens and the REST API pass this to the engines (records, query, inbox),
which do the filtering in SQL; see engines/record_rules.py and masking.py.
"""
from __future__ import annotations

from flask import current_app, g

from danbao.engines.masking import Masker
from danbao.engines.record_rules import RecordAccess


def access_for(user) -> RecordAccess | None:
    """The user's RecordAccess (cached for the request); None without a user."""
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "id", None) is None:
        return None
    cached = getattr(g, "_danbao_access", None)
    rt = current_app.extensions["danbao"]
    if cached is not None and cached.user_id == user.id and cached.models is rt.models:
        return cached
    access = RecordAccess(rt.session, rt.models, user.id, frozenset(r.name for r in (user.roles or ())))
    g._danbao_access = access
    return access


def masker_for(user) -> Masker:
    """The user's masks; without a user everything sensitive is masked."""
    access = access_for(user)
    rt = current_app.extensions["danbao"]
    return access.masker if access is not None else Masker(rt.meta, ())
